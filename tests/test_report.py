"""Tests of wvi.report: claims are recorded, saved reproducibly and rendered into the report table."""
import json

from wvi import report


def test_check_save_load_and_table(tmp_path, capsys):
    claims = report.Claims("part9/demo", "Demo chapter")
    assert claims.check("Paper A", "x < 1", 0.123456, True)
    assert not claims.check("book", "y > 2", "1.5", False)
    assert "[FAIL] y > 2: measured 1.5" in capsys.readouterr().out
    assert not claims.all_passed and claims.failures() == "y > 2 (measured 1.5)"
    path = claims.save(tmp_path)
    assert path.name == "part9-demo.json"
    saved = json.loads(path.read_text())
    assert saved["claims"][0]["measured"] == "0.1235"
    first = path.read_text()
    claims.save(tmp_path)
    assert path.read_text() == first  # same run, same file
    table = report.markdown_table(report.load(tmp_path))
    assert "| Paper A | x < 1 | [Demo chapter](part9/demo.ipynb) | 0.1235 | pass |" in table
    assert "**fail**" in table


def test_save_outside_the_book_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert report.Claims("a/b", "t").save() is None


def test_pending_claims_are_neither_passes_nor_failures(tmp_path, capsys):
    claims = report.Claims("part9/full", "Full scale")
    claims.check("Paper A", "x < 1", 0.5, True)
    claims.pending("Paper A", "Fig. 4: aligned barrier ≈ 0", "reduced budget: 0.01 vs 1.3")
    assert "[not yet run] Fig. 4: aligned barrier ≈ 0: reduced budget: 0.01 vs 1.3" in capsys.readouterr().out
    assert claims.all_passed and claims.failures() == "none"
    records = report.load(claims.save(tmp_path).parent)
    assert report.counts(records) == {"pass": 1, "fail": 0, "not yet run": 1}
    assert "| reduced budget: 0.01 vs 1.3 | not yet run |" in report.markdown_table(records)
