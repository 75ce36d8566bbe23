"""The reproduction ledger: what each chapter checked, against which criterion, and with which verdict.

Two kinds of row:

* a **work's claim** (of the seed works Yi & Liu, Nguyen et al., Wild et al., Rossi et al., item by item; of the
  later works Lambert et al., Diao et al., Domke et al., Cai et al., their headline claims), with a stable item id ("Fig. 5",
  "Prop. 3"), the statement paraphrased from the work, what the book measured, the criterion with the source of its
  tolerance, and a verdict from `WORK_VERDICTS`: reproduced, partly reproduced, not reproduced, not testable at this
  scale, not yet run, not attempted;
* a **book claim** (something this book asserts beyond the works), whose verdict is *holds* or *fails*, or
  *withdrawn*: a claim the book made and no longer makes because a later check of it failed (`Claims.withdrawn`),
  kept in the ledger with what was measured, so that a correction stays visible.

A chapter's check cell writes its rows and states, for each work's claim, the verdict its prose gives
(`expected`). The cell's final ``assert claims.consistent, claims.problems()`` fails when the code is wrong — a
book claim fails, or a measured verdict differs from the one the prose states — and never merely because a paper's
result did not reproduce: that is a finding, recorded as such::

    claims = wvi.report.Claims("part1/ode_vs_bbvi", "ODE vs BBVI on a 2D Gaussian")
    claims.work(
        "Yi & Liu",
        "§3.3 2D Gaussian",
        "BBVI-path and the Euler ODE reach the target",
        measured=f"{w2:.3g}",
        criterion="W2 < 0.05 after 1001 steps (the figure's last value, read off)",
        verdict=wvi.report.verdict_of(w2 < 0.05),
        expected="reproduced",
    )
    claims.book(
        "Euler's error is first order",
        measured=f"{slope:.3f}",
        criterion="slope in [0.8, 1.2]",
        holds=0.8 <= slope <= 1.2,
    )
    # book/claims/part1-ode_vs_bbvi.json, read by the report chapter
    claims.save()
    assert claims.consistent, claims.problems()

Items the book does not run get their row from the inventory (`book/inventory.yml`, `inventory_rows`), so every
numbered figure, table and proposition of the seed works (and each later work's headline claim) has exactly one place in the ledger. Measured figures are
stored as strings (rounded by the chapter), so re-running a chapter with the same seed rewrites the same file.
"""
from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import NamedTuple

SEED_WORKS = ("Yi & Liu", "Nguyen et al.", "Wild et al.", "Rossi et al.")
"""The works the book reproduces item by item (every figure, table and proposition), in the book's order."""
LATER_WORKS = ("Lambert et al.", "Diao et al.", "Domke et al.", "Cai et al.")
"""Later works whose algorithms Part I's "Gaussian VI algorithms side by side" compares, one headline claim each."""
WORKS = SEED_WORKS + LATER_WORKS
"""Every work with rows in the ledger, in the book's order."""
_COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
                10: "ten"}
BOOK = "book"
WORK_VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not testable at this scale", "not yet run",
                 "not attempted")
BOOK_VERDICTS = ("holds", "fails", "withdrawn")
VERDICT_COLOURS = {"reproduced": "#1a7f37", "partly reproduced": "#9a6700", "not reproduced": "#cf222e",
                   "not testable at this scale": "#6e7781", "not yet run": "#6e7781", "not attempted": "#6e7781",
                   "holds": "#1a7f37", "fails": "#cf222e", "withdrawn": "#6e7781"}


class Row(NamedTuple):
    """One ledger row (see the module docstring)."""
    work: str  # one of WORKS, or BOOK
    item: str  # stable item id within the work ("Fig. 5"); for book claims, a short topic
    statement: str  # the claim, paraphrased from the work (or the book's own statement)
    measured: str  # what this run measured ("" when nothing was run)
    criterion: str  # the test and the source of its tolerance (or, for unrun rows, why not / what scale it needs)
    verdict: str  # one of WORK_VERDICTS (works) or BOOK_VERDICTS (book)
    expected: str  # the verdict the chapter's prose states
    section: str = ""  # the heading of the chapter section that discusses it ("" = the checks section)


def verdict_of(*met: bool) -> str:
    """A work's verdict from the criteria its row tests: all met → "reproduced", none → "not reproduced",
    some → "partly reproduced"."""
    if not met:
        raise ValueError("verdict_of needs at least one criterion")
    met = [bool(m) for m in met]
    return "reproduced" if all(met) else "partly reproduced" if any(met) else "not reproduced"


class Claims:
    """The ledger rows of one chapter (`chapter`: its path under book/ without suffix; `title`: its title)."""

    def __init__(self, chapter: str, title: str):
        self.chapter, self.title, self.rows = chapter, title, []

    def _add(self, row: Row) -> str:
        self.rows.append(row)
        return row.verdict

    def table(self):
        """The rows recorded so far as a table (a `wvi.display.Table`: HTML in the book), one row per claim with its
        verdict, statement, measured value and criterion, grouped by work and item. A check cell ends with it."""
        from wvi import display

        return display.table([{"work": r.work, "item": r.item, "verdict": r.verdict, "statement": r.statement,
                               "measured": r.measured, "criterion": r.criterion} for r in self.rows],
                             index=["work", "item"], digits=None)

    def work(self, work: str, item: str, statement: str, *, measured, criterion: str, verdict: str,
             expected: str, section: str = "") -> str:
        """Record a work's claim checked by this run; returns `verdict`.

        Args:
            work: one of `WORKS`. item: the work's item id ("Fig. 4"). statement: the claim, paraphrased.
            measured: the figure(s) this run measured (a string, rounded by the caller).
            criterion: the test, with where its tolerance comes from, fixed before the run.
            verdict: one of `WORK_VERDICTS`, computed from the measurement (`verdict_of`).
            expected: the verdict the chapter's prose states; a different `verdict` makes `consistent` false.
            section: the heading of the section that discusses the claim.
        """
        if work not in WORKS:
            raise ValueError(f"work must be one of {WORKS}, got {work!r}")
        for name, value in (("verdict", verdict), ("expected", expected)):
            if value not in WORK_VERDICTS:
                raise ValueError(f"{name} must be one of {WORK_VERDICTS}, got {value!r}")
        return self._add(Row(work, item, statement, str(measured), criterion, verdict, expected, section))

    def unrun(self, work: str, item: str, statement: str, *, verdict: str, why: str, measured: str = "",
              section: str = "") -> str:
        """Record a work's claim this chapter does not decide: "not testable at this scale" (say what scale would
        be), "not yet run" (what has run so far goes in `measured`) or "not attempted" (say why)."""
        if verdict not in ("not testable at this scale", "not yet run", "not attempted"):
            raise ValueError(f"verdict must be 'not testable at this scale', 'not yet run' or 'not attempted', "
                             f"got {verdict!r}")
        return self.work(work, item, statement, measured=measured, criterion=why, verdict=verdict,
                         expected=verdict, section=section)

    def book(self, topic: str, statement: str, *, measured, criterion: str, holds: bool, section: str = "") -> bool:
        """Record one of the book's own claims; `holds` is the outcome of `criterion` on this run."""
        verdict = "holds" if bool(holds) else "fails"
        self._add(Row(BOOK, topic, statement, str(measured), criterion, verdict, "holds", section))
        return bool(holds)

    def withdrawn(self, topic: str, statement: str, *, measured, criterion: str, why: str, section: str = "") -> None:
        """Record one of the book's own claims that an earlier version made and this one withdraws, because a
        later check of it failed (`why`: which check, e.g. "fails on five replicas; it rested on one run"). The row
        keeps the statement, the criterion and what was measured, with the verdict "withdrawn"."""
        if not why:
            raise ValueError("why must say which check the withdrawn claim failed")
        self._add(Row(BOOK, topic, statement, str(measured), f"{criterion} (withdrawn: {why})", "withdrawn",
                      "withdrawn", section))

    @property
    def consistent(self) -> bool:
        """Every book claim holds and every work's verdict is the one the prose states."""
        return all(r.verdict == r.expected for r in self.rows)

    def problems(self) -> str:
        """The rows that make `consistent` false, in words."""
        bad = [f"{r.work} {r.item}: {r.statement} — verdict {r.verdict!r}, prose says {r.expected!r} "
               f"(measured {r.measured})" for r in self.rows if r.verdict != r.expected]
        return "; ".join(bad) or "none"

    def save(self, directory: str | Path | None = None) -> Path | None:
        """Write book/claims/<chapter>.json. From a chapter the default directory is found relative to the
        book; outside a checkout of the book (e.g. on Colab) nothing is written and None is returned."""
        directory = Path(directory) if directory else _claims_dir()
        if directory is None or not directory.is_dir():
            return None
        path = directory / (self.chapter.replace("/", "-") + ".json")
        record = {"chapter": self.chapter, "title": self.title, "rows": [r._asdict() for r in self.rows]}
        # written beside and renamed into place, so that a reader at the same time (the report chapter while
        # another chapter re-runs) sees the old file or the new one, never a half-written one
        partial = path.with_name(path.name + f".{os.getpid()}.partial")
        try:
            partial.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)  # only there when the write or the rename failed
        return path


def book_root(start=None) -> Path | None:
    """The checkout of the book holding `start` (default: the working directory): the nearest folder upwards with
    _toc.yml; None outside a checkout (e.g. on Colab)."""
    here = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if (folder / "_toc.yml").exists()), None)


def _claims_dir() -> Path | None:
    root = book_root()
    return root / "book" / "claims" if root is not None and (root / "book" / "claims").is_dir() else None


# ---------------------------------------------------------------------------------------------------- the ledger


class Entry(NamedTuple):
    """A ledger row with the chapter that wrote it ("" for rows that come from the inventory)."""
    row: Row
    chapter: str
    title: str


def load(directory: str | Path, order: list[str] | None = None) -> list[dict]:
    """Every chapter's record in `directory`, in `order` (chapter paths, e.g. the table of contents) and then by
    path."""
    records = [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]
    rank = {chapter: i for i, chapter in enumerate(order or [])}
    return sorted(records, key=lambda r: (rank.get(r["chapter"], len(rank)), r["chapter"]))


def read_inventory(path: str | Path) -> list[dict]:
    """The inventory of the works' items (`book/inventory.yml`): a list of {work, item, statement, chapter} where
    `chapter` is the chapter that checks the item, or null with a `verdict` ("not attempted", "not testable at
    this scale", "not yet run") and a `why`."""
    import yaml

    items = yaml.safe_load(Path(path).read_text())
    for entry in items:
        missing = {"work", "item", "statement", "chapter"} - set(entry)
        if missing:
            raise ValueError(f"{path}: item {entry.get('work')} {entry.get('item')} lacks {sorted(missing)}")
        if entry["work"] not in WORKS:
            raise ValueError(f"{path}: unknown work {entry['work']!r} (expected one of {WORKS})")
        if entry["chapter"] is None and (entry.get("verdict") not in WORK_VERDICTS or not entry.get("why")):
            raise ValueError(f"{path}: {entry['work']} {entry['item']} has no chapter, so it needs a verdict from "
                             f"{WORK_VERDICTS} and a why")
    return items


def inventory_rows(items: list[dict]) -> list[Entry]:
    """The rows of the items that no chapter runs (their verdict and reason come from the inventory)."""
    return [Entry(Row(i["work"], i["item"], i["statement"], "", i["why"], i["verdict"], i["verdict"]), "", "")
            for i in items if i["chapter"] is None]


def ledger(records: list[dict], items: list[dict] | None = None) -> list[Entry]:
    """All rows: the chapters' (in `records`' order) and the inventory's unrun items, grouped by work in the
    book's order (`WORKS`, then the book's own claims); within a work, items in the inventory's order."""
    entries = [Entry(Row(**row), r["chapter"], r["title"]) for r in records for row in r["rows"]]
    entries += inventory_rows(items or [])
    item_rank = {(i["work"], i["item"]): n for n, i in enumerate(items or [])}
    position = {id(e): n for n, e in enumerate(entries)}
    work_rank = {w: n for n, w in enumerate((*WORKS, BOOK))}
    return sorted(entries, key=lambda e: (work_rank[e.row.work], item_rank.get((e.row.work, e.row.item), 10**6),
                                          position[id(e)]))


def counts(entries: list[Entry]) -> dict:
    """{work: {verdict: n}} over `entries`, every work and verdict present (zeros included)."""
    table = {w: dict.fromkeys(WORK_VERDICTS, 0) for w in WORKS}
    table[BOOK] = dict.fromkeys(BOOK_VERDICTS, 0)
    for e in entries:
        table[e.row.work][e.row.verdict] += 1
    return table


UNDECIDED = ("not yet run", "not attempted")


def combine_verdicts(verdicts: list) -> str:
    """One verdict from the verdicts of a claim's parts (an item's ledger rows, a figure's parts): a part that was
    measured but is "not testable at this scale" counts as not met. The common verdict when all agree; any
    "reproduced" or "partly reproduced" among others → "partly reproduced"; else any "not reproduced" → "not
    reproduced". Parts not yet run or not attempted are left out when another part has a verdict (a full-scale
    row waiting for a GPU neither confirms nor contradicts the measured rows); when none has, the first part's."""
    if not verdicts:
        raise ValueError("combine_verdicts needs at least one verdict")
    decided = [v for v in verdicts if v not in UNDECIDED]
    if not decided:
        return verdicts[0]
    if len(set(decided)) == 1:
        return decided[0]
    if "reproduced" in decided or "partly reproduced" in decided:
        return "partly reproduced"
    return "not reproduced"


def item_verdicts(entries: list[Entry]) -> dict:
    """{(work, item): verdict of the item} for the works' items, by `combine_verdicts` over the item's rows:
    "reproduced" only when every measured row is, so a row "not testable at this scale" beside reproduced ones
    makes the item "partly reproduced"."""
    rows: dict = {}
    for e in entries:
        if e.row.work != BOOK:
            rows.setdefault((e.row.work, e.row.item), []).append(e.row.verdict)
    return {key: combine_verdicts(verdicts) for key, verdicts in rows.items()}


def summary(entries: list[Entry]) -> str:
    """One sentence for the intro and README, from the ledger: items per verdict, over the works (`WORKS`)."""
    verdicts = list(item_verdicts(entries).values())
    parts = [f"{verdicts.count(v)} {v}" for v in WORK_VERDICTS if verdicts.count(v)]
    book = counts(entries)[BOOK]
    works = _COUNT_WORDS.get(len(WORKS), str(len(WORKS)))
    withdrawn = f", {book['withdrawn']} withdrawn after a later check failed" if book["withdrawn"] else ""
    return (f"Of the {len(verdicts)} items of the {works} works in the ledger: " + ", ".join(parts) +
            f". The book's own claims: {book['holds']} hold, {book['fails']} fail{withdrawn}.")


def anchor(heading: str) -> str:
    """The HTML id Sphinx gives a section with this heading (docutils' make_id: lower case, runs of other
    characters become '-', leading digits and punctuation dropped)."""
    slug = re.sub(r"[^a-z0-9]+", "-", heading.lower())
    return re.sub(r"^[^a-z]+", "", slug).strip("-")


def _cell(text: str) -> str:
    return html.escape(text, quote=False)


def _verdict_html(verdict: str) -> str:
    return f'<span style="color:{VERDICT_COLOURS[verdict]};font-weight:600">{_cell(verdict)}</span>'


def summary_html(entries: list[Entry]) -> str:
    """The count table: one row per work, one column per verdict, counting items (an item's verdict is
    `item_verdicts`', so each row adds up to the work's items, as in `summary`), then the work's ledger rows."""
    items = item_verdicts(entries)
    per_work = {w: [v for (work, _), v in items.items() if work == w] for w in WORKS}
    table = counts(entries)
    head = "".join(f"<th>{_verdict_html(v)}</th>" for v in WORK_VERDICTS)
    body = []
    for work in WORKS:
        verdicts = per_work[work]
        cells = "".join(f"<td>{verdicts.count(v) or ''}</td>" for v in WORK_VERDICTS)
        body.append(f"<tr><td>{_cell(work)}</td><td>{len(verdicts)}</td>{cells}"
                    f"<td>{sum(table[work].values())}</td></tr>")
    book = table[BOOK]
    body.append(f"<tr><td>the book's own claims</td><td></td><td colspan='{len(WORK_VERDICTS)}'>"
                f"{_verdict_html('holds')} {book['holds']} · {_verdict_html('fails')} {book['fails']} · "
                f"{_verdict_html('withdrawn')} {book['withdrawn']}</td>"
                f"<td>{sum(book.values())}</td></tr>")
    return (f"<table class='ledger-summary' style='{_TABLE_STYLE}'><thead><tr><th>work</th><th>items</th>"
            f"{head}<th>rows</th></tr></thead><tbody>{''.join(body)}</tbody></table>")


_TABLE_STYLE = "font-size:0.85em;width:100%"


def rows_html(entries: list[Entry], link_prefix: str = "") -> str:
    """Every row, grouped as `ledger` orders them: item (a link to the chapter section that discusses the row;
    "(not run)" marks an inventory-only item), statement, measured, criterion, verdict. All text is
    HTML-escaped, so claim text may hold any character."""
    out, work = [], None
    head = ("<tr><th>item</th><th>statement</th><th>measured</th><th>criterion (source of the tolerance)</th>"
            "<th>verdict</th></tr>")
    for e in entries:
        if e.row.work != work:
            if work is not None:
                out.append("</tbody></table>")
            work = e.row.work
            title = "The book's own claims" if work == BOOK else work
            out.append(f"<h3>{_cell(title)}</h3><table class='ledger' style='{_TABLE_STYLE}'>"
                       f"<thead>{head}</thead><tbody>")
        if e.chapter:
            target = f"{link_prefix}{e.chapter}.html#{anchor(e.row.section or 'Checks')}"
            item = f"<a href='{target}' title='{html.escape(e.title)}'>{_cell(e.row.item)}</a>"
        else:
            item = f"{_cell(e.row.item)} (not run)"
        out.append(f"<tr><td>{item}</td><td>{_cell(e.row.statement)}</td>"
                   f"<td>{_cell(e.row.measured)}</td><td>{_cell(e.row.criterion)}</td>"
                   f"<td>{_verdict_html(e.row.verdict)}</td></tr>")
    if work is not None:
        out.append("</tbody></table>")
    return "".join(out)


def chapter_order(root: str | Path) -> list[str]:
    """The chapters of the book at `root` in reading order (paths under book/ without suffix, from _toc.yml)."""
    entries = re.findall(r"(?:file|root):\s*([^\s#]+)", (Path(root) / "_toc.yml").read_text())
    return [str(Path(e).with_suffix("")).removeprefix("book/") for e in entries]


def load_ledger(root: str | Path) -> list[Entry]:
    """The whole ledger of the book at `root`: the chapters' rows (book/claims, in reading order) and the unrun
    items of the inventory (book/inventory.yml)."""
    root = Path(root)
    records = load(root / "book" / "claims", chapter_order(root))
    return ledger(records, read_inventory(root / "book" / "inventory.yml"))
