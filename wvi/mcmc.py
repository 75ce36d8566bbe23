"""The gold standard of Part III: the exact posterior sampled by NUTS, and how far a VI fit is from it.

`nuts` runs numpyro's No-U-Turn sampler (Hoffman & Gelman, 2014; step size and a dense or diagonal mass matrix
adapted during warm-up) on any unnormalised log density of a flat vector, in several chains, and reports numpyro's
split R-hat and effective sample size per coordinate. `distance_to_reference` compares a fit's first two moments
with those of a reference sample: the mean error in posterior standard deviations ``|m_j − μ_j| / σ_j``, the marginal
standard-deviation ratios s_j / σ_j, and W2 between the two Gaussian moment matches (`wvi.gaussian.w2`); the same
distance between two independent NUTS runs is the floor below which the gold standard cannot tell fits apart
(`floor_tolerance`). `competitive_accuracy` is the rule of the chapter's verdict on Yi & Liu's §5 claim (a fit's
test accuracy against the NUTS predictive's, within binomial standard errors); `mcnemar` compares the two point by
point on the same test set (the exact McNemar test).
Part III, "Bayesian logistic regression".
"""
from __future__ import annotations

import time
import warnings
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from wvi import gaussian as G
from wvi._checks import check_finite, check_ndim


class NUTSResult(NamedTuple):
    samples: np.ndarray  # (num_chains, num_samples, d)
    rhat: np.ndarray  # (d,) split R-hat over the chains
    ess: np.ndarray  # (d,) effective sample size of all chains together
    num_divergent: int  # divergent transitions after warm-up
    seconds: float  # wall time, compilation included

    @property
    def flat(self) -> np.ndarray:
        """All draws with the chains concatenated, an array of shape (num_chains · num_samples, d)."""
        return self.samples.reshape(-1, self.samples.shape[-1])


def nuts(key, log_density: Callable, init, num_chains: int = 4, num_warmup: int = 1000, num_samples: int = 1000,
         dense_mass: bool = True, target_accept: float = 0.9) -> NUTSResult:
    """NUTS draws from p(x) ∝ exp(log_density(x)) for x of shape (d,), chains started at `init` (d,) or
    (num_chains, d), run vectorised in one program (numpyro's chain_method="vectorized")."""
    with warnings.catch_warnings():  # numpyro imports tqdm.auto, which warns about widgets in a bare Jupyter kernel
        warnings.filterwarnings("ignore", message="IProgress not found")
        from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
        from numpyro.infer import MCMC, NUTS

    for name, value in (("num_chains", num_chains), ("num_warmup", num_warmup), ("num_samples", num_samples)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if num_chains < 2:
        raise ValueError("num_chains must be at least 2: R-hat compares chains")
    init = jnp.asarray(init)
    if init.ndim == 1:
        init = jnp.broadcast_to(init, (num_chains, init.shape[0]))
    if init.shape[0] != num_chains or init.ndim != 2:
        raise ValueError(f"init must have shape (d,) or ({num_chains}, d); got {init.shape}")
    check_finite(init, "init")
    start_values = jax.vmap(log_density)(init)
    if not np.all(np.isfinite(np.asarray(start_values))):
        raise ValueError("log_density is not finite at every chain's start in init; expected finite values there")
    kernel = NUTS(potential_fn=lambda x: -log_density(x), dense_mass=dense_mass, target_accept_prob=target_accept)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="vectorized", progress_bar=False)
    start = time.perf_counter()
    mcmc.run(key, init_params=init, extra_fields=("diverging",))
    samples = np.asarray(mcmc.get_samples(group_by_chain=True))
    seconds = time.perf_counter() - start
    diverging = int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))
    return NUTSResult(samples, np.asarray(split_gelman_rubin(samples)), np.asarray(effective_sample_size(samples)),
                      diverging, seconds)


class Distance(NamedTuple):
    mean_error: np.ndarray  # (d,) |m_j − μ_j| / σ_j
    std_ratio: np.ndarray  # (d,) s_j / σ_j
    w2: float  # W2 between N(m, Σ_q) and N(μ, Σ_ref)

    def summary(self) -> dict:
        """Scalars for a table: the largest and mean standardised mean error, the range of std ratios, W2."""
        return {"max mean error": float(np.max(self.mean_error)), "mean mean error": float(np.mean(self.mean_error)),
                "min std ratio": float(np.min(self.std_ratio)), "max std ratio": float(np.max(self.std_ratio)),
                "W2": float(self.w2)}


class Reference(NamedTuple):
    """A reference sample (n, d) and its moments, computed once (the NUTS draws of Part III)."""
    samples: np.ndarray
    mean: np.ndarray
    cov: np.ndarray

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))


def reference(samples) -> Reference:
    """Wrap a sample (n, d) with its mean and covariance (validated: finite, two-dimensional)."""
    samples = np.asarray(samples, np.float64)
    check_ndim(samples, 2, "reference", "a sample of shape (n, d)")
    check_finite(samples, "reference")
    return Reference(samples, samples.mean(0), np.cov(samples, rowvar=False))


def distance_to_reference(mean, cov, ref) -> Distance:
    """How far a fit with moments (mean (d,), cov (d, d)) is from a reference sample (n, d) or a `Reference`
    (module docstring). For a mixture, pass its moments: W2 then compares the two Gaussian moment matches."""
    ref = ref if isinstance(ref, Reference) else reference(ref)
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    d = ref.mean.shape[0]
    if mean.shape != (d,) or cov.shape != (d, d):
        raise ValueError(f"mean must be ({d},) and cov ({d}, {d}) to match the reference; got {mean.shape} and {cov.shape}")
    w2 = float(G.w2(G.from_covariance(jnp.asarray(mean), jnp.asarray(cov)),
                    G.from_covariance(jnp.asarray(ref.mean), jnp.asarray(ref.cov))))
    return Distance(np.abs(mean - ref.mean) / ref.std, np.sqrt(np.diag(cov)) / ref.std, w2)


def floor_tolerance(floor: float, minimum: float = 0.1, factor: float = 3.0) -> float:
    """max(minimum, factor · floor): a tolerance for a distance to NUTS that is never below what two independent
    NUTS runs of the same posterior disagree by (`floor`, e.g. their largest standardised mean error) times
    `factor`, nor below the fixed `minimum` (Part III states 0.1 posterior std and a factor of 3)."""
    if not np.isfinite(floor) or floor < 0:
        raise ValueError(f"floor must be finite and non-negative; got {floor!r}")
    return max(float(minimum), float(factor) * float(floor))


def accuracy_standard_error(accuracy: float, num_test: int) -> float:
    """The binomial standard error √(a(1 − a)/n) of a test accuracy a measured on n test points."""
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy must lie in [0, 1]; got {accuracy!r}")
    if not isinstance(num_test, (int, np.integer)) or num_test < 1:
        raise ValueError(f"num_test must be a positive integer; got {num_test!r}")
    return float(np.sqrt(accuracy * (1.0 - accuracy) / num_test))


def competitive_accuracy(accuracy: float, reference_accuracy: float, num_test: int, num_se: float = 2.0) -> bool:
    """Whether a fit's test accuracy is competitive with the reference's (the NUTS posterior predictive's): not
    below it by more than `num_se` binomial standard errors of the reference accuracy on the n = `num_test` test
    points (`accuracy_standard_error`). A better accuracy is always competitive. Part III's verdict on Yi & Liu's
    §5 claim is `wvi.report.verdict_of` over the fits of this test: all → reproduced, none → not reproduced."""
    tolerance = num_se * accuracy_standard_error(reference_accuracy, num_test)
    return bool(accuracy >= reference_accuracy - tolerance - 1e-12)


class McNemar(NamedTuple):
    """The discordant test points of a classifier against a reference on the same points, and the exact McNemar
    test of "the classifier errs more often" (`mcnemar`)."""

    lost: int  # points the reference classifies correctly and the classifier does not
    gained: int  # points the classifier classifies correctly and the reference does not
    p_value: float  # one-sided: P(Bin(lost + gained, ½) ≥ lost); 1 when no point is discordant


def mcnemar(correct, reference_correct) -> McNemar:
    """The exact McNemar test (McNemar, 1947; Dietterich, 1998) of whether a classifier is worse than a reference
    evaluated on the same n test points. Only the discordant points carry information: if both had the same error
    rate, each of the b + c points on which exactly one of them is right would be lost (b) rather than gained (c)
    with probability ½, so b ~ Bin(b + c, ½); the one-sided p-value is P(Bin(b + c, ½) ≥ b) (scipy's
    `binomtest`). A pairwise test: the accuracies' own binomial errors (`accuracy_standard_error`) do not enter.
    Part III, "Bayesian logistic regression", section 5.

    Args:
        correct: (n,) booleans, whether the classifier gets each test point right (`targets.logistic_pointwise`).
        reference_correct: (n,) booleans, the same for the reference on the same points.

    Returns:
        `McNemar(lost, gained, p_value)`.
    """
    correct, reference_correct = np.asarray(correct), np.asarray(reference_correct)
    for name, value in (("correct", correct), ("reference_correct", reference_correct)):
        if value.ndim != 1 or value.dtype != bool:
            raise ValueError(f"{name} must be a 1-D boolean array (one entry per test point); got dtype "
                             f"{value.dtype} and shape {value.shape}")
    if correct.shape != reference_correct.shape:
        raise ValueError(f"correct and reference_correct must cover the same test points; got shapes "
                         f"{correct.shape} and {reference_correct.shape}")
    lost = int(np.sum(reference_correct & ~correct))
    gained = int(np.sum(correct & ~reference_correct))
    if lost + gained == 0:
        return McNemar(0, 0, 1.0)
    p_value = scipy.stats.binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue
    return McNemar(lost, gained, float(p_value))
