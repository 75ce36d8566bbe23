"""Tests of wvi.report: ledger rows are recorded with a verdict from the fixed vocabulary, saved reproducibly,
counted, and rendered (escaped) into the report page."""
import json

import pytest

from wvi import report


def demo_claims():
    claims = report.Claims("part9/demo", "Demo chapter")
    claims.work("Rossi et al.", "Fig. 4", "aligned barrier | naive barrier < ¼", measured="0.01 vs 1.2",
                criterion="ratio < 0.25 (fixed in the text)", verdict=report.verdict_of(True), expected="reproduced")
    claims.work("Rossi et al.", "Fig. 5", "wider is lower", measured="1.8 vs 1.3", criterion="widest ≤ narrowest",
                verdict=report.verdict_of(False), expected="not reproduced", section="5. Width")
    claims.unrun("Yi & Liu", "§5 UCI sets", "their table", verdict="not attempted", why="no data here")
    claims.book("floor", "the floor is below 0.1", measured="0.05", criterion="< 0.1", holds=True)
    return claims


def test_verdict_of():
    assert report.verdict_of(True, True) == "reproduced"
    assert report.verdict_of(True, False) == "partly reproduced"
    assert report.verdict_of(False) == "not reproduced"
    with pytest.raises(ValueError, match="at least one"):
        report.verdict_of()


def test_rows_show_as_a_table_and_a_non_reproduction_is_consistent(capsys):
    claims = demo_claims()
    assert capsys.readouterr().out == ""  # recording prints nothing: the check cell ends with claims.table()
    frame = claims.table().frame
    assert frame.loc[("Rossi et al.", "Fig. 5"), "verdict"] == "not reproduced"
    assert frame.loc[("Rossi et al.", "Fig. 5"), "measured"] == "1.8 vs 1.3"
    assert list(frame.columns) == ["verdict", "statement", "measured", "criterion"] and len(frame) == 4
    html = claims.table()._repr_html_()
    assert "aligned barrier | naive barrier &lt; ¼" in html  # text escaped, never cut short
    assert claims.consistent and claims.problems() == "none"


def test_a_verdict_the_prose_does_not_state_or_a_failing_book_claim_is_inconsistent():
    claims = demo_claims()
    claims.work("Rossi et al.", "Fig. 7", "s", measured="1", criterion="c", verdict="not reproduced",
                expected="reproduced")
    assert not claims.consistent and "Fig. 7" in claims.problems()
    claims = demo_claims()
    claims.book("t", "s", measured="2", criterion="< 1", holds=False)
    assert not claims.consistent and "'fails'" in claims.problems()


def test_a_withdrawn_book_claim_is_consistent_counted_and_says_why():
    claims = demo_claims()
    claims.withdrawn("t", "s", measured="0.2 in one of five runs", criterion="< 0.1", why="fails on five replicas")
    assert claims.consistent
    row = claims.rows[-1]
    assert row.verdict == row.expected == "withdrawn" and row.criterion == "< 0.1 (withdrawn: fails on five replicas)"
    entries = [report.Entry(r, "part2/x", "X") for r in claims.rows]
    assert report.counts(entries)["book"]["withdrawn"] == 1
    assert report.summary(entries).endswith("fail, 1 withdrawn after a later check failed.")
    assert "withdrawn</span> 1" in report.summary_html(entries)
    with pytest.raises(ValueError, match="why must say which check"):
        claims.withdrawn("t", "s", measured="1", criterion="c", why="")


@pytest.mark.parametrize("kwargs, match", [
    (dict(work="Rossi", item="Fig. 4"), "work must be one of"),
    (dict(work="Rossi et al.", item="Fig. 4", verdict="pass"), "verdict must be one of"),
    (dict(work="Rossi et al.", item="Fig. 4", expected="pass"), "expected must be one of"),
])
def test_bad_rows_are_refused_with_the_argument_named(kwargs, match):
    args = dict(statement="s", measured="m", criterion="c", verdict="reproduced", expected="reproduced") | kwargs
    with pytest.raises(ValueError, match=match):
        report.Claims("a/b", "t").work(**args)
    with pytest.raises(ValueError, match="verdict must be"):
        report.Claims("a/b", "t").unrun("Rossi et al.", "Fig. 4", "s", verdict="reproduced", why="w")


def test_save_is_reproducible_and_loads_into_an_ordered_ledger(tmp_path):
    path = demo_claims().save(tmp_path)
    assert path.name == "part9-demo.json"
    first = path.read_text()
    demo_claims().save(tmp_path)
    assert path.read_text() == first  # same run, same file
    assert sorted(f.name for f in tmp_path.iterdir()) == [path.name]  # renamed into place, nothing left beside it
    assert json.loads(first)["rows"][0]["verdict"] == "reproduced"
    items = [{"work": "Yi & Liu", "item": "§3.3", "statement": "s", "chapter": None, "verdict": "not yet run",
              "why": "w"}]
    entries = report.ledger(report.load(tmp_path), items)
    assert [e.row.work for e in entries] == ["Yi & Liu", "Yi & Liu", "Rossi et al.", "Rossi et al.", "book"]
    counts = report.counts(entries)
    assert counts["Rossi et al."]["reproduced"] == 1 and counts["Rossi et al."]["not reproduced"] == 1
    assert counts["Yi & Liu"]["not attempted"] == 1 and counts["Yi & Liu"]["not yet run"] == 1
    assert counts["book"] == {"holds": 1, "fails": 0, "withdrawn": 0}
    assert report.summary(entries).startswith("Of the 4 items of the eight works in the ledger: 1 reproduced, "
                                              "1 not reproduced, 1 not yet run, 1 not attempted.")


def test_item_verdicts_aggregate_rows():
    def entry(item, verdict):
        return report.Entry(report.Row("Rossi et al.", item, "s", "", "c", verdict, verdict), "c", "t")
    verdicts = report.item_verdicts([entry("A", "reproduced"), entry("A", "not reproduced"),
                                     entry("B", "not reproduced"), entry("B", "not testable at this scale"),
                                     entry("C", "not yet run")])
    assert verdicts == {("Rossi et al.", "A"): "partly reproduced", ("Rossi et al.", "B"): "not reproduced",
                        ("Rossi et al.", "C"): "not yet run"}


def test_combine_verdicts_counts_an_untestable_part_as_not_met():
    """A part measured but not testable keeps an item from "reproduced"; a part not yet run is left out."""
    combine = report.combine_verdicts
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "not testable at this scale"]) == "partly reproduced"
    assert combine(["not yet run", "reproduced", "not testable at this scale"]) == "partly reproduced"
    assert combine(["not yet run", "reproduced"]) == "reproduced"
    assert combine(["partly reproduced", "not reproduced"]) == "partly reproduced"
    assert combine(["not reproduced", "not testable at this scale"]) == "not reproduced"
    assert combine(["not testable at this scale"] * 2) == "not testable at this scale"
    assert combine(["not yet run", "not testable at this scale"]) == "not testable at this scale"
    assert combine(["not yet run", "not attempted"]) == "not yet run"
    with pytest.raises(ValueError, match="at least one"):
        combine([])


def test_html_escapes_claim_text_and_links_to_the_section(tmp_path):
    entries = report.ledger(report.load(demo_claims().save(tmp_path).parent))
    page = report.rows_html(entries)
    assert "aligned barrier | naive barrier &lt; ¼" in page  # a bar cannot break an HTML row
    assert "<a href='part9/demo.html#width' title='Demo chapter'>Fig. 5</a>" in page
    assert "<a href='part9/demo.html#checks'" in page
    assert "<a href='part9/demo.html#checks' title='Demo chapter'>§5 UCI sets</a>" in page
    assert page.count("<table") == 3  # one per work present, then the book's claims
    summary = report.summary_html(entries)
    assert summary.count("<tr>") == len(report.WORKS) + 2
    # counts items, not rows: Rossi et al. has two items, one reproduced and one not, in two rows
    rossi = summary.split("<td>Rossi et al.</td>")[1].split("</tr>")[0]
    assert rossi == "<td>2</td><td>1</td><td></td><td>1</td><td></td><td></td><td></td><td>2</td>"


def test_anchor_matches_docutils():
    assert report.anchor("4. Check cells") == "check-cells"
    assert report.anchor("7. What agrees, and what does not") == "what-agrees-and-what-does-not"


def test_inventory_needs_a_verdict_and_reason_for_unrun_items(tmp_path):
    path = tmp_path / "inventory.yml"
    path.write_text("- {work: Rossi et al., item: Fig. 2, statement: s, chapter: null}\n")
    with pytest.raises(ValueError, match="needs a verdict"):
        report.read_inventory(path)
    path.write_text("- {work: Rossi, item: Fig. 2, statement: s, chapter: x}\n")
    with pytest.raises(ValueError, match="unknown work"):
        report.read_inventory(path)


def test_save_outside_the_book_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert report.Claims("a/b", "t").save() is None


def test_save_replaces_the_file_whole(tmp_path, monkeypatch):
    """A save that fails before its rename leaves the earlier file as it was (a reader at the same time, such as
    the report chapter while another chapter re-runs, never sees a half-written file)."""
    path = demo_claims().save(tmp_path)
    first = path.read_text()
    changed = demo_claims()
    changed.book("another", "s", measured="1", criterion="c", holds=True)

    def interrupted(src, dst):
        raise OSError("interrupted before the rename")

    monkeypatch.setattr(report.os, "replace", interrupted)
    with pytest.raises(OSError, match="interrupted"):
        changed.save(tmp_path)
    assert path.read_text() == first
    assert sorted(f.name for f in tmp_path.iterdir()) == [path.name]  # and the partial file is cleaned up
