"""The shared factor made visible: a red box around ∂L/∂a·∂a/∂z where δ is first named, and δ red from there on.

The box and the colour are emphasis, which the other page tests read through (``tests/latex_reader.py``,
``tests/test_page_steps.without_red_errors``); these check where they are, in every format.
"""

from __future__ import annotations

import re

import pytest

from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive, words
from symbolic._html import render_html

BOX = r"{\color{red}\boxed{\color{black}"
PAGES = {
    "tutorial": TUTORIAL,
    "softmax": Network([4, 5, 3], ["relu", "softmax"], "cross_entropy"),
    "deep-bias-mean": Network([3, 4, 4, 2], ["tanh", "gelu", "sigmoid"], "half_sse", bias=True, reduction="mean"),
}


def _deltas(latex: str) -> list[tuple[int, bool]]:
    """Every δ the LaTeX prints in mathematics: (where, whether red); a δ in words ($\\delta$) is a word."""
    return [
        (m.start(), latex[max(0, m.start() - 13) : m.start()].endswith(r"{\color{red}"))
        for m in re.finditer(r"\{?\\delta", latex)
        if not (latex[m.start() - 1] == "$" and latex[m.end()] == "$")
    ]


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_box_comes_where_delta_is_named_and_delta_is_red_after_it(name, lang):
    derivation = derive(PAGES[name])
    latex = derivation.latex(lang=lang)
    body = latex[latex.index(words(lang)["heading_output"].split("{")[0]) :]  # notation and forward pass above
    first_box = body.index(BOX)
    key = "shared_factor" if PAGES[name] == TUTORIAL else "shared_factor_boxed"
    named = body.index(words(lang)[key].split("{")[0][-12:])
    assert first_box < named  # the box is in the weight's chain, just above the sentence that names δ
    assert BOX in body[named:]  # and around the first line of δ's own chain
    deltas = [(where, red) for where, red in _deltas(body) if not body[where - 1].isalpha()]
    before = [red for where, red in deltas if where < named]
    after = [red for where, red in deltas if where > named]
    assert after and all(after), "every δ after its naming is red"
    assert not any(before), "no δ is red before the box names it"
    head = latex[: latex.index(body[:40])]
    assert r"{\color{red}" not in head  # the notation and the forward pass: nothing red yet


def test_only_the_tutorial_names_the_tutorial_s_box():
    en = words("en")
    assert "tutorial's red box" in en["shared_factor"] and "tutorial" not in en["shared_factor_boxed"]
    assert "教程" in words("zh")["shared_factor"] and "教程" not in words("zh")["shared_factor_boxed"]
    tutorial = derive(TUTORIAL).text()
    other = derive(PAGES["softmax"]).text()
    assert "the tutorial's red box" in tutorial and "boxed in red" not in tutorial
    assert "boxed in red" in other and "tutorial" not in other


@pytest.mark.parametrize("name", PAGES)
def test_the_box_is_in_every_format(name):
    derivation = derive(PAGES[name])
    values = TUTORIAL_VALUES if PAGES[name] == TUTORIAL else None
    markdown = str(derivation.markdown(values=values))
    html = render_html(derivation, values)
    text = derivation.text(values=values)
    assert BOX in markdown
    assert BOX.replace("\\", "\\") in html.replace("&#x27;", "'")  # data-tex, HTML-escaped braces stay
    assert re.search(r"= ⟦∂L/∂a⁽\S+\[1\] · ∂a⁽\S+\[1\]/∂z⁽\S+\[1\]⟧", text) or re.search(r"= ⟦Σ\[k=1", text)


def test_the_pdf_box_is_red_in_vector_fonts(pdflatex, tmp_path):
    """The colour reaches the PDF (xcolor's red set to the figure's), and no font is a Type 3 bitmap."""
    import shutil
    import subprocess

    if shutil.which("pdffonts") is None:
        pytest.skip("poppler-utils (pdffonts) is not installed")
    target = tmp_path / "t.pdf"
    derive(TUTORIAL).pdf(target, values=TUTORIAL_VALUES)
    fonts = subprocess.run(["pdffonts", str(target)], capture_output=True, text=True, check=True).stdout
    assert "Type 3" not in fonts, fonts
    source = derive(TUTORIAL).latex(document=True, values=TUTORIAL_VALUES)
    assert r"\definecolor{red}{HTML}{C62828}" in source and r"\usepackage{xcolor}" in source
