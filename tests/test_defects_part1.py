"""Planted defects for Part I ("The Riemannian submersion", "ODE vs BBVI on a 2D Gaussian").

Each test runs a small, fast version of a chapter's main experiment twice, once as written and once with a defect
planted in the library by monkeypatch, computes the chapter's verdict with the chapter's own rule (the same
`wvi` function and threshold), and asserts that the defect flips it. The defect throughout is the one the path
estimator exists for: dropping its stop-gradient on q's parameters inside log q, which turns it into the
reparameterisation ("rep") estimator."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wvi import bbvi, flows
from wvi import gaussian as G
from wvi.algorithm import replicate, run
from wvi.report import verdict_of

# the chapters' thresholds
IDENTITY_TOL = 1e-10  # submersion: every identity row
REACH = 0.05  # ode_vs_bbvi: W2(q, p) at the end of the run
ZERO_VARIANCE = 1e-20  # ode_vs_bbvi: the path estimator's variance at the optimum


@pytest.fixture
def drop_stop_gradient(monkeypatch):
    """Plant the defect: every call of the path estimator differentiates through log q (= the rep estimator)."""
    original = bbvi.fdiv_loss

    def without_stop_gradient(q, noise, log_density, divergence="reverse_kl", estimator="path", ratio_scaling="none"):
        return original(q, noise, log_density, divergence, "rep", ratio_scaling)

    return lambda: monkeypatch.setattr(bbvi, "fdiv_loss", without_stop_gradient)


def quartic(d, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    A, b = (a + a.T) / 4 + 2 * np.eye(d), rng.normal(size=d)
    return lambda x: -0.25 * jnp.sum(x**4) - 0.5 * x @ A @ x + b @ x


def submersion_verdict():
    """The submersion chapter's "§3.2 BBVI = Euler" rows on one instance (d = 3): the per-draw gap between the path
    update pushed through dπ and the ODE's sample velocity (≤ 1e-10), and one SGD step against one Euler step
    from the same key (covariance gap ∝ η²: slope in [1.9, 2.1])."""
    d, n = 3, 7
    log_p = quartic(d)
    rng = np.random.default_rng(1)
    q = G.Gaussian(jnp.asarray(rng.normal(size=d) / 2), jnp.asarray(rng.normal(size=(d, d)) / 2 + np.eye(d)))
    mean_gap, cov_gap = bbvi.path_euler_gap(q, jnp.asarray(rng.normal(size=(n, d))), log_p)
    q_start, key, gaps = G.Gaussian(q.mean, 0.5 * jnp.eye(d)), jax.random.key(7), []
    step_sizes = (0.02, 0.01, 0.005)
    for eta in step_sizes:
        sgd, euler = bbvi.bbvi(log_p, optax.sgd(eta), n, "path"), flows.bw_euler(log_p, eta, n)
        q_sgd = sgd.step(key, sgd.init(q_start))[0].q
        gaps.append(float(jnp.max(jnp.abs(G.covariance(q_sgd) - euler.step(key, euler.init(q_start))[0].cov))))
    slope = np.polyfit(np.log(step_sizes), np.log(gaps), 1)[0]
    return verdict_of(max(mean_gap, cov_gap) <= IDENTITY_TOL, 1.9 <= slope <= 2.1)


def test_submersion_dropping_the_stop_gradient_breaks_bbvi_equals_euler(drop_stop_gradient):
    """Defect: the path estimator without its stop-gradient. Verdict of "§3.2 BBVI = Euler": reproduced → not
    reproduced (the score terms of log q make the per-draw gap O(1) and the one-step gap first order in η)."""
    assert submersion_verdict() == "reproduced"
    drop_stop_gradient()
    assert submersion_verdict() == "not reproduced"


TARGET = G.Gaussian(jnp.zeros(2), jnp.array([[0.8, 0.4], [0.4, 0.8]]))
Q0 = G.Gaussian(jnp.array([4.0, 2.0]), 0.8 * jnp.eye(2))
STEPS = 1001  # as in the chapter (its figure)


def log_p(x):
    return G.log_prob(TARGET, x)


def ode_vs_bbvi_verdicts(num_seeds=64):
    """The chapter's rows for "§3.3 2D Gaussian figure" that involve BBVI-path: "BBVI-path and the Euler ODE
    coincide" by section 1's rule over seeds (the largest relative gap of each seed's pair of runs,
    `flows.largest_relative_gaps`, `flows.coincidence_verdict`; the chapter's keys and 64 seeds), "BBVI-path reaches the target" (W2 < 0.05 on the figure's run),
    and its book row "the path estimator's variance at the optimum is zero"."""
    k_seeds_path, k_seeds_ode = jax.random.split(jax.random.key(5))
    path_runs = replicate(bbvi.bbvi(log_p, optax.sgd(0.01), 5, "path"), num_seeds)
    _, qs = run(k_seeds_path, path_runs, path_runs.init(Q0), STEPS, trace_fn=lambda s, i: s.q)
    euler_runs = replicate(flows.bw_euler(log_p, 0.01, 5), num_seeds)
    _, es = run(k_seeds_ode, euler_runs, euler_runs.init(Q0), STEPS,
                trace_fn=lambda s, i: jax.vmap(flows.to_gaussian)(s))
    coincide = flows.coincidence_verdict(flows.largest_relative_gaps(qs, es, TARGET))
    _, k_path, _, _, _ = jax.random.split(jax.random.key(0), 5)  # the figure's run
    algorithm = bbvi.bbvi(log_p, optax.sgd(0.01), 5, "path")
    final, _ = run(k_path, algorithm, algorithm.init(Q0), STEPS)
    reached = verdict_of(float(G.w2(final.q, TARGET)) < REACH)
    variance = float(bbvi.gradient_variance(jax.random.key(2), TARGET, log_p, 5, "path", 200))
    return coincide, reached, "holds" if variance <= ZERO_VARIANCE else "fails"


def test_ode_vs_bbvi_dropping_the_stop_gradient_breaks_the_coincidence(drop_stop_gradient):
    """Defect: the path estimator without its stop-gradient. Verdicts: "BBVI-path and the Euler ODE coincide"
    partly reproduced → not reproduced; "BBVI-path reaches the target" reproduced → not reproduced; book "sticking
    the landing" holds → fails."""
    assert ode_vs_bbvi_verdicts() == ("partly reproduced", "reproduced", "holds")
    drop_stop_gradient()
    assert ode_vs_bbvi_verdicts() == ("not reproduced", "not reproduced", "fails")


# ------------------------------------------------------------------------------------------------ part1/gaussian_vi
# The chapter's rows on its later works, each with a defect planted in wvi.gaussian_vi.
BOUND_TOL = 1e-9  # FB-GVI's contraction bound: W2's rounding
PART1_TARGET = G.Gaussian(jnp.zeros(2), jnp.array([[0.8, 0.4], [0.4, 0.8]]))
PART1_START = G.Gaussian(jnp.array([4.0, 2.0]), 0.8 * jnp.eye(2))


def _fb_gvi_rate_verdict(step_size=0.1, num_steps=150):
    """"FB-GVI rate": W2(q_k+1, p) ≤ (1 − αh) W2(q_k, p) + BOUND_TOL at every step, exact expectations."""
    from wvi import gaussian_vi as gvi

    precision = jnp.linalg.inv(G.covariance(PART1_TARGET))
    rate = 1 - float(jnp.linalg.eigvalsh(precision)[0]) * step_size
    mean, cov = PART1_START.mean, G.covariance(PART1_START)
    w2 = [float(G.w2(PART1_START, PART1_TARGET))]
    for _ in range(num_steps):
        mean, cov = gvi.fb_gvi_update(mean, cov, *gvi.gaussian_expectations(PART1_TARGET, mean, cov), step_size)
        w2.append(float(G.w2(G.from_covariance(mean, cov), PART1_TARGET)))
    w2 = np.array(w2)
    return verdict_of(np.max(w2[1:] - rate * w2[:-1]) <= BOUND_TOL)


def test_gaussian_vi_a_wrong_entropy_jko_breaks_fb_gvis_rate(monkeypatch):
    from wvi import gaussian_vi as gvi

    assert _fb_gvi_rate_verdict() == "reproduced"

    def jko_with_2h(cov, step_size):  # the defect: Σ(Σ + 2hI) under the root instead of Σ(Σ + 4hI)
        s, u = jnp.linalg.eigh(cov)
        return (u * 0.5 * (s + 2 * step_size + jnp.sqrt(s * (s + 2 * step_size)))) @ u.T

    monkeypatch.setattr(gvi, "entropy_jko", jko_with_2h)
    assert _fb_gvi_rate_verdict() == "not reproduced"


def _bw_sgd_neighbourhood_verdict(step_size=0.05, num_steps=2000, num_seeds=8):
    """"BW-SGD, constant step": the stationary W2 at h/4 below the one at h by more than 3 standard errors."""
    from wvi import gaussian_vi as gvi
    from wvi.algorithm import sweep

    log_p = lambda x: G.log_prob(PART1_TARGET, x)  # noqa: E731
    runs = sweep(jax.random.PRNGKey(11), lambda h: gvi.bw_sgd(log_p, h, 1), np.array([step_size, step_size / 4]),
                 (PART1_START,), num_steps, lambda s: G.w2(s.approximation, PART1_TARGET), num_seeds=num_seeds,
                 every=10)
    floor = runs[:, :, runs.shape[-1] // 2:].mean(axis=-1)
    se = np.sqrt(floor.var(axis=1, ddof=1).sum() / num_seeds)
    return verdict_of(floor[0].mean() - floor[1].mean() > 3 * se)


def test_gaussian_vi_a_step_that_ignores_h_breaks_bw_sgds_shrinking_neighbourhood(monkeypatch):
    from wvi import gaussian_vi as gvi

    assert _bw_sgd_neighbourhood_verdict() == "reproduced"
    correct = gvi.bw_sgd_update
    monkeypatch.setattr(gvi, "bw_sgd_update", lambda m, c, g, h_mat, step_size: correct(m, c, g, h_mat, 0.05))
    assert _bw_sgd_neighbourhood_verdict() == "not reproduced"
