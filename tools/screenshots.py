#!/usr/bin/env python3
"""Open every page of the built book in headless Chromium and write a screenshot of each.

    python tools/screenshots.py [_build/html] [--out _build/screenshots] [--width 1400] [--height 2400]

Needs Debian's `chromium` (or CHROMIUM=/path/to/chrome). For each page it writes OUT/<page>.png, then reads the
page's DOM after MathJax has run and fails (exit 1, listing them) on a MathJax error (`mjx-merror`) or an image
whose file is not in the built book. Pages are loaded from disk, so this also shows whether the book works
without network. Not part of `make test` (CI has no browser); run it before resolving work on the book's pages
and look at the screenshots.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

from bs4 import BeautifulSoup


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        sys.exit("no chromium found: install Debian's chromium package or set CHROMIUM")
    return found


def browse(page: Path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--virtual-time-budget=10000", *args, page.resolve().as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def page_problems(page: Path, dom: str) -> list[str]:
    """MathJax errors and missing images in the rendered DOM of `page`."""
    soup = BeautifulSoup(dom, "html.parser")
    problems = [f"MathJax error: {e.get_text()[:80]!r}" for e in soup.find_all("mjx-merror")]
    for img in soup.find_all("img", src=True):
        src = urlparse(img["src"])
        if src.scheme in ("data", "http", "https") or not src.path:
            continue
        if not (page.parent / unquote(src.path)).exists():
            problems.append(f"image not found: {img['src']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="_build/html")
    parser.add_argument("--out", default="_build/screenshots")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    root, out = Path(args.root), Path(args.out)
    pages = sorted(p for p in root.rglob("*.html") if "_static" not in p.parts
                   and p.name not in ("search.html", "genindex.html", "index.html"))
    if not pages:
        sys.exit(f"no built pages under {root}: run `make book` first")
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for page in pages:
        name = str(page.relative_to(root).with_suffix("")).replace(os.sep, "_")
        shot = out / f"{name}.png"
        browse(page, f"--window-size={args.width},{args.height}", f"--screenshot={shot}")
        problems = page_problems(page, browse(page, "--dump-dom").stdout)
        failures += bool(problems)
        print(f"{'FAIL' if problems else 'ok  '} {page.relative_to(root)} -> {shot}")
        for problem in problems:
            print(f"     {problem}")
    print(f"screenshots: {len(pages)} pages, {failures} with problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
