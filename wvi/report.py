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
from typing import NamedTuple


class Claim(NamedTuple):
    source: str  # the work (or "book") that makes the claim
    claim: str  # the claim with its tolerance, in words
    measured: str  # the figure this run measured
    passed: bool


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

    @property
    def all_passed(self) -> bool:
        return all(c.passed for c in self.items)

    def failures(self) -> str:
        return "; ".join(f"{c.claim} (measured {c.measured})" for c in self.items if not c.passed) or "none"

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


def _claims_dir() -> Path | None:
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "book" / "claims").is_dir():
            return folder / "book" / "claims"
    return None


def load(directory: str | Path) -> list[dict]:
    """All recorded chapters in `directory`, sorted by chapter path."""
    records = [json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.json"))]
    return sorted(records, key=lambda r: r["chapter"])


def markdown_table(records: list[dict]) -> str:
    """One row per claim: work, claim, chapter, measured figure, pass/fail."""
    rows = ["| work | claim | chapter | measured | status |", "|---|---|---|---|---|"]
    for record in records:
        link = f"[{record['title']}]({record['chapter']}.ipynb)"
        for c in record["claims"]:
            rows.append(f"| {c['source']} | {c['claim']} | {link} | {c['measured']} | {'pass' if c['passed'] else '**fail**'} |")
    return "\n".join(rows)
