"""Tests of wvi.divergences: h = r f' − f, log-space forms, and quadrature against closed forms."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from wvi import divergences
from wvi import gaussian as G


@pytest.mark.parametrize("name", list(divergences.DIVERGENCES))
def test_h_is_r_fprime_minus_f(name):
    div = divergences.get(name)
    r = jnp.array([0.05, 0.5, 1.0, 2.0, 7.5])
    autodiff = r * jax.vmap(jax.grad(div.f))(r) - div.f(r)
    np.testing.assert_allclose(div.h(r), autodiff, rtol=1e-12)
    assert abs(float(div.f(jnp.array(1.0)))) < 1e-15  # f(1) = 0


@pytest.mark.parametrize("name", list(divergences.DIVERGENCES))
def test_log_space_forms_agree(name):
    div = divergences.get(name)
    s = jnp.linspace(-6.0, 3.0, 19)
    np.testing.assert_allclose(div.f_log(s), div.f(jnp.exp(s)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(div.h_log(s), div.h(jnp.exp(s)), rtol=1e-10, atol=1e-12)


def test_quadrature_matches_closed_forms():
    q = G.Gaussian(jnp.array([0.3]), jnp.array([[0.8]]))
    p = G.Gaussian(jnp.array([-0.2]), jnp.array([[1.1]]))
    x = jnp.linspace(-12, 12, 24_001)
    dx = float(x[1] - x[0])
    log_q, log_p = G.log_prob(q, x[:, None]), G.log_prob(p, x[:, None])
    np.testing.assert_allclose(divergences.on_grid("reverse_kl", log_q, log_p, dx), G.kl(q, p), rtol=1e-8)
    np.testing.assert_allclose(divergences.on_grid("forward_kl", log_q, log_p, dx), G.kl(p, q), rtol=1e-8)
    # ∫(√p − √q)² = 2 − 2·BC, with the Bhattacharyya coefficient of two 1D Gaussians in closed form
    s1, s2, m1, m2 = 0.8, 1.1, 0.3, -0.2
    bc = np.sqrt(2 * s1 * s2 / (s1**2 + s2**2)) * np.exp(-((m1 - m2) ** 2) / (4 * (s1**2 + s2**2)))
    np.testing.assert_allclose(divergences.on_grid("hellinger", log_q, log_p, dx), 2 - 2 * bc, rtol=1e-8)
    # χ²(p‖q) = ∫p²/q − 1, by a direct numerical integral in scipy's terms
    xs = np.asarray(x)
    direct = np.sum(norm.pdf(xs, m2, s2) ** 2 / norm.pdf(xs, m1, s1)) * dx - 1
    np.testing.assert_allclose(divergences.on_grid("chi2", log_q, log_p, dx), direct, rtol=1e-8)


def test_bad_names_and_grids_raise():
    with pytest.raises(ValueError, match="unknown divergence 'tsallis'; expected one of 'reverse_kl', 'forward_kl', 'chi2', 'hellinger'"):
        divergences.get("tsallis")
    with pytest.raises(ValueError, match="same grid"):
        divergences.on_grid("chi2", jnp.zeros(3), jnp.zeros(4), 0.1)
    with pytest.raises(ValueError, match="cell_volume must be positive"):
        divergences.on_grid("chi2", jnp.zeros(3), jnp.zeros(3), 0.0)


def test_grid_cells_and_volume():
    g = divergences.grid([(0, 1), (-2, 2)], (4, 8))
    assert g.points.shape == (32, 2) and g.shape == (4, 8)
    assert abs(g.cell_volume - 0.25 * 0.5) < 1e-15
    np.testing.assert_allclose(g.points[0], [0.125, -1.75])
    with pytest.raises(ValueError, match="limits"):
        divergences.grid([(1, 0)], 10)


def test_quadrature_refuses_a_grid_that_misses_mass():
    q = G.Gaussian(jnp.array([0.0]), jnp.array([[1.0]]))
    log_q = lambda x: G.log_prob(q, x)
    wide, narrow = divergences.grid([(-10, 10)], 2000), divergences.grid([(-1, 1)], 200)
    assert abs(float(divergences.on_grid_fns("reverse_kl", log_q, log_q, wide))) < 1e-12
    with pytest.raises(ValueError, match="the grid holds mass 0.68"):
        divergences.on_grid_fns("reverse_kl", log_q, log_q, narrow)


def test_gaussian_optima_1d_finds_the_target_and_every_mode():
    g = divergences.grid([(-15, 15)], 3000)
    log_p = G.log_prob(G.Gaussian(jnp.array([0.7]), jnp.array([[1.3]])), g.points)
    (optimum,) = divergences.gaussian_optima_1d("reverse_kl", log_p, g, [-2.0, 0.0, 3.0])
    assert abs(optimum.mean - 0.7) < 1e-5 and abs(optimum.std - 1.3) < 1e-5 and abs(optimum.value) < 1e-8
    # two far-apart equal modes: reverse KL has a local minimum on each
    two = jnp.logaddexp(G.log_prob(G.Gaussian(jnp.array([-5.0]), jnp.eye(1)), g.points),
                        G.log_prob(G.Gaussian(jnp.array([5.0]), jnp.eye(1)), g.points)) - jnp.log(2.0)
    means = sorted(round(o.mean) for o in divergences.gaussian_optima_1d("reverse_kl", two, g, [-6.0, 6.0], [1.0]))
    assert means == [-5, 5]
