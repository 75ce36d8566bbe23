"""`import wvi` is light: the plotting, NUTS, progress-bar and report dependencies load only when used."""
import subprocess
import sys

HEAVY = ("matplotlib", "seaborn", "numpyro", "tqdm", "sklearn", "yaml", "pandas")


def imported_after(code: str) -> list[str]:
    probe = f"import sys; {code}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return eval(out.strip().splitlines()[-1])


def test_import_wvi_loads_no_optional_dependency():
    assert imported_after("import wvi") == []


def test_optional_modules_load_on_first_use():
    assert "matplotlib" in imported_after("import wvi; wvi.plot")
    assert imported_after("import wvi; wvi.report.WORKS") == []  # yaml only when an inventory is read


def test_import_wvi_builds_no_array():
    """Nothing is built at import: a chapter (or a user) chooses the precision afterwards, and the JAX backend (with
    its preallocation of GPU memory) starts on first use, not on `import wvi`. Fails with a target built at import."""
    probe = ("import wvi; from jax._src import xla_bridge as xb; "
             "print(xb.backends_are_initialized())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_targets_follow_the_precision_asked_for():
    import jax
    import jax.numpy as jnp

    from wvi import targets

    assert targets.four_gaussians_target(jnp.float32).means.dtype == jnp.float32
    assert targets.mixture_1d_target(jnp.float32).logits.dtype == jnp.float32
    with jax.enable_x64(True):
        assert targets.four_gaussians_target().means.dtype == jnp.float64
        x = jnp.zeros((3, 2), jnp.float64)
        assert targets.four_gaussians(x).dtype == jnp.float64


def _wvi_imports(module: str) -> set[str]:
    import ast
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "wvi" / f"{module}.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wvi"):
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_modules_depend_only_on_what_their_concept_needs():
    """NGVI is one Gaussian's algorithm: it needs no mixture code; network architectures need no inference code."""
    assert not any("mixtures" in n for n in _wvi_imports("ngvi")), _wvi_imports("ngvi")
    assert not any("bnn" in n or "algorithm" in n for n in _wvi_imports("networks")), _wvi_imports("networks")
