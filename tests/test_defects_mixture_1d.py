"""Planted defects for Part II, "Mixtures in 1D": flip the sign of h(r) = r f′(r) − f(r); wire χ² to reverse KL.

The chapter's verdict on Yi & Liu's "§4.2 unbiased estimator" comes from `wvi.bbvi.unbiasedness` and
`wvi.bbvi.unbiased` (every coordinate of the Monte Carlo mean within 4 standard errors of jax.grad of the
quadrature). Here the same rule runs on a smaller version of the chapter's experiment (one divergence, fewer
draws), once as written and once with −h in place of h, which turns the estimator into one of −∇D_f. The
mass-covering row's width rule (section 3) is checked the same way on the exact χ² optimum."""
import jax
import jax.numpy as jnp
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
