"""Planted defects for Part III (book/part3/logreg.ipynb): a small, fast version of the chapter's main experiment
must flip the chapter's verdict on Yi & Liu's §5 claim when the estimator is broken.

The chapter's rule (`wvi.mcmc.competitive_accuracy`, folded by `wvi.report.verdict_of`): every path-estimator fit's
test accuracy is within 2 binomial standard errors (n test points) of the NUTS posterior predictive's."""
import jax
import jax.numpy as jnp
import optax
import pytest

from wvi import bbvi, data, mcmc, report, targets
from wvi.algorithm import DivergenceError, run, trace_loss

PRIOR_STD, STEPS, DRAWS = 1.0, 300, 32
METHODS = {"path-RKL": "reverse_kl", "path-FKL": "forward_kl"}


@pytest.fixture(scope="module")
def problem():
    """Diabetes (as in the chapter), with the Laplace approximation (the log-concave posterior's mode by Newton's
    method and its Hessian) standing in for NUTS as the cheap reference predictive."""
    split = data.binary_classification("diabetes", test_fraction=0.2, seed=0)
    log_posterior = targets.logistic_regression(split.x_train, split.y_train, PRIOR_STD)
    hessian = jax.jit(jax.hessian(log_posterior))
    newton = jax.jit(lambda w: w - jnp.linalg.solve(hessian(w), jax.grad(log_posterior)(w)))
    w = jnp.zeros(split.x_train.shape[1])
    for _ in range(20):
        w = newton(w)
    cov = jnp.linalg.inv(-hessian(w))
    draws = jax.random.multivariate_normal(jax.random.key(0), w, cov, (2_000,))
    reference_accuracy = targets.logistic_predictive(draws, split.x_test, split.y_test)["accuracy"]
    return split, reference_accuracy


def flipped_likelihood_gradient(x, y):
    """The planted defect: the log posterior's value is right, but its log-likelihood gradient has the wrong sign
    (2·stop_gradient(ℓ) − ℓ has ℓ's value and −∇ℓ), as if the estimator pushed draws down the likelihood."""
    x, y = jnp.asarray(x), jnp.asarray(y, dtype=jnp.asarray(x).dtype)

    def log_density(w):
        ll = targets.logistic_log_likelihood(w, x, y)
        return targets.gaussian_log_prior(w, PRIOR_STD) + 2 * jax.lax.stop_gradient(ll) - ll
    return log_density


def section5_verdict(split, reference_accuracy, log_density):
    """The chapter's §5 verdict on mean-field path-RKL and path-FKL fits of `log_density` (a short run), judged against the reference's accuracy as the chapter judges against NUTS's; a fit
    that diverges is not competitive."""
    met = []
    for divergence in METHODS.values():
        q0 = bbvi.initial("mean-field", split.x_train.shape[1])
        algorithm = bbvi.bbvi(log_density, optax.adam(0.05), DRAWS, "path", divergence)
        try:
            final, _ = run(jax.random.key(2), algorithm, algorithm.init(q0), STEPS, trace_fn=trace_loss)
        except DivergenceError:
            met.append(False)
            continue
        accuracy = targets.logistic_predictive(final.sample(jax.random.key(3), 2_000), split.x_test,
                                               split.y_test)["accuracy"]
        met.append(mcmc.competitive_accuracy(accuracy, reference_accuracy, len(split.y_test)))
    return report.verdict_of(*met)


def test_flipped_likelihood_gradient_flips_the_section5_verdict(problem):
    """Defect: the log-likelihood gradient's sign flipped in the density the fits see (value unchanged).
    Verdict on Yi & Liu "§5 logistic regression": "reproduced" without the defect, "not reproduced" with it."""
    split, reference_accuracy = problem
    correct = targets.logistic_regression(split.x_train, split.y_train, PRIOR_STD)
    assert section5_verdict(split, reference_accuracy, correct) == "reproduced"
    defect = flipped_likelihood_gradient(split.x_train, split.y_train)
    w = jnp.linspace(-1.0, 1.0, split.x_train.shape[1])
    assert float(defect(w)) == pytest.approx(float(correct(w)))  # same value: only the gradient is wrong
    assert section5_verdict(split, reference_accuracy, defect) == "not reproduced"
