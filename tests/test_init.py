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
