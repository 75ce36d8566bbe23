"""wvi: variational inference as Wasserstein gradient flow, in JAX.

The library behind the `wvi` book. One module per concept::

  gaussian   full-covariance and diagonal Gaussians: sampling, densities, entropy, KL, W2, W2 geodesics
  bbvi       rep and path-derivative gradient estimators of KL(q‖p) and of any f-divergence; BBVI over any
             optax optimiser, for Gaussians and Gaussian mixtures
  ngvi       natural-gradient VI: the Bayesian learning rule for one Gaussian (the Fisher–Rao counterpart)
  gaussian_vi  Gaussian VI algorithms as discretisations of the BW flow: BW-SGD, FB-GVI, proximal BBVI,
             batch-and-match, and the protocol that compares them with BBVI and NGVI
  mixtures   Gaussian mixtures; GFlow-VI and NGFlow-VI, flows over the components' parameters (Part II)
  flows      the Bures–Wasserstein flow (velocities, Euler, solve_ivp), Langevin and SVGD particles
  divergences  f-divergences by name: f, h(r) = r f′(r) − f(r), log-space forms, grids and quadrature (Part II)
  ensembles  deep ensembles as particle flows: DE, DLE, DRLE, the MMD kernel, stationary laws on a grid
  networks   MLPs and ResNet20 (FRN / LayerNorm) as pure functions of parameter pytrees; Gaussian heads and
             ensemble metrics (Parts IV and V)
  bnn        mean-field Gaussian BNNs: the prior, VI and MAP training, the predictive log likelihood (Part V)
  align      permutation specs, `permute`, and the alignment of two mean-field posteriors (Algorithm 1, Part V)
  barrier    W2 geodesic and mixture paths between mean-field posteriors, and the loss barrier along them (Part V)
  mcmc       the gold standard: NUTS (numpyro) with R-hat and ESS, and a fit's distance to a reference sample (Part III)
  targets    the toys' losses and log densities; the logistic-regression posterior (Part III)
  data       offline data sets, seeded standardised splits, downloaders with SHA-256 checks
  algorithm  the init/step shape shared by every method, and `run`, the one driver (chunks, measurements,
             replicas, progress, divergence reports)
  plot       the book's plotting style and figure pieces
  display    results as tables, and a chapter's settings, as the book shows them
  report     claims checked by the chapters, collected for the reproduction report
  experiments  command-line runs that write result files (python -m wvi.experiments.permutation, Part V at full scale)
"""
import importlib

from wvi import (algorithm, align, barrier, bbvi, bnn, data, divergences, ensembles, flows, gaussian, gaussian_vi,
                 mixtures, networks, ngvi, targets)
from wvi.gaussian import Gaussian, MeanField

__version__ = "0.1.0"

# Imported on first use, so that `import wvi` needs only JAX, optax, NumPy and SciPy: plotting (matplotlib,
# seaborn), tables (pandas), NUTS (numpyro) and the book's report are the extras of `pip install "wvi[book]"`.
_LAZY = ("display", "mcmc", "plot", "report", "experiments")


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"wvi.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'wvi' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = ["algorithm", "align", "barrier", "bbvi", "data", "display", "divergences", "ensembles", "flows", "gaussian", "gaussian_vi", "mcmc",
           "bnn", "mixtures", "networks", "ngvi", "plot", "report", "targets", "Gaussian", "MeanField", "__version__"]
