"""The bibliography in the style the text cites: entries labelled "Yi and Liu 2023", "Nguyen et al. 2023".

A Sphinx extension (listed under `sphinx.local_extensions` in _config.yml) that registers a pybtex label style and a
formatting style using it, so that the reference list's labels match sphinxcontrib-bibtex's author–year citations.
"""
from __future__ import annotations

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _names(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    last = [" ".join(p.last_names) for p in people]
    if not last:
        return entry.fields.get("key", entry.key)
    if len(last) == 1:
        return last[0]
    if len(last) == 2:
        return f"{last[0]} and {last[1]}"
    return f"{last[0]} et al."


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Surname Year", "A and B Year" or "A et al. Year"; equal labels get a, b, … after the year."""

    def format_labels(self, sorted_entries):
        labels = [f"{_names(e)} {e.fields.get('year', 'n.d.')}" for e in sorted_entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                yield f"{label}{'abcdefghijklmnopqrstuvwxyz'[seen[label] - 1]}"
            else:
                yield label


class AuthorYearStyle(UnsrtStyle):
    """pybtex's unsrt formatting, sorted by author and year, with author–year labels."""

    default_label_style = "wvi_author_year"
    default_sorting_style = "author_year_title"


def setup(app):
    register_plugin("pybtex.style.labels", "wvi_author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "wvi_author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
