"""The book's own contracts: every chapter starts with the canonical setup cell, was run top to bottom with its
outputs committed, and every ledger file (book/claims) belongs to a chapter of the table of contents."""
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import chapters  # noqa: E402

CHAPTERS = chapters.chapters()


def test_toc_lists_existing_chapters():
    assert CHAPTERS, "no chapters found from _toc.yml"
    listed = {p.relative_to(ROOT).with_suffix("") for p in CHAPTERS}
    on_disk = {p.relative_to(ROOT).with_suffix("") for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    assert on_disk == listed, f"notebooks not in _toc.yml: {sorted(map(str, on_disk - listed))}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_starts_with_the_setup_cell_and_was_run_in_order(path):
    nb = nbformat.read(path, as_version=4)
    setup = chapters.first_code_cell(nb)
    assert setup.source == chapters.setup_cell_source(), "setup cell drifted: run `python tools/chapters.py sync`"
    assert 'SCALE = "small"' in setup.source
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "re-run the chapter top to bottom (make chapters)"
    for cell in code:
        assert not [o for o in cell.outputs if o.output_type == "error"], "committed with an error output"


def test_claims_files_belong_to_chapters():
    stems = {str(p.relative_to(ROOT / "book").with_suffix("")) for p in CHAPTERS}
    for path in (ROOT / "book" / "claims").glob("*.json"):
        record = json.loads(path.read_text())
        assert record["chapter"] in stems, f"{path.name} names {record['chapter']}, which is not a chapter"
        assert record["rows"], f"{path.name} records no ledger rows"


def test_repository_url_is_written_once():
    url = chapters.repo_url()
    assert url.startswith("https://")
    for path in CHAPTERS:
        assert url in chapters.first_code_cell(nbformat.read(path, as_version=4)).source


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_script_export_compiles_at_full_scale(path):
    source = chapters.script(path, "full")
    compile(source, str(path), "exec")  # magics are commented out, so plain Python accepts it
    assert "SCALE = 'full'" in source and 'SCALE = "small"' not in source
    with pytest.raises(ValueError, match="scale"):
        chapters.script(path, "huge")


def test_every_chapter_has_a_measured_run_time_for_the_intro_table():
    """book/runtimes.json (written by `tools/chapters.py run`) times every part chapter, for the intro's table."""
    runtimes = json.loads((ROOT / "book" / "runtimes.json").read_text())
    parts = [str(p.relative_to(ROOT)) for p in CHAPTERS if p.parent.name.startswith("part")]
    assert sorted(set(parts) - set(runtimes)) == [], "run `python tools/chapters.py run` on the missing chapters"
    for path in parts:
        assert runtimes[path]["seconds"] > 0 and runtimes[path]["cpu_cores"] >= 1 and runtimes[path]["title"]


def test_no_chapter_prints_a_line_wider_than_the_text_column():
    """Printed output over 88 characters is cut off or scrolls in the book (tools/check_html.py checks the HTML)."""
    long = []
    for path in CHAPTERS:
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for out in cell.get("outputs", []):
                text = out.get("text", "") if out.output_type == "stream" else out.get("data", {}).get("text/plain", "")
                if out.output_type != "stream" and "text/html" in out.get("data", {}):
                    continue  # shown as HTML (a table), not as text
                long += _wider_than_the_column(text, f"{path.name} cell {i}")
    assert not long, "\n".join(long)


def _wider_than_the_column(text: str, where: str) -> list[str]:
    return [f"{where}: {line[:60]}…" for line in text.splitlines() if len(line) > 88]


def test_no_chapter_code_line_is_wider_than_the_text_column():
    """Code over 88 characters makes the reader scroll sideways: the column shows 75 to 90 characters of code at
    the usual window widths (tools/check_html.py's long-code checks the HTML). `ruff format --line-length 88`
    wraps most code; long comments, strings and docstrings are wrapped by hand."""
    long = []
    for path in CHAPTERS:
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if cell.cell_type == "code":
                long += _wider_than_the_column(cell.source, f"{path.name} cell {i}")
    assert not long, "\n".join(long)


# a string literal padded to a width inside an f-string, {'method':10s} or {'seed':<6}: a column header of a
# printed text table
_PADDED_HEADER = re.compile(r"""\{(['"])[^'"]+\1:[<>^]?\d+s?\}""")


def test_no_chapter_prints_a_text_table():
    """Results tables go through `wvi.display.table` (an HTML table on the page, its text for nbval), not printed
    columns: a printed table wraps or scrolls at the column's width and its columns cannot be read on a phone. A
    printed table is recognised by its header, column names padded to a width ({'method':10s}, {'seed':<6})."""
    printed = [
        f"{path.name} cell {i}: {match.group(0)}"
        for path in CHAPTERS
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
        if cell.cell_type == "code"
        for match in _PADDED_HEADER.finditer(cell.source)
    ]
    assert not printed, "\n".join(printed)
    assert _PADDED_HEADER.search("print(f\"{'method':10s} {'W2':>8s}\")")  # the pattern finds a header
    assert _PADDED_HEADER.search("print(f\"{'seed':<6}{'naive':>9}\")")  # also without the s
    assert not _PADDED_HEADER.search("print(f\"{'':14s} {name:10s}\")")  # not an indent or a padded value


def _moved_by_merge_streams(outputs) -> list[str]:
    """Streams printed after a display output of the same cell that also printed before it. myst-nb's
    `nb_merge_streams` (_config.yml) appends every later stream output to the first one of its name
    (myst_nb.core.utils.coalesce_streams), so on the page such a line jumps above the table or figure."""
    first, moved = {}, []
    for k, out in enumerate(outputs):
        if out["output_type"] != "stream":
            continue
        name = out["name"]
        if name in first and any(o["output_type"] != "stream" for o in outputs[first[name] : k]):
            moved.append(name)
        first.setdefault(name, k)
    return moved


def test_no_chapter_cell_prints_on_both_sides_of_a_display():
    """A caption printed after a table would render above it, beside the lines printed before the table: print
    before the first display output only, or split the cell."""
    moved = [
        f"{path.name} cell {i}: {name}"
        for path in CHAPTERS
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
        for name in _moved_by_merge_streams(cell.get("outputs", []))
    ]
    assert not moved, "\n".join(moved)

    def out(text):
        return {"output_type": "stream", "name": "stdout", "text": text}

    table = {"output_type": "display_data", "data": {"text/html": "<table/>"}}
    assert _moved_by_merge_streams([out("a"), table, out("b")]) == ["stdout"]  # the planted case is found
    assert _moved_by_merge_streams([out("a"), out("b"), table]) == []  # printed before the table only
    assert _moved_by_merge_streams([table, out("b")]) == []  # one stream after the table stays after it
    # the model agrees with the installed myst-nb: the line printed after the table lands above it
    from myst_nb.core.utils import coalesce_streams

    merged = coalesce_streams([nbformat.from_dict(o) for o in (out("a\n"), table, out("b\n"))])
    assert [o["output_type"] for o in merged] == ["stream", "display_data"] and merged[0]["text"] == "a\nb\n"


def test_the_api_page_documents_every_module():
    api = (ROOT / "book" / "api.md").read_text()
    modules = {f"wvi.{p.stem}" for p in (ROOT / "wvi").glob("*.py") if not p.stem.startswith("_")}
    for package in ("data", "experiments"):
        modules |= {f"wvi.{package}.{p.stem}" for p in (ROOT / "wvi" / package).glob("*.py") if not p.stem.startswith("_")}
    missing = sorted(m for m in modules if f".. automodule:: {m}\n" not in api)
    assert not missing, f"book/api.md has no section for {missing}"


_DOC_SECTIONS = ("Args:", "Returns:", "Raises:", "Yields:", "Example:", "Examples:", "Note:", "Notes:", "Attributes:")


def unmarked_indented_blocks(source: str) -> list[str]:
    """The indented blocks of `source`'s docstrings that no `::` introduces (Google-style sections and list items
    aside). reStructuredText makes such a block a block quote: in the API page a formula loses its line breaks and
    its monospace, and a command's `--` becomes an en dash."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) or not ast.get_docstring(node):
            continue
        lines = ast.get_docstring(node).split("\n")
        for i, line in enumerate(lines):
            if i < 2 or not line.startswith(" ") or not line.strip() or lines[i - 1].strip():
                continue
            j = i - 2
            while j >= 0 and not lines[j].strip():
                j -= 1
            intro = lines[j]
            if intro.startswith(" ") or intro.rstrip().endswith("::") or intro.startswith(".. code-block::") \
                    or intro.strip() in _DOC_SECTIONS:
                continue
            if line.lstrip().startswith(("* ", "- ")):
                continue
            found.append(f"{getattr(node, 'name', 'module')}: {line.strip()[:50]}")
    return found


def test_docstring_formulas_are_literal_blocks():
    """An indented formula or command in a docstring follows a line ending in `::`, so the API page shows it as
    written (`python tools/check_html.py` checks its width)."""
    bad = {str(p.relative_to(ROOT)): unmarked_indented_blocks(p.read_text()) for p in (ROOT / "wvi").rglob("*.py")}
    assert not {k: v for k, v in bad.items() if v}
    planted = '''def f():
    """The update is

        m <- m - h g,

    applied once."""
'''
    assert unmarked_indented_blocks(planted) == ["f: m <- m - h g,"]
    assert unmarked_indented_blocks(planted.replace("update is", "update is::")) == []


def test_every_reference_links_to_a_doi_or_arxiv():
    import re

    entries = re.split(r"\n(?=@)", (ROOT / "book" / "references.bib").read_text().strip())
    unlinked = [re.match(r"@\w+\{([^,]+),", e).group(1) for e in entries
                if e.startswith("@") and not re.search(r"^\s*(doi|eprint|url)\s*=", e, re.M)]
    assert not unlinked, f"references without a DOI, arXiv id or URL: {unlinked}"


def test_api_links_resolve_full_short_and_re_exported_names():
    """The chapters' inline `wvi.x.y` names link to the API page (book/_ext/wvi_apilinks.py): full and short
    names, calls, and a package's re-exports (documented where they are defined); anything else stays code."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("wvi_apilinks", ROOT / "book" / "_ext" / "wvi_apilinks.py")
    links = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(links)
    objects = {"wvi.algorithm.run": "run", "wvi.data.registry.digits": "digits", "wvi.bnn.meanfield_vi": "vi"}
    assert links._target(objects, "wvi.algorithm.run") == "run"
    assert links._target(objects, "algorithm.run(key, ...)") == "run"
    assert links._target(objects, "bnn.meanfield_vi") == "vi"
    assert links._target(objects, "wvi.data.digits") == "digits"  # a re-export of wvi.data.registry.digits
    for text in ("run", "x.mean", "G.w2(q, p)", "wvi.nowhere.thing", "optax.sgd(0.1)"):
        assert links._target(objects, text) is None, text


def test_namedtuple_fields_are_documented_by_their_source_comments():
    """book/_ext/wvi_fielddocs.py: the API page shows a NamedTuple field's source comment (continued by comment
    lines below it, `|` escaped for reStructuredText) instead of Python's "Alias for field number N", and leaves out
    a field without a comment."""
    fields = _load(ROOT / "book" / "_ext" / "wvi_fielddocs.py", "wvi_fielddocs")
    source = """    class Info(NamedTuple):
        loss: float  # the loss
        #   before the update
        step: int
        label: str = "a # b"
        error: float  # |m − μ| / σ, see `x|y`
"""
    assert fields.field_comments(source) == {"loss": "the loss before the update", "error": "|m − μ| / σ, see `x|y`"}
    assert fields.as_rest("|m − μ| * 2, see `x|y`") == "\\|m − μ\\| \\* 2, see `x|y`"
    from wvi.bbvi import BBVIInfo
    from wvi.gaussian import Gaussian

    lines = [BBVIInfo.loss.__doc__]
    fields.replace_alias_docstring(None, "attribute", "wvi.bbvi.BBVIInfo.loss", BBVIInfo.loss, {}, lines)
    assert lines == ["Monte Carlo estimate of KL(q‖p) - log Z at q before the update"]
    assert fields.skip_uncommented_fields(None, "class", "loss", BBVIInfo.loss, False, {}) is None
    assert fields.skip_uncommented_fields(None, "class", "mean", Gaussian.mean, False, {}) is True


def _load(path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nbval_hands_the_chapters_to_its_workers_longest_first():
    """book/conftest.py sorts nbval's cells by their chapter's time in book/runtimes.json, longest first, keeping a
    chapter's cells in order; a chapter with no recorded time goes first (it may be the longest)."""
    from collections import namedtuple

    book_conftest = _load(ROOT / "book" / "conftest.py", "book_conftest")
    Item = namedtuple("Item", "path name")
    items = [Item(ROOT / "book" / f"{chapter}.ipynb", f"{chapter}{cell}") for cell in (1, 2) for chapter in "abn"]
    ordered = book_conftest.longest_first(items, {"book/a.ipynb": 10, "book/b.ipynb": 100})
    assert [item.name for item in ordered] == ["n1", "n2", "b1", "b2", "a1", "a2"]
    recorded = book_conftest.recorded_seconds()
    assert {p.relative_to(ROOT).as_posix() for p in CHAPTERS} <= set(recorded)


def test_each_xdist_worker_gets_its_own_share_of_the_cores(monkeypatch):
    """conftest.py's shares: disjoint, covering every core, as equal as can be; all cores when there are more
    workers than cores or the worker name is not gw<k>; and a process that imports it as worker gw1 of 2 is pinned
    to its share of the cores it had."""
    import os
    import subprocess

    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # loading it here must not pin this worker again
    share = _load(ROOT / "conftest.py", "root_conftest").core_share
    monkeypatch.undo()
    assert [share(f"gw{k}", 2, [0, 1]) for k in range(2)] == [[0], [1]]
    assert [share(f"gw{k}", 2, [0, 1, 2, 3, 4]) for k in range(2)] == [[0, 1], [2, 3, 4]]
    assert [share(f"gw{k}", 3, list(range(8))) for k in range(3)] == [[0, 1], [2, 3, 4], [5, 6, 7]]
    assert share("gw2", 4, [0, 1]) == [0, 1] and share("master", 2, [0, 1]) == [0, 1]
    assert share("gw0", 1, [0, 1]) == [0, 1]
    if not hasattr(os, "sched_getaffinity"):
        return
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw1", "PYTEST_XDIST_WORKER_COUNT": "2"}
    out = subprocess.run([sys.executable, "-c", "import os, conftest; print(sorted(os.sched_getaffinity(0)))"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(share("gw1", 2, sorted(os.sched_getaffinity(0))))
