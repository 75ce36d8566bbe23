"""tools/check_html.py, the built-page check of `make test`: it finds each kind of rendering defect on a small
bad page, and stays quiet on a good one."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import check_html  # noqa: E402

GOOD = """<html><head><script src="../_static/mathjax/tex-chtml.js"></script></head><body><article>
<p>The flow of <span class="math notranslate nohighlight">\\(\\mathrm{KL}(q\\,\\|\\,p)\\)</span> costs $5.</p>
<div class="cell_output"><pre>$F(Q) = \\int \\ell$ and {cite}`x` and | a | b |\n""" + "y" * 88 + """</pre></div>
<div class="cell_input"><pre>x = 1\n""" + "z" * 88 + """</pre></div>
<table><tr><td>a</td><td>b</td></tr></table><p><code>$x$ {ref}`y`</code></p>
<figure id="fig-x"><img alt="Two curves" src="../_images/cd34.png"/><figcaption><p>Fig. 1 Two curves.</p>
</figcaption></figure><img id="_anim_img1"/></article></body></html>"""

BAD = {
    "raw-math": "<p>the free energy $F(Q) = \\int\\ell\\,\\mathrm dQ +</p><ul><li>\\lambda_2 KL</li></ul>",
    "raw-role": "<p>as shown by {cite}`wild2023rigorous`, only</p>",
    "broken-table": "<p>| method | rate |\n|---|---|\n| DE | 0 |</p>",
    "uncaptioned-figure": '<div class="cell_output"><img alt="../_images/ab12.png" src="../_images/ab12.png"/></div>',
    "network-asset": '<div class="cell_output"><link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/fa.css">'
                     '<button>▶</button></div>',
    "long-output": '<div class="cell_output"><div class="output stream"><pre>ok\n' + "x" * 89 + "</pre></div></div>",
    "long-code": '<div class="cell_input docutils container"><div class="highlight"><pre>x = 1\n' + "z" * 89
                 + "</pre></div></div>",
}


def page(body: str, mathjax: str = "../_static/mathjax/tex-chtml.js") -> str:
    return f'<html><head><script src="{mathjax}"></script></head><body><article>{body}</article></body></html>'


def test_a_good_page_has_no_findings():
    assert check_html.check_page(GOOD, "good.html") == []


@pytest.mark.parametrize("kind", BAD)
def test_each_defect_is_found(kind):
    findings = check_html.check_page(page(BAD[kind]), "bad.html")
    assert [f.kind for f in findings] == [kind] * len(findings) and findings


def test_long_code_is_found_in_literal_blocks_too():
    """A docstring's literal block on the API page scrolls like a code cell."""
    api = '<dl><dd><div class="highlight-default notranslate"><pre>    x = ' + "w" * 85 + "</pre></div></dd></dl>"
    assert [f.kind for f in check_html.check_page(page(api), "api.html")] == ["long-code"]


def test_mathjax_from_the_network_is_found():
    findings = check_html.check_page(page("<p>fine</p>", "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"),
                                     "cdn.html")
    assert [f.kind for f in findings] == ["offline-math"]


def test_main_reports_and_fails(tmp_path, capsys):
    (tmp_path / "good.html").write_text(GOOD)
    assert check_html.main(["check_html", str(tmp_path)]) == 0
    (tmp_path / "bad.html").write_text(page(BAD["raw-role"]))
    assert check_html.main(["check_html", str(tmp_path)]) == 1
    assert "bad.html: raw-role" in capsys.readouterr().out


def test_a_page_may_be_exempted_from_captions_only(tmp_path):
    (tmp_path / "bad.html").write_text(page(BAD["uncaptioned-figure"]))
    assert check_html.main(["check_html", str(tmp_path), "--uncaptioned-ok", "bad.html"]) == 0
    (tmp_path / "bad.html").write_text(page(BAD["uncaptioned-figure"] + BAD["raw-role"]))
    assert check_html.main(["check_html", str(tmp_path), "--uncaptioned-ok", "bad.html"]) == 1
