"""Page 1 is a lesson: why first, then the forward pass and the backward pass as the page's two parts, how the
page was checked at its end; no line that only reorders the one before; every "…:" on the page of its display,
and no page of the PDF left half empty."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import sympy

from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive, sample_values, words
from symbolic._blocks import Chain, Heading, Prose
from symbolic._printers import Boxed, Factors
from symbolic._render import explain

NETWORKS = {
    "tutorial": (TUTORIAL, TUTORIAL_VALUES),
    "relu-softmax": (Network([4, 5, 3], ["relu", "softmax"], "cross_entropy"), None),
    "bias-mean": (Network([3, 4, 4, 2], ["tanh", "gelu", "sigmoid"], "half_sse", bias=True, reduction="mean"), None),
}
for _name, (_network, _values) in list(NETWORKS.items()):
    if _values is None:
        NETWORKS[_name] = (_network, sample_values(_network, seed=1))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_why_first_then_two_parts_then_how_it_was_checked(lang):
    w = words(lang)
    blocks = explain(derive(TUTORIAL), TUTORIAL_VALUES, lang)
    first = blocks[0]
    assert isinstance(first, Prose) and first.parts[0].startswith(w["motivation"].split("{")[0])
    parts = [b.text for b in blocks if isinstance(b, Heading) and b.level == 2]
    assert parts.index(w["heading_forward"]) < parts.index(w["heading_backward"])
    assert w["heading_forward"] == {"en": "Forward pass", "zh": "正向传播"}[lang]
    assert w["heading_backward"] == {"en": "Backward pass", "zh": "反向传播"}[lang]
    backward = blocks.index(Heading(w["heading_backward"]))
    inside = [b for b in blocks[backward:] if isinstance(b, Heading)][1:]
    assert inside[0].level == 3 and inside[0].text.startswith(w["heading_output"].split("{")[0])
    assert blocks[-2] == Heading(w["heading_checked"])  # the checked paragraph ends the page
    assert isinstance(blocks[-1], Prose) and blocks[-1].parts[0].startswith(w["what_is_derived"].split("{")[0])


def _plain(tree):
    return tree.replace(Boxed, lambda content: content).replace(Factors, lambda *factors: sympy.Mul(*factors))


@pytest.mark.parametrize("name", NETWORKS)
def test_no_line_only_reorders_the_one_before(name):
    network, values = NETWORKS[name]
    for chain in (b for b in explain(derive(network), values) if isinstance(b, Chain)):
        for before, after in zip(chain.terms, chain.terms[1:]):
            same = _plain(before.tree) == _plain(after.tree) and isinstance(_plain(after.tree), sympy.Mul)
            assert not same, f"{before.text} = {after.text} only reorders"


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_colon_is_followed_by_its_display_in_one_paragraph(name, lang):
    network, values = NETWORKS[name]
    latex = derive(network).latex(document=True, values=values, lang=lang)
    body = latex[latex.index(r"\begin{document}") :]
    for match in re.finditer(r"[:：]\s*\n", body):
        follows = body[match.end() : match.end() + 20]
        assert follows.startswith(r"\begin{align*}"), body[max(0, match.start() - 80) : match.end() + 20]


def _pages(pdf) -> list[tuple[float, float, str]]:
    """(height, lowest text's bottom, last line's text) of each page (the page number left out)."""
    xhtml = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    pages = []
    for page in re.findall(r"<page width=\"[\d.]+\" height=\"([\d.]+)\">(.*?)</page>", xhtml, re.S):
        height = float(page[0])
        words_ = [
            (float(y_max), text)
            for y_max, text in re.findall(r'yMax="([\d.]+)">([^<]*)</word>', page[1])
            if not (text.isdigit() and float(y_max) > 0.9 * height)
        ]
        bottom = max(y for y, _ in words_)
        last = " ".join(text for y, text in words_ if abs(y - bottom) < 3)
        pages.append((height, bottom, last))
    return pages


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_tutorial_pdf_has_no_half_empty_page_and_no_colon_at_a_page_s_foot(pdflatex, tmp_path, lang):
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) is not installed")
    pdf = tmp_path / "t.pdf"
    derive(TUTORIAL).pdf(pdf, values=TUTORIAL_VALUES, lang=lang)
    pages = _pages(pdf)
    for height, bottom, last in pages[:-1]:
        assert bottom > 0.6 * height, f"a page filled to {bottom / height:.0%}"
        assert not last.rstrip().endswith((":", "：")), last


@pytest.mark.parametrize("name", NETWORKS)
def test_the_page_names_the_parameters_the_network_has(name):
    """A network without biases is not told of b: neither in the motivation nor in the checked paragraph's
    z = W a (+ b)."""
    network, values = NETWORKS[name]
    blocks = explain(derive(network), values)
    motivation, checked = blocks[0], blocks[-1]
    said = "".join(part if isinstance(part, str) else part.text for part in motivation.parts)
    layer_map = next(part.text for part in checked.parts if not isinstance(part, str) and "W" in part.text)
    assert ("bias b" in said) == network.bias, said
    assert ("+ b" in layer_map) == network.bias, layer_map
