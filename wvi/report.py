"""Claims a chapter checks, recorded for the book's reproduction report.

A chapter's check cells state each claim with its tolerance and the figure measured in that run:

    claims = wvi.report.Claims("part1/ode_vs_bbvi", "ODE vs BBVI on a 2D Gaussian")
    claims.check("Yi & Liu", "W2(q0, p) ≈ 4.51 at the start", measured=w0, passed=abs(w0 - 4.51) < 0.005)
    claims.save()                  # book/claims/part1-ode_vs_bbvi.json, read by the report chapter
    assert claims.all_passed, claims.failures()

Measured figures are stored as rounded strings (4 significant digits) so that re-running a chapter with the same
seed rewrites the same file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Optional


class Claim(NamedTuple):
    source: str  # the work (or "book") that makes the claim
    claim: str  # the claim with its tolerance, in words
    measured: str  # the figure this run measured
    passed: Optional[bool]  # None: not yet run at the scale the claim needs (`Claims.pending`)


def _fmt(value) -> str:
    if isinstance(value, str):
        return value
    return f"{float(value):.4g}"


class Claims:
    """The claims of one chapter (`chapter`: its path under book/ without suffix; `title`: its title)."""

    def __init__(self, chapter: str, title: str):
        self.chapter, self.title, self.items = chapter, title, []

    def check(self, source: str, claim: str, measured, passed) -> bool:
        """Record a claim and whether this run's measurement satisfies it; returns `passed`."""
        passed = bool(passed)
        self.items.append(Claim(source, claim, _fmt(measured), passed))
        print(f"[{'pass' if passed else 'FAIL'}] {claim}: measured {_fmt(measured)}")
        return passed

    def pending(self, source: str, claim: str, measured) -> None:
        """Record a claim that cannot be decided yet (its experiment has not run at the scale it needs); the
        report shows it as "not yet run" with what was measured so far."""
        self.items.append(Claim(source, claim, _fmt(measured), None))
        print(f"[not yet run] {claim}: {_fmt(measured)}")

    @property
    def all_passed(self) -> bool:
        """No recorded claim failed (pending claims are not failures)."""
        return all(c.passed is not False for c in self.items)

    def failures(self) -> str:
        return "; ".join(f"{c.claim} (measured {c.measured})" for c in self.items if c.passed is False) or "none"

    def save(self, directory: str | Path | None = None) -> Path | None:
        """Write book/claims/<chapter>.json. From a chapter the default directory is found relative to the
        book; outside a checkout of the book (e.g. on Colab) nothing is written and None is returned."""
        directory = Path(directory) if directory else _claims_dir()
        if directory is None or not directory.is_dir():
            return None
        path = directory / (self.chapter.replace("/", "-") + ".json")
        record = {"chapter": self.chapter, "title": self.title, "claims": [c._asdict() for c in self.items]}
        path.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        return path


def book_root(start=None) -> Path | None:
    """The checkout of the book holding `start` (default: the working directory): the nearest folder upwards with
    _toc.yml; None outside a checkout (e.g. on Colab)."""
    here = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if (folder / "_toc.yml").exists()), None)


def _claims_dir() -> Path | None:
    root = book_root()
    return root / "book" / "claims" if root is not None and (root / "book" / "claims").is_dir() else None


def load(directory: str | Path) -> list[dict]:
    """All recorded chapters in `directory`, sorted by chapter path."""
    records = [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]
    return sorted(records, key=lambda r: r["chapter"])


def counts(records: list[dict]) -> dict:
    """{"pass": n, "fail": n, "not yet run": n} over all claims of `records`."""
    claims = [c["passed"] for record in records for c in record["claims"]]
    return {"pass": claims.count(True), "fail": claims.count(False), "not yet run": claims.count(None)}


def markdown_table(records: list[dict]) -> str:
    """One row per claim: work, claim, chapter, measured figure, pass / fail / not yet run."""
    rows = ["| work | claim | chapter | measured | status |", "|---|---|---|---|---|"]
    for record in records:
        link = f"[{record['title']}]({record['chapter']}.ipynb)"
        for c in record["claims"]:
            status = {True: "pass", False: "**fail**", None: "not yet run"}[c["passed"]]
            rows.append(f"| {c['source']} | {c['claim']} | {link} | {c['measured']} | {status} |")
    return "\n".join(rows)
