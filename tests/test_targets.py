"""Tests of wvi.targets: the toy losses have the stated minima and normalisation."""
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import trapezoid

from wvi import targets


def test_double_well_minima_and_barrier():
    np.testing.assert_allclose(targets.double_well(jnp.array([-2.0, 0.0, 1.0])), [-4.375, -0.375, -1.0], rtol=1e-12)
    grid = np.linspace(-4, 3, 70_001)
    values = np.asarray(targets.double_well(grid))
    assert abs(grid[np.argmin(values)] + 2) < 1e-4


def test_four_modes_is_a_normalised_negative_log_density():
    xs = np.linspace(-10, 10, 401)
    points = np.stack(np.meshgrid(xs, xs), axis=-1)
    density = np.exp(-np.asarray(targets.four_modes(points)))
    assert abs(trapezoid(trapezoid(density, xs), xs) - 1) < 1e-8
    with pytest.raises(ValueError, match="2 coordinates"):
        targets.four_modes(jnp.zeros(3))


@pytest.mark.parametrize("name, limits, num", [("rosenbrock", [(-5, 7), (-6, 45)], (400, 1200)),
                                               ("mixture_1d", [(-8, 10)], (4000,)),
                                               ("four_gaussians", [(-10, 10), (-10, 10)], (400, 400))])
def test_part2_targets_are_normalised(name, limits, num):
    from wvi import divergences

    g = divergences.grid(limits, num)
    mass = float(jnp.sum(jnp.exp(getattr(targets, name)(g.points))) * g.cell_volume)
    assert abs(mass - 1.0) < 1e-6


def test_rosenbrock_mode_and_shape_check():
    np.testing.assert_allclose(targets.rosenbrock(jnp.array([1.0, 1.0])), -np.log(np.pi), rtol=1e-12)
    with pytest.raises(ValueError, match="2 coordinates"):
        targets.rosenbrock(jnp.zeros(3))
