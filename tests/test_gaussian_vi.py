"""Tests of wvi.gaussian_vi: each pure update against a NumPy/SciPy transcription of its paper's formula, the fixed
points at a Gaussian target, FB-GVI's W2 contraction (Diao et al.'s theorem), the Algorithm API of every method of
`METHODS`, argument checks, and the cost model `gradients_per_step`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from wvi import gaussian as G
from wvi import gaussian_vi as gv
from wvi import ngvi
from wvi.algorithm import run, stable, sweep, trace_loss

SEEDS = (0, 1, 2)
RTOL, ATOL = 1e-10, 1e-12

TARGET = G.Gaussian(jnp.array([0.5, -1.0]), jnp.linalg.cholesky(jnp.array([[0.8, 0.4], [0.4, 0.8]])))
Q0 = G.Gaussian(jnp.array([2.0, 1.0]), jnp.array([[1.5, 0.0], [0.3, 0.6]]))


def log_target(x):
    return G.log_prob(TARGET, x)


def spd(rng, d, floor=0.3):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + floor * np.eye(d)


def symmetric(rng, d):
    b = rng.normal(size=(d, d))
    return 0.5 * (b + b.T)


def lower(rng, d):
    return np.tril(rng.normal(size=(d, d)))


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------- transcriptions of the papers' formulas (NumPy)


def ref_bw_sgd(m, cov, g, hess, h):
    """Lambert et al. 2022: M = H − Σ⁻¹; m' = m − h g; Σ' = (I − hM) Σ (I − hM)."""
    a = np.eye(len(m)) - h * (hess - np.linalg.inv(cov))
    return m - h * g, a @ cov @ a


def ref_jko(cov, h):
    """Diao et al. 2023: Σ' = ½(Σ + 2hI + (Σ(Σ + 4hI))^½)."""
    eye = np.eye(len(cov))
    return 0.5 * (cov + 2 * h * eye + scipy.linalg.sqrtm(cov @ (cov + 4 * h * eye)).real)


def ref_fb_gvi(m, cov, g, hess, h):
    a = np.eye(len(m)) - h * hess
    return m - h * g, ref_jko(a @ cov @ a, h)


def ref_prox(scale, h):
    """Domke et al. 2023: s_jj → (s_jj + √(s_jj² + 4h)) / 2 of a lower-triangular S, off-diagonal unchanged."""
    out = np.array(scale, dtype=float)
    s = np.diag(out)
    out[np.diag_indices_from(out)] = 0.5 * (s + np.sqrt(s**2 + 4 * h))
    return out


def ref_proximal(m, scale, g_m, g_s, h):
    return m - h * g_m, ref_prox(np.tril(scale - h * g_s), h)


def ref_bam(m, cov, x_mean, x_cov, g_mean, g_cov, lam):
    """Cai et al. 2024 (the GSM-VI reference form)."""
    d = len(m)
    u = lam * g_cov + lam / (1 + lam) * np.outer(g_mean, g_mean)
    v = cov + lam * x_cov + lam / (1 + lam) * np.outer(m - x_mean, m - x_mean)
    new_cov = 2 * v @ np.linalg.inv(np.eye(d) + scipy.linalg.sqrtm(np.eye(d) + 4 * u @ v).real)
    new_mean = m / (1 + lam) + lam / (1 + lam) * (new_cov @ g_mean + x_mean)
    return new_mean, new_cov, u, v


# ------------------------------------------------------------------------------- the updates against the formulas


@pytest.mark.parametrize("seed", SEEDS)
def test_bw_sgd_update_matches_lambert_et_al(seed):
    rng = np.random.default_rng(seed)
    d = 4
    m, cov, g, hess = rng.normal(size=d), spd(rng, d), rng.normal(size=d), symmetric(rng, d)
    for h in (0.01, 0.3):
        mean, new_cov = gv.bw_sgd_update(jnp.asarray(m), jnp.asarray(cov), jnp.asarray(g), jnp.asarray(hess), h)
        ref_m, ref_c = ref_bw_sgd(m, cov, g, hess, h)
        close(mean, ref_m)
        close(new_cov, ref_c)


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_jko_matches_diao_et_al(seed):
    rng = np.random.default_rng(seed)
    cov = spd(rng, 4, floor=0.05)
    for h in (0.01, 0.5, 3.0):
        new = np.asarray(gv.entropy_jko(jnp.asarray(cov), h))
        close(new, ref_jko(cov, h))
        assert np.linalg.eigvalsh(new).min() > h  # every eigenvalue becomes > h


@pytest.mark.parametrize("seed", SEEDS)
def test_fb_gvi_update_matches_diao_et_al(seed):
    rng = np.random.default_rng(seed)
    d = 4
    m, cov, g, hess = rng.normal(size=d), spd(rng, d), rng.normal(size=d), symmetric(rng, d)
    for h in (0.01, 0.3):
        mean, new_cov = gv.fb_gvi_update(jnp.asarray(m), jnp.asarray(cov), jnp.asarray(g), jnp.asarray(hess), h)
        ref_m, ref_c = ref_fb_gvi(m, cov, g, hess, h)
        close(mean, ref_m)
        close(new_cov, ref_c)


@pytest.mark.parametrize("seed", SEEDS)
def test_entropy_prox_matches_domke_et_al(seed):
    rng = np.random.default_rng(seed)
    scale = lower(rng, 4)  # diagonal entries of either sign
    for h in (0.01, 0.5):
        new = np.asarray(gv.entropy_prox(jnp.asarray(scale), h))
        close(new, ref_prox(scale, h))
        assert np.all(np.diag(new) > 0) and np.all(np.triu(new, 1) == 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_proximal_update_matches_domke_et_al(seed):
    rng = np.random.default_rng(seed)
    d = 4
    m, scale, g_m, g_s = rng.normal(size=d), lower(rng, d), rng.normal(size=d), rng.normal(size=(d, d))
    for h in (0.01, 0.3):
        mean, new_scale = gv.proximal_update(*map(jnp.asarray, (m, scale, g_m, g_s)), h)
        ref_m, ref_s = ref_proximal(m, scale, g_m, g_s, h)
        close(mean, ref_m)
        close(new_scale, ref_s)
        assert np.all(np.triu(np.asarray(new_scale), 1) == 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_and_match_update_matches_cai_et_al(seed):
    rng = np.random.default_rng(seed)
    d = 4
    m, cov, x_mean, x_cov = rng.normal(size=d), spd(rng, d), rng.normal(size=d), spd(rng, d)
    g_mean, g_cov = rng.normal(size=d), spd(rng, d)
    for lam in (0.1, 1.0, 8.0):
        mean, new_cov = gv.batch_and_match_update(*map(jnp.asarray, (m, cov, x_mean, x_cov, g_mean, g_cov)), lam)
        ref_m, ref_c, u, v = ref_bam(m, cov, x_mean, x_cov, g_mean, g_cov, lam)
        close(new_cov, ref_c)
        close(mean, ref_m)
        new_cov = np.asarray(new_cov)
        close(new_cov @ u @ new_cov + new_cov, v)  # Σ' solves Σ'UΣ' + Σ' = V
        assert np.linalg.eigvalsh(new_cov).min() > 0


# --------------------------------------------------------------------------------- fixed points at a Gaussian target


def random_target(seed, d=3):
    rng = np.random.default_rng(seed)
    cov = spd(rng, d)
    return G.from_covariance(jnp.asarray(rng.normal(size=d)), jnp.asarray(cov)), cov


@pytest.mark.parametrize("seed", SEEDS)
def test_every_update_fixes_the_gaussian_target_with_exact_expectations(seed):
    target, cov = random_target(seed)
    m_p = target.mean
    precision = np.linalg.inv(cov)
    big = np.linalg.eigvalsh(precision).max()
    g, hess = gv.gaussian_expectations(target, m_p, jnp.asarray(cov))
    close(g, np.zeros(3))
    close(hess, precision)
    chol = jnp.linalg.cholesky(jnp.asarray(cov))
    # FB-GVI returns Σp only for h ≤ 1/L: its forward step maps an eigenvalue σ of Σp to s = (σ − h)²/σ, and the JKO
    # step maps s to ½(s + 2h + |σ − h|(σ + h)/σ), which is σ when h ≤ σ. At h = 1/L exactly, s = 0 and the square
    # root in the JKO step turns a rounding error of 1e-17 into one of 1e-9, hence 0.9/L.
    for h in (0.05 / big, 0.5 / big, 0.9 / big):
        for update in (gv.bw_sgd_update, gv.fb_gvi_update):
            mean, new_cov = update(m_p, jnp.asarray(cov), g, hess, h)
            close(mean, m_p)
            close(new_cov, cov)
        # proximal BBVI with the exact energy gradients (∇_m, ∇_S) E_q[V] = (A(m − m_p), A S)
        mean, scale = gv.proximal_update(m_p, chol, g, hess @ chol, h)
        close(mean, m_p)
        close(scale, chol)
        mean, new_precision = ngvi.blr_update(m_p, jnp.asarray(precision), g, hess, h)
        close(mean, m_p)
        close(new_precision, precision)
    for lam in (0.1, 1.0, 10.0):  # x̄ = m, C = Σ, ḡ = −A(m − m_p), Γ = AΣA at q = p
        mean, new_cov = gv.batch_and_match_update(m_p, jnp.asarray(cov), m_p, jnp.asarray(cov), -g,
                                                  hess @ jnp.asarray(cov) @ hess, lam)
        close(mean, m_p)
        close(new_cov, cov)


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_fb_gvi_contracts_w2_at_rate_one_minus_alpha_h(fraction):
    """Diao et al. (2023), Theorem: for V α-strongly convex and L-smooth and h ≤ 1/L,
    W2(q_k, p) ≤ (1 − αh)^k W2(q_0, p)."""
    rng = np.random.default_rng(7)
    d, alpha, smooth = 5, 0.5, 4.0
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    eigenvalues = np.concatenate([[alpha, smooth], rng.uniform(alpha, smooth, d - 2)])
    precision = rotation @ np.diag(eigenvalues) @ rotation.T
    target = G.from_covariance(jnp.asarray(rng.normal(size=d)), jnp.asarray(np.linalg.inv(precision)))
    mean, cov = jnp.asarray(rng.normal(size=d) * 2.0), jnp.asarray(spd(rng, d, floor=0.5) * 2.0)
    h = fraction / smooth
    w0 = float(G.w2(G.from_covariance(mean, cov), target))
    assert w0 > 1.0
    for k in range(1, 41):
        g, hess = gv.gaussian_expectations(target, mean, cov)
        mean, cov = gv.fb_gvi_update(mean, cov, g, hess, h)
        w = float(G.w2(G.from_covariance(mean, 0.5 * (cov + cov.T)), target))
        assert w <= (1 - alpha * h) ** k * w0 * (1 + 1e-9), (k, w, (1 - alpha * h) ** k * w0)


# ------------------------------------------------------------------------------------------ the Algorithm interface


def test_methods_name_the_constructors():
    assert list(gv.METHODS) == ["BBVI-rep", "BBVI-path", "BW-SGD", "FB-GVI", "proximal BBVI", "NGVI",
                                "batch-and-match"]
    assert gv.METHODS["BW-SGD"].make is gv.bw_sgd and gv.METHODS["FB-GVI"].make is gv.fb_gvi
    assert gv.METHODS["proximal BBVI"].make is gv.proximal_bbvi
    assert gv.METHODS["batch-and-match"].make is gv.batch_and_match


@pytest.mark.parametrize("name", list(gv.METHODS))
def test_every_method_is_an_algorithm_that_jits_vmaps_and_converges(name):
    algorithm = gv.METHODS[name].make(log_target, 0.1, 4)
    state = algorithm.init(Q0)
    step = jax.jit(algorithm.step)
    a, info = step(jax.random.key(0), state)
    b, _ = step(jax.random.key(0), state)
    c, _ = step(jax.random.key(1), state)
    assert isinstance(a.approximation, G.Gaussian)
    np.testing.assert_array_equal(G.covariance(a.approximation), G.covariance(b.approximation))
    assert not np.allclose(a.approximation.mean, c.approximation.mean)
    assert np.isfinite(float(info.loss))
    assert a.sample(jax.random.key(2), 7).shape == (7, 2)
    keys = jax.random.split(jax.random.key(3), 3)
    batched, infos = jax.vmap(algorithm.step, in_axes=(0, None))(keys, state)
    assert batched.approximation.mean.shape == (3, 2) and infos.loss.shape == (3,)
    one, _ = step(keys[1], state)
    np.testing.assert_allclose(batched.approximation.mean[1], one.approximation.mean, rtol=1e-12)
    # a short run on the 2-D Gaussian target (h = 0.1 is stable for every method here)
    w0 = float(G.w2(Q0, TARGET))
    final, losses = run(jax.random.key(4), algorithm, state, 100, trace_fn=trace_loss)
    assert losses.shape == (100,) and np.all(np.isfinite(losses))
    assert float(G.w2(final.approximation, TARGET)) < 0.2 * w0


@pytest.mark.parametrize("name", list(gv.METHODS))
def test_every_method_takes_a_traced_step_size_in_a_sweep(name):
    """`wvi.algorithm.sweep` passes the step size traced. A step size far beyond 1/L breaks the Euler schemes of the
    BW flow without raising (BW-SGD's Σ stops being positive definite: NaN), while batch-and-match, a proximal point
    method, stays stable for any λ (NGVI's safeguarded update, no claim either way)."""
    measure = lambda state: G.w2(state.approximation, TARGET)  # noqa: E731
    make = gv.METHODS[name].make
    curves = sweep(jax.random.key(0), lambda h: make(log_target, h, 4), jnp.array([0.1, 5.0]), (Q0,), 20, measure,
                   every=10)
    assert curves.shape == (2, 1, 3)
    w0 = float(G.w2(Q0, TARGET))
    np.testing.assert_allclose(curves[:, 0, 0], w0, rtol=1e-10)
    ok = stable(curves, start=w0)[:, 0]
    assert ok[0]
    if name != "NGVI":
        assert ok[1] == (name == "batch-and-match")
    if name == "BW-SGD":
        assert not np.all(np.isfinite(curves[1]))


# --------------------------------------------------------------------------------------------------- bad arguments

NEW = {"bw_sgd": gv.bw_sgd, "fb_gvi": gv.fb_gvi, "proximal_bbvi": gv.proximal_bbvi,
       "batch_and_match": gv.batch_and_match}


@pytest.mark.parametrize("make", NEW.values(), ids=list(NEW))
def test_bad_arguments_raise_value_errors_naming_them(make):
    for step_size in (0.0, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="step_size"):
            make(log_target, step_size, 4)
    for num_samples in (0, 2.5, -1, True):
        with pytest.raises(ValueError, match="num_samples"):
            make(log_target, 0.1, num_samples)
    with pytest.raises(ValueError, match="log_density"):
        make("not a function", 0.1, 4)
    algorithm = make(log_target, 0.1, 4)
    with pytest.raises(ValueError, match="q0.scale is singular"):
        algorithm.init(G.Gaussian(jnp.zeros(2), jnp.array([[1.0, 0.0], [0.5, 0.0]])))  # a zero column
    with pytest.raises(ValueError, match="q0 must have a positive definite covariance"):
        algorithm.init(G.meanfield(jnp.zeros(2), 1e-200))  # std > 0, but Σ = std² underflows to 0
    with pytest.raises(ValueError, match="q0 must be a MeanField over a vector"):
        algorithm.init(G.meanfield({"w": jnp.zeros(2), "b": jnp.zeros(())}, 1.0))
    with pytest.raises(ValueError, match="q0"):
        algorithm.init((jnp.zeros(2), jnp.eye(2)))
    assert isinstance(algorithm.init(G.meanfield(jnp.zeros(2), 0.5)).approximation, G.Gaussian)


def test_every_method_checks_its_step_size_and_num_samples():
    for name, method in gv.METHODS.items():
        for step_size in (0.0, -0.1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="step_size"):
                method.make(log_target, step_size, 4)
        with pytest.raises(ValueError, match="num_samples"):
            method.make(log_target, 0.1, True)


def test_ngvi_refuses_a_pytree_meanfield_naming_q0():
    algorithm = gv.METHODS["NGVI"].make(log_target, 0.1, 4)
    with pytest.raises(ValueError, match="q0"):
        algorithm.init(G.meanfield({"a": jnp.ones(2)}, 1.0))


def test_gradients_per_step_refuses_bad_counts():
    for dim, num_samples in ((2.5, 4), (-3, 4), (3, 0), (3, True)):
        with pytest.raises(ValueError, match="dim|num_samples"):
            gv.gradients_per_step("FB-GVI", dim, num_samples)


# ---------------------------------------------------------------------------------------------------- cost model


def test_gradients_per_step():
    assert gv.gradients_per_step("FB-GVI", 10, 4) == 40
    assert gv.gradients_per_step("BW-SGD", 3, 1) == 3
    assert gv.gradients_per_step("NGVI", 10, 4) == 40
    assert gv.gradients_per_step("BBVI-path", 10, 4) == 4
    assert gv.gradients_per_step("batch-and-match", 10, 4) == 4
    assert gv.gradients_per_step("proximal BBVI", 10, 4) == 4
    assert {name for name, m in gv.METHODS.items() if m.hessians} == {"BW-SGD", "FB-GVI", "NGVI"}
    with pytest.raises(ValueError, match="unknown method 'ADVI'"):
        gv.gradients_per_step("ADVI", 10, 4)


# ---------------------------------------------------------------------------------------------------- compare


def test_compare_finds_stable_steps_and_spends_equal_budgets():
    target = G.Gaussian(jnp.array([1.0, -1.0]), jnp.array([[1.0, 0.0], [0.5, 0.5]]))
    q0 = G.Gaussian(jnp.zeros(2), jnp.eye(2))
    methods = {"path": ("BBVI-path", 4), "FB-GVI": ("FB-GVI", 4)}
    result = gv.compare(jax.random.key(0), methods, lambda x: G.log_prob(target, x), q0,
                        lambda q: G.w2(q, target), [0.01, 0.1, 30.0], sweep_steps=40, budget=800, num_points=10,
                        sweep_seeds=2, num_seeds=3)
    for label in methods:
        assert result.final[label].shape == (3, 2) and result.curves[label].shape == (3, 11)
        assert list(result.stable[label]) == [True, True, False]  # h = 30 diverges for both
        assert result.best[label] == 0.1 and gv.largest_stable(result, label) == 0.1
        assert result.evaluations[label][-1] <= 800  # the same budget, whatever a step costs
    assert result.evaluations["path"][1] == 4 * 20 and result.evaluations["FB-GVI"][1] == 8 * 10
    start = float(G.w2(q0, target))
    assert np.all(result.curves["path"][:, 0] == start)
    assert np.median(result.curves["path"][:, -1]) < 1e-3 * start  # path BBVI sticks the landing
    assert gv.evaluations_to_reach(result, "path", 0.5 * start) <= 800
    assert gv.evaluations_to_reach(result, "path", 0.0) == float("inf")


def test_compare_reports_a_method_without_a_stable_step():
    target = G.Gaussian(jnp.zeros(2), jnp.eye(2))
    result = gv.compare(jax.random.key(1), {"rep": ("BBVI-rep", 2)}, lambda x: G.log_prob(target, x),
                        G.Gaussian(jnp.ones(2), jnp.eye(2)), lambda q: G.w2(q, target), [50.0, 100.0],
                        sweep_steps=20, budget=40, num_points=4)
    assert np.isnan(result.best["rep"]) and np.isnan(gv.largest_stable(result, "rep"))
    assert np.all(np.isnan(result.curves["rep"]))


def test_best_step_treats_distances_below_the_resolution_as_ties_won_by_the_largest_step():
    grid = [0.1, 1.0, 10.0, 100.0]
    final = np.array([[0.5, 0.7], [3e-15, 1e-16], [1e-14, 0.0], [np.inf, np.inf]])
    stable = np.array([True, True, True, False])
    # without a resolution, rounding decides: steps 1 and 10 have medians 1.55e-15 and 5e-15
    assert gv.best_step(grid, final, stable) == 1.0
    # with it, both reached the optimum and the larger step wins (the unstable h = 100 never does)
    assert gv.best_step(grid, final, stable, resolution=1e-8) == 10.0
    # exact ties go to the largest step too, and a clear winner stays the winner
    assert gv.best_step(grid, [[0.2], [0.2], [0.3], [0.1]], [True, True, True, False]) == 1.0
    assert gv.best_step(grid, [[0.2], [0.05], [0.3], [0.1]], [True] * 4, resolution=1e-8) == 1.0
    assert np.isnan(gv.best_step(grid, final, np.zeros(4, bool)))
    with pytest.raises(ValueError, match="must agree"):
        gv.best_step(grid, final[:3], stable)
    with pytest.raises(ValueError, match="resolution"):
        gv.best_step(grid, final, stable, resolution=-1.0)
