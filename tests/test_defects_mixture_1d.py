"""Planted defects for Part II, "Mixtures in 1D": flip the sign of h(r) = r f′(r) − f(r); wire χ² to reverse KL.

The chapter's verdict on Yi & Liu's "§4.2 unbiased estimator" comes from `wvi.bbvi.unbiasedness` and
`wvi.bbvi.unbiased` (every coordinate of the Monte Carlo mean within 4 standard errors of jax.grad of the
quadrature). Here the same rule runs on a smaller version of the chapter's experiment (one divergence, fewer
draws), once as written and once with −h in place of h, which turns the estimator into one of −∇D_f. The
mass-covering row's width rule (section 3) is checked the same way on the exact χ² optimum and on five BBVI
replicas."""
import jax
import jax.numpy as jnp
import optax
import pytest

from wvi import bbvi, divergences
from wvi import mixtures as M
from wvi.report import verdict_of
from wvi.targets import mixture_1d, mixture_1d_target

GRID = divergences.grid([(-12.0, 14.0)], 5000)  # the chapter's grid
Q_TEST = M.Mixture(jnp.array([0.3, -0.2]), jnp.array([[-0.5], [2.0]]), jnp.array([[[1.2]], [[1.5]]]))  # the chapter's q


def unbiasedness_verdict(name):
    u = bbvi.unbiasedness(jax.random.key(5), Q_TEST, mixture_1d, GRID, 10, 2000, name, "none")
    return verdict_of(bbvi.unbiased(u))


@pytest.mark.parametrize("name", ["forward_kl", "hellinger"])
def test_flipping_the_sign_of_h_breaks_unbiasedness(monkeypatch, name):
    """Defect: h(r) → −h(r) in the divergence's table. Verdict of "§4.2 unbiased estimator": reproduced → not
    reproduced (the estimator's mean becomes −∇D_f, hundreds of standard errors away)."""
    assert unbiasedness_verdict(name) == "reproduced"
    div = divergences.DIVERGENCES[name]
    flipped = div._replace(h=lambda r, h=div.h: -h(r), h_log=lambda s, h_log=div.h_log: -h_log(s))
    monkeypatch.setitem(divergences.DIVERGENCES, name, flipped)
    assert unbiasedness_verdict(name) == "not reproduced"


def chi2_covers_verdict():
    """The exact-optimum half of the chapter's App. B.1 row "χ² is mass covering" (section 3): the best single
    Gaussian under χ² (scipy's BFGS by quadrature, the chapter's 11 starting means) is at least as wide as p,
    std ≥ p's − 1e-3."""
    log_p = mixture_1d(GRID.points)
    p_std = float(jnp.sqrt(jnp.squeeze(M.moments(mixture_1d_target())[1])))
    best = divergences.gaussian_optima_1d("chi2", log_p, GRID, jnp.linspace(-3.0, 7.0, 11))[0]
    return verdict_of(best.std >= p_std - 1e-3)


def test_wiring_chi2_to_reverse_kl_breaks_mass_covering(monkeypatch):
    """Defect: the χ² entry of the divergence table wired to reverse KL's. Verdict of the exact-optimum half of "χ²
    is mass covering": reproduced (std 1.889 against p's 1.764) → not reproduced (reverse KL's optimum, 1.510, is
    narrower than p): the width rule tells mass covering from mode seeking, which the rule it replaced did not."""
    assert chi2_covers_verdict() == "reproduced"
    monkeypatch.setitem(divergences.DIVERGENCES, "chi2", divergences.DIVERGENCES["reverse_kl"])
    assert chi2_covers_verdict() == "not reproduced"


def chi2_replicas_cover_verdict(num_replicas=5):
    """The BBVI half of the same row: `num_replicas` K = 1 fits under χ² (the chapter's setting: Adam 0.01, 10 draws
    a step, path estimator, batch-maximum scaling, 2001 steps; each from its own start, means and logits
    ~ N(0, 1), std 1, and its own noise); their mean std at least p's less 3 standard errors of that mean."""
    import numpy as np

    from wvi.algorithm import run

    p_std = float(jnp.sqrt(jnp.squeeze(M.moments(mixture_1d_target())[1])))
    algorithm = bbvi.bbvi(mixture_1d, optax.adam(0.01), 10, "path", "chi2", "max")

    def start(key):
        k1, k2 = jax.random.split(key)
        return M.Mixture(jax.random.normal(k1, (1,)), jax.random.normal(k2, (1, 1)), jnp.ones((1, 1, 1)))

    starts = jax.vmap(start)(jax.random.split(jax.random.key(8), num_replicas))
    states, _ = run(jax.random.key(9), algorithm, jax.vmap(algorithm.init)(starts), 2001, num_replicas=num_replicas)
    stds = np.array([float(jnp.sqrt(jnp.squeeze(M.moments(jax.tree_util.tree_map(lambda a: a[r], states.q))[1])))
                     for r in range(num_replicas)])
    return verdict_of(stds.mean() >= p_std - 3 * stds.std(ddof=1) / np.sqrt(num_replicas))


def test_wiring_chi2_to_reverse_kl_breaks_the_bbvi_half_of_mass_covering(monkeypatch):
    """Defect: as above, on the BBVI replicas. Their half of "χ² is mass covering": reproduced (the chapter's five
    replicas: mean 1.869) → not reproduced (reverse KL's replicas: mean 1.530 against p's 1.764). It replaced a
    half that allowed each fit its own W2 to its optimum, which no fit could fail."""
    assert chi2_replicas_cover_verdict() == "reproduced"
    monkeypatch.setitem(divergences.DIVERGENCES, "chi2", divergences.DIVERGENCES["reverse_kl"])
    assert chi2_replicas_cover_verdict() == "not reproduced"
