"""The book's reproduction ledger as a whole: every item of the works (book/inventory.yml) has a verdict,
each chapter's verdicts are the ones its prose states, and the report page, the intro and the README show the
ledger's own counts."""
import re
import sys
from pathlib import Path

import nbformat
import pytest

from wvi import report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import chapters  # noqa: E402

ITEMS = report.read_inventory(ROOT / "book" / "inventory.yml")
RECORDS = report.load(ROOT / "book" / "claims", report.chapter_order(ROOT))
ENTRIES = report.ledger(RECORDS, ITEMS)
WITH_ROWS = [p for p in chapters.chapters() if (ROOT / "book" / "claims" / (
    str(p.relative_to(ROOT / "book").with_suffix("")).replace("/", "-") + ".json")).exists()]
PROSE_TABLE = re.compile(r"^\|\s*work\s*\|\s*item\s*\|\s*verdict\s*\|\s*$", re.M)


def stem(path: Path) -> str:
    return str(path.relative_to(ROOT / "book").with_suffix(""))


def test_inventory_items_are_unique():
    keys = [(i["work"], i["item"]) for i in ITEMS]
    assert len(keys) == len(set(keys)), "an item is listed twice in book/inventory.yml"


def test_every_item_of_the_works_has_a_verdict_in_the_ledger():
    rows = {(e.row.work, e.row.item): e for e in ENTRIES}
    missing = [f"{i['work']} {i['item']}" for i in ITEMS if (i["work"], i["item"]) not in rows]
    assert not missing, f"items with no ledger row: {missing}"
    by_chapter = {(e.row.work, e.row.item, e.chapter) for e in ENTRIES}
    unwritten = [f"{i['work']} {i['item']} ({i['chapter']})" for i in ITEMS
                 if i["chapter"] and (i["work"], i["item"], i["chapter"]) not in by_chapter]
    assert not unwritten, f"the inventory names a chapter that writes no row for: {unwritten}"
    for i in ITEMS:
        if i["chapter"]:
            assert (ROOT / "book" / (i["chapter"] + ".ipynb")).exists(), i


def test_every_row_of_a_work_names_an_inventory_item():
    known = {(i["work"], i["item"]) for i in ITEMS}
    stray = {f"{e.row.work} {e.row.item} ({e.chapter})" for e in ENTRIES
             if e.row.work != report.BOOK and (e.row.work, e.row.item) not in known}
    assert not stray, f"rows whose item is not in book/inventory.yml: {sorted(stray)}"


def test_rows_use_the_vocabulary_and_agree_with_their_chapter():
    for e in ENTRIES:
        allowed = report.BOOK_VERDICTS if e.row.work == report.BOOK else report.WORK_VERDICTS
        assert e.row.verdict in allowed, e
        assert e.row.verdict == e.row.expected, f"{e.chapter}: {e.row.item} is {e.row.verdict}, prose says {e.row.expected}"
        assert e.row.criterion, f"{e.chapter}: {e.row.item} has no criterion"


def prose_verdicts(path: Path) -> dict:
    """The (work, item) → verdict table that opens a chapter's Checks section."""
    nb = nbformat.read(path, as_version=4)
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown" or not PROSE_TABLE.search(cell.source):
            continue
        lines = cell.source[PROSE_TABLE.search(cell.source).end():].strip().splitlines()
        for line in lines[1:]:  # after the |---| line
            if not line.startswith("|"):
                break
            work, item, verdict = (part.strip() for part in line.strip().strip("|").split("|"))
            found[(work, item.replace("\\|", "|"))] = verdict
    return found


@pytest.mark.parametrize("path", WITH_ROWS, ids=stem)
def test_chapter_verdicts_are_the_ones_its_prose_states(path):
    """No row says "reproduced" where the chapter's text says otherwise: the table that opens each chapter's
    Checks section lists every item the chapter writes, with the verdict its rows add up to."""
    nb = nbformat.read(path, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert headings and headings[-1] == "## Checks", f"the last section must be '## Checks', not {headings[-1:]}"
    mine = [e for e in ENTRIES if e.chapter == stem(path)]
    measured = report.item_verdicts(mine)
    stated = prose_verdicts(path)
    assert stated == measured, f"prose table {stated} differs from the rows' verdicts {measured}"


def test_each_chapter_section_named_by_a_row_exists():
    for e in ENTRIES:
        if e.chapter and e.row.section:
            nb = nbformat.read(ROOT / "book" / (e.chapter + ".ipynb"), as_version=4)
            headings = {report.anchor(line.lstrip("#").strip()) for c in nb.cells if c.cell_type == "markdown"
                        for line in c.source.splitlines() if line.startswith("#")}
            assert report.anchor(e.row.section) in headings, f"{e.chapter}: no section {e.row.section!r}"


def outputs(name: str) -> str:
    nb = nbformat.read(ROOT / "book" / name, as_version=4)
    return "".join(o.get("text", "") + o.get("data", {}).get("text/html", "") + o.get("data", {}).get("text/markdown", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_report_intro_and_readme_state_the_ledger_counts():
    sentence = report.summary(ENTRIES)
    assert sentence in outputs("report.ipynb"), "re-run book/report.ipynb"
    assert sentence in outputs("intro.ipynb"), "re-run book/intro.ipynb"
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert sentence in readme, f"README's status sentence is stale; it should read: {sentence}"
