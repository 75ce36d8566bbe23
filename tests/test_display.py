"""wvi.display: results tables and the settings lines of a chapter's scale switch."""
import pytest

from wvi import display


def test_table_keeps_columns_in_first_seen_order_and_rounds_floats():
    frame = display.table([{"method": "DLE", "nll": 1.23456}, {"method": "DE", "nll": 2.0, "rmse": 0.5}],
                          index="method", digits=2).frame
    assert list(frame.columns) == ["nll", "rmse"]
    assert frame.loc["DLE", "nll"] == 1.23
    assert frame.loc["DE", "rmse"] == 0.5
    assert frame["rmse"].isna().tolist() == [True, False]  # a missing entry is empty, not an error


def test_table_with_two_index_columns():
    rows = [{"data": d, "family": f, "W2": 0.1} for d in ("a", "b") for f in ("mean-field", "full")]
    frame = display.table(rows, index=["data", "family"]).frame
    assert frame.index.nlevels == 2 and frame.loc[("b", "full"), "W2"] == 0.1


def test_table_shows_long_text_in_full_as_html_and_text():
    long = "reduced: steps 1000 (full: 120000), num_samples 8 (full: 128), " * 2
    shown = display.table([{"run": "mlp-mnist", "status": long, "missing": None}, {"run": "x", "status": "ok"}])
    html, text = shown._repr_html_(), repr(shown)
    assert long.strip() in html and long.strip() in text  # pandas would cut it at 50 characters with "..."
    assert html.count("<tr") == 3 and "<table" in html and "None" not in html


@pytest.mark.parametrize("rows, index, digits, match", [
    ("not rows", None, 3, "rows must be a sequence of mappings"),
    ([{"a": 1}], "b", 3, r"index names columns \['b'\]"),
    ([{"a": 1}], None, -1, "digits must be a non-negative integer"),
])
def test_table_rejects_bad_arguments(rows, index, digits, match):
    with pytest.raises((TypeError, ValueError), match=match):
        display.table(rows, index=index, digits=digits)


def test_settings_prints_one_short_line_per_setting(capsys):
    display.settings("small", {"datasets": ("breast_cancer", "diabetes") * 8, "steps": 5000}, learning_rate=0.01)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "scale 'small'"
    assert lines[1].startswith("  datasets       breast_cancer, diabetes")
    assert any(line.startswith("  steps          5000") for line in lines)
    assert lines[-1] == "  learning_rate  0.01"
    assert len(lines) > 4  # the long tuple wrapped onto continuation lines
    assert max(map(len, lines)) <= display.WIDTH


def test_settings_rejects_a_non_mapping():
    with pytest.raises(TypeError, match="values must be a mapping"):
        display.settings("small", [("steps", 1)])



def test_the_nbval_sanitiser_ignores_a_wall_time_column_changing_width():
    """A table whose wall time grows a digit re-pads its column; tests/nbval_sanitize.cfg must still match it."""
    import re
    from pathlib import Path

    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((Path(__file__).parent / "nbval_sanitize.cfg").read_text())

    def shown(wall):
        text = repr(display.table([{"method": "m1", "W2": 0.351, "wall": wall}, {"method": "m2", "W2": 0.2}],
                                  index="method"))
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    assert shown("9.2 s") == shown("12.3 s")
