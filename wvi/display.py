"""Tables and settings as the book shows them: HTML tables on the page, short plain-text lines for nbval.

A chapter's results are a table, not printed text: `table(rows)` returns a pandas DataFrame, which the book renders
as an HTML table and nbval compares through its plain-text form. `settings(scale, values)` prints a chapter's scale
switch one setting per line, so that no printed line is wider than the book's text column (88 characters).
Loaded on first use (`wvi.display`): it needs pandas, one of the `book` extras.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

WIDTH = 88  # the widest printed line the book's text column shows without scrolling


class Table:
    """A results table as a notebook shows it: an HTML table on the page, its full text for nbval and terminals.

    `frame` holds the data (a pandas DataFrame); no cell is cut short, however long its text."""

    def __init__(self, frame):
        self.frame = frame

    def _repr_html_(self) -> str:
        import pandas as pd

        with pd.option_context("display.max_colwidth", None, "display.max_rows", None, "display.max_columns", None):
            return self.frame.to_html(na_rep="", escape=True, border=0, classes="dataframe wvi-table")

    def __repr__(self) -> str:
        return self.frame.to_string(na_rep="", max_colwidth=None)


def table(rows: Sequence[Mapping[str, Any]], index: str | Sequence[str] | None = None, digits: int | None = 3) -> Table:
    """A results table: one row per mapping (column name -> value), columns in first-seen order.

    Args:
      rows: the table's rows; a missing entry is shown empty.
      index: column name(s) to use as the row labels (a MultiIndex for several), or None for 0, 1, ….
      digits: round floating-point columns to this many decimals (None keeps them as they are).
    Returns:
      A `Table` (display it as a cell's last value, or with `IPython.display.display`); `.frame` is the DataFrame.
    """
    import pandas as pd

    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)) or not all(isinstance(r, Mapping) for r in rows):
        raise TypeError(f"rows must be a sequence of mappings (column name -> value); got {type(rows).__name__}")
    if digits is not None and (not isinstance(digits, int) or digits < 0):
        raise ValueError(f"digits must be a non-negative integer or None; got {digits!r}")
    columns = list(dict.fromkeys(k for r in rows for k in r))
    frame = pd.DataFrame([{k: _scalar(v) for k, v in r.items()} for r in rows], columns=columns)
    if index is not None:
        names = [index] if isinstance(index, str) else list(index)
        missing = [n for n in names if n not in columns]
        if missing:
            raise ValueError(f"index names columns {missing} that no row has; columns are {columns}")
        frame = frame.set_index(names if len(names) > 1 else names[0])
    if digits is not None:
        frame = frame.round(digits)
    return Table(frame)


def _scalar(value):
    """A 0-d array (JAX or NumPy) as the Python number it holds, so that its column is numeric and gets rounded."""
    return value.item() if getattr(value, "shape", None) == () and hasattr(value, "item") else value


def settings(scale: str, values: Mapping[str, Any], **constants: Any) -> None:
    """Print a chapter's scale and its settings, one per line: `scale 'small'`, then `  name  value` lines.

    Args:
      scale: the chapter's SCALE ("small" or "full").
      values: the settings the scale switch chose (the chapter's SETTINGS).
      **constants: further fixed settings to show with them (a learning rate, say).
    Returns:
      None; prints lines of at most `WIDTH` characters (a long value is wrapped onto indented lines).
    """
    import textwrap

    if not isinstance(values, Mapping):
        raise TypeError(f"values must be a mapping (setting name -> value); got {type(values).__name__}")
    items = {**values, **constants}
    name_width = max((len(str(k)) for k in items), default=0)
    print(f"scale {scale!r}")
    for name, value in items.items():
        text = ", ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        prefix = f"  {str(name):{name_width}s}  "
        print(textwrap.fill(text, WIDTH, initial_indent=prefix, subsequent_indent=" " * len(prefix),
                            break_on_hyphens=False))
