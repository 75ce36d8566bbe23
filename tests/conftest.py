"""Unit tests check identities to high precision: float64 for the whole session (the chapters also choose it).

A test module marked `float32` (`pytestmark = pytest.mark.float32`) runs in JAX's default float32 instead: the
full-scale experiment commands (`wvi.experiments`), which the CLI and the GPU campaign run in float32, are tested
in the dtype they run in (and about twice as fast on CPU as in float64)."""
import jax
import pytest

jax.config.update("jax_enable_x64", True)


def pytest_configure(config):
    config.addinivalue_line("markers", "float32: run the test with jax_enable_x64 off (JAX's default float32)")


@pytest.fixture(autouse=True)
def _float32_when_marked(request):
    if request.node.get_closest_marker("float32") is None:
        yield
        return
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", True)
