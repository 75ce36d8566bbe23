#!/usr/bin/env python3
"""Check the built book's HTML for rendering defects a Sphinx build does not warn about.

    python tools/check_html.py [_build/html]

Looks at the article body of every page (code blocks and cell outputs excluded, where such text is literal) for:
  raw-math       a `$` opening math, or a LaTeX command, left as text: math MyST did not parse (a `+` starting a
                 line turns it into a list item, say)
  raw-role       an unrendered role or directive such as {cite}`key` or {ref}`label`
  broken-table   a paragraph that starts with `|` and holds more bars: a Markdown table row that did not parse
  offline-math   a page that loads MathJax from the network instead of the copy built into `_static`
  network-asset  any other script or stylesheet loaded from the network (the animation player's icon font, say):
                 the book must read the same without network
  uncaptioned-figure  a figure of a cell's output without a numbered caption or without alt text (a cell gets
                 both from its `mystnb.figure` / `mystnb.image` metadata)
  long-output    a line of a cell's text output wider than 88 characters, which the text column cuts off or
                 makes the reader scroll sideways for (results belong in a table: `wvi.display.table`)
  long-code      a line of code wider than 88 characters (a chapter's code cell, a code block, a literal block
                 of the API page): at the usual window widths the column shows 75 to 90 characters of it, so
                 the reader scrolls sideways for the rest
Exits 1 and lists every finding (page, kind, excerpt) when there is one. `make test` runs it after the book build.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NamedTuple

from bs4 import BeautifulSoup

RAW_MATH = re.compile(r"(?<![\\\w])\$(?=[A-Za-z\\{(])|\\(?:frac|mathrm|mathbb|mathcal|lambda|int|sum|nabla|log|exp)\b")
RAW_ROLE = re.compile(r"\{(cite|ref|doc|numref|eq|math|term|download)(:[a-z]+)?\}`")
LITERAL = ("pre", "code", "script", "style", "kbd", "samp")
OUTPUT_CLASSES = ("cell_output", "output", "highlight", "math")
OUTPUT_WIDTH = 88  # characters of monospaced text the column shows: printed output and code alike


class Finding(NamedTuple):
    page: str
    kind: str
    excerpt: str


def _literal(tag) -> bool:
    for parent in (tag, *tag.parents):
        if getattr(parent, "name", None) in LITERAL:
            return True
        if any(c in OUTPUT_CLASSES for c in (parent.get("class") or []) if hasattr(parent, "get")):
            return True
    return False


def _excerpt(text: str, start: int = 0) -> str:
    return " ".join(text[max(0, start - 30):start + 60].split())


def check_page(html: str, page: str) -> list[Finding]:
    """The findings of one page's HTML."""
    soup = BeautifulSoup(html, "html.parser")
    findings = []
    remote = ("http:", "https:", "//")
    for script in soup.find_all("script", src=True):
        if script["src"].startswith(remote):
            kind = "offline-math" if "mathjax" in script["src"].lower() else "network-asset"
            findings.append(Finding(page, kind, script["src"]))
    for link in soup.find_all("link", href=True):
        if "stylesheet" in (link.get("rel") or []) and link["href"].startswith(remote):
            findings.append(Finding(page, "network-asset", link["href"]))
    body = soup.find("article") or soup.find("main") or soup
    for text in body.find_all(string=True):
        if _literal(text.parent) or not text.strip():
            continue
        for kind, pattern in (("raw-math", RAW_MATH), ("raw-role", RAW_ROLE)):
            m = pattern.search(text)  # one finding per text run and kind
            if m:
                findings.append(Finding(page, kind, _excerpt(str(text), m.start())))
    for img in body.find_all("img", src=True):
        figure = img.find_parent("figure")
        if "_images/" in img["src"] and (figure is None or figure.find("figcaption") is None
                                         or not img.get("alt") or img["alt"] == img["src"]):
            findings.append(Finding(page, "uncaptioned-figure", img["src"].rsplit("/", 1)[-1][:24]))
    for block in body.find_all("pre"):
        kind = "long-output" if block.find_parent(class_="cell_output") else "long-code"
        long = [line for line in block.get_text().splitlines() if len(line) > OUTPUT_WIDTH]
        if long:  # one finding per block
            findings.append(Finding(page, kind, f"{len(long)} line(s), e.g. {_excerpt(long[0], 60)}"))
    for p in body.find_all("p"):
        if _literal(p):
            continue
        words = p.get_text().strip()
        if words.startswith("|") and words.count("|") >= 3:
            findings.append(Finding(page, "broken-table", _excerpt(words)))
    return findings


def check_tree(root: Path) -> list[Finding]:
    """The findings of every page under `root` (the built HTML), search and index pages aside."""
    findings = []
    for path in sorted(root.rglob("*.html")):
        if path.name in ("search.html", "genindex.html") or "_static" in path.parts:
            continue
        findings += check_page(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    return findings


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html")
    parser.add_argument("--uncaptioned-ok", action="append", default=[], metavar="PAGE",
                        help="a page (e.g. book/part2/rosenbrock.html) whose figures may still lack captions; "
                             "each use is a known gap, listed in the Makefile")
    args = parser.parse_args(argv[1:])
    root = Path(args.root)
    if not root.is_dir():
        print(f"no built book at {root}: run `make book` first", file=sys.stderr)
        return 2
    findings = [f for f in check_tree(root)
                if not (f.kind == "uncaptioned-figure" and f.page in args.uncaptioned_ok)]
    for f in findings:
        print(f"{f.page}: {f.kind}: {f.excerpt}")
    pages = sum(1 for _ in root.rglob("*.html"))
    print(f"check_html: {pages} pages, {len(findings)} findings")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
