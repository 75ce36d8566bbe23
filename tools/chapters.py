#!/usr/bin/env python3
"""Maintain the book's chapters.

    python tools/chapters.py sync            rewrite every chapter's setup cell from the template below
    python tools/chapters.py run [NB ...]    execute chapters top to bottom in place (all when none is named), and
                                             record each one's wall time in book/runtimes.json (the intro's table);
                                             print each one's five slowest cells (where a trim would pay)
    python tools/chapters.py list            the chapters, in _toc.yml order
    python tools/chapters.py ledger          the ledger's status sentence, for the README (a test compares them)
    python tools/chapters.py script NB SCALE print the chapter as a plain Python script at SCALE ("small" or
                                             "full"), for machines without Jupyter (a GPU batch job, say)

The repository URL lives in one place, `_config.yml` (repository.url): the setup cell's Colab install line and the
book's launch buttons are both made from it, and tests/test_book.py fails when a chapter's setup cell drifts.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNTIMES = ROOT / "book" / "runtimes.json"

SETUP_TEMPLATE = '''\
# Setup, the same in every chapter: on Colab, install wvi from the book's repository;
# set the plotting style.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "wvi[book] @ git+{repo_url}"

import wvi

wvi.plot.set_style()
# The scale switch. "small": minutes on 2 CPU cores, what the book shows;
# "full": the papers' settings, on a GPU.
SCALE = "small"'''


def repo_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]


def setup_cell_source() -> str:
    return SETUP_TEMPLATE.format(repo_url=repo_url())


def chapters() -> list[Path]:
    """Every .ipynb listed in _toc.yml, in reading order."""
    entries = re.findall(r"(?:file|root):\s*([^\s#]+)", (ROOT / "_toc.yml").read_text())
    paths = [ROOT / (str(Path(e).with_suffix("")) + ".ipynb") for e in entries]
    return [p for p in paths if p.exists()]


def first_code_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def _hide_input(cell) -> bool:
    """Tag a code cell so the built book shows its output with the code collapsed; True when the tag was added."""
    tags = cell.metadata.setdefault("tags", [])
    if {"hide-input", "remove-input", "remove-cell"} & set(tags):
        return False
    tags.append("hide-input")
    return True


def sync() -> None:
    """Rewrite every chapter's setup cell from the template, and collapse the plumbing in the built book: the
    setup cell and the code cells of the closing "## Checks" section (their outputs stay visible)."""
    for path in chapters():
        nb = nbformat.read(path, as_version=4)
        cell = first_code_cell(nb)
        changed = cell.source != setup_cell_source()
        cell.source = setup_cell_source()
        changed |= _hide_input(cell)
        in_checks = False
        for c in nb.cells:
            if c.cell_type == "markdown" and re.search(r"^#+ ", c.source, re.M):
                in_checks = bool(re.search(r"^## Checks\s*$", c.source, re.M))
            elif c.cell_type == "code" and in_checks:
                changed |= _hide_input(c)
        if changed:
            nbformat.write(nb, path)
            print(f"updated {path.relative_to(ROOT)}")


INTRO = ROOT / "book" / "intro.ipynb"  # its table shows every chapter's recorded wall time


def run(paths: list[Path]) -> None:
    """Execute `paths` in order; the intro, whose table reads book/runtimes.json, runs after the chapters whose times
    changed (last, or right after them when it is not asked for), so that its committed table matches the file."""
    from nbclient import NotebookClient

    paths = [p for p in paths if p != INTRO] + [INTRO]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        start, cell_seconds = time.time(), {}

        def started(cell, cell_index, **_):
            cell_seconds[cell_index] = time.time()

        def finished(cell, cell_index, **_):
            cell_seconds[cell_index] = time.time() - cell_seconds[cell_index]

        NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=False, on_cell_execute=started,
                       on_cell_executed=finished, resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.time() - start
        slowest = sorted(cell_seconds.items(), key=lambda item: -item[1])[:5]
        print(f"{path.relative_to(ROOT)}: slowest cells (index in the notebook: seconds) "
              + ", ".join(f"{k}: {v:.0f}" for k, v in slowest))
        nbformat.write(nb, path)
        title = next((line[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                      for line in c.source.splitlines() if line.startswith("# ")), path.stem)
        record_runtime(path, seconds, title)
        print(f"ran {path.relative_to(ROOT)} in {seconds:.0f} s")


def record_runtime(path: Path, seconds: float, title: str) -> None:
    """Keep a chapter's measured top-to-bottom wall time (and the machine's core count) in book/runtimes.json."""
    runtimes = json.loads(RUNTIMES.read_text()) if RUNTIMES.exists() else {}
    runtimes[str(path.relative_to(ROOT))] = {"title": title, "seconds": round(seconds), "cpu_cores": os.cpu_count(),
                                             "date": datetime.date.today().isoformat()}
    RUNTIMES.write_text(json.dumps(dict(sorted(runtimes.items())), indent=1) + "\n")


def script(path: Path, scale: str) -> str:
    """The chapter's code cells as one script: IPython magics commented out, SCALE set, figures drawn off-screen."""
    if scale not in ("small", "full"):
        raise ValueError(f"scale must be 'small' or 'full', got {scale!r}")
    nb = nbformat.read(path, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    cells[0] = cells[0].replace('SCALE = "small"', f"SCALE = {scale!r}")
    lines = ["import matplotlib", "matplotlib.use('Agg')"]
    for source in cells:
        for line in source.splitlines():
            code = line.lstrip()
            lines.append(line[: len(line) - len(code)] + "pass  # " + code if code.startswith(("%", "!")) else line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "list"
    if command == "sync":
        sync()
    elif command == "run":
        run([Path(p).resolve() for p in sys.argv[2:]] or chapters())
    elif command == "script" and len(sys.argv) == 4:
        print(script(Path(sys.argv[2]).resolve(), sys.argv[3]), end="")
    elif command == "list":
        print("\n".join(str(p.relative_to(ROOT)) for p in chapters()))
    elif command == "ledger":
        from wvi import report

        print(report.summary(report.load_ledger(ROOT)))
    else:
        sys.exit(__doc__)
