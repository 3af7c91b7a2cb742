"""Chinese derivations (issue 12): the same equations, the words from the Chinese table, real TeX for the PDF."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

import symbolic._words
from numeric.cli import main
from symbolic import TUTORIAL, TUTORIAL_VALUES, LatexUnavailable, Network, build_pdf, derive, sample_values
from symbolic._blocks import Chain, Heading, Math, Notation, Prose
from symbolic._render import explain
from symbolic._words import CHINESE, ENGLISH

TERMS = ("正向传播", "反向传播", "链式法则")
NETWORKS = [
    TUTORIAL,
    Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True),
    Network([2, 3, 3, 1], ["relu", "softplus", "sigmoid"], "bce"),
    Network([2, 3, 3, 3, 3, 1], "tanh", "half_sse", bias=True),
]


def _placeholders(sentence: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", sentence))


def test_both_tables_have_the_same_keys_and_placeholders():
    assert ENGLISH.keys() == CHINESE.keys()
    for key in ENGLISH:
        assert _placeholders(ENGLISH[key]) == _placeholders(CHINESE[key]), key


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_no_english_leaks_into_chinese(network):
    """Every word outside the mathematics is Chinese, but for names: the network's, SymPy's, sympy.diff."""
    derivation = derive(network)
    allowed = {*network.activations, network.loss, "chainrule", "SymPy", "sympy.diff", "softmax"}
    allowed |= {"loss.backward()", "float32", "PyTorch", "torch", "autograd", ".grad"}  # the PyTorch box's code
    words = []
    for block in explain(derivation, sample_values(network, 0), lang="zh"):
        if isinstance(block, Heading):
            words.append(block.text)
        elif isinstance(block, Prose):
            words += [part for part in block.parts if not isinstance(part, Math)]
        elif isinstance(block, Notation):
            words += [meaning for _, _, meaning in block.rows] + list(block.header)
        elif isinstance(block, Chain):
            words += [term.text for term in block.terms if r"\text" in term.latex]  # a sentence inside math
    for text in words:
        for name in sorted(allowed, key=len, reverse=True):
            text = text.replace(name, "")
        assert not re.search(r"[A-Za-z]{3,}", text), text
    assert any(re.search(r"[\u4e00-\u9fff]", text) for text in words)


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_english_is_unchanged_by_adding_chinese(network, monkeypatch):
    """The default is English, and the English output is byte for byte what it is without the Chinese table."""
    derivation = derive(network)
    values = sample_values(network, 0)
    outputs = [derivation.latex(document=True, values=values), derivation.markdown(values=values), derivation.text()]
    assert outputs == [
        derivation.latex(document=True, values=values, lang="en"),
        derivation.markdown(values=values, lang="en"),
        derivation.text(lang="en"),
    ]
    monkeypatch.setattr(symbolic._words, "WORDS", {"en": ENGLISH})
    assert outputs == [
        derivation.latex(document=True, values=values),
        derivation.markdown(values=values),
        derivation.text(),
    ]
    assert not re.search(r"[\u4e00-\u9fff]", "".join(outputs))


def test_same_mathematics_in_both_languages():
    derivation = derive(Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True))
    chains = {lang: [b for b in explain(derivation, lang=lang) if isinstance(b, Chain)] for lang in ("en", "zh")}
    assert [c.terms for c in chains["en"]] == [c.terms for c in chains["zh"]]


def test_markdown_and_text_hold_the_tutorials_terms():
    derivation = derive(TUTORIAL)
    for output in (derivation.markdown(lang="zh"), derivation.text(lang="zh"), derivation.latex(lang="zh")):
        for term in TERMS:
            assert term in output, term


def test_unknown_language_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="lang must be one of en, zh; got 'fr'"):
        derive(TUTORIAL).text(lang="fr")
    assert main(["derive", "--lang", "fr"]) == 2
    assert "invalid choice: 'fr'" in capsys.readouterr().err


def test_chinese_pdf_holds_the_terms_in_a_cjk_font(pdflatex, tmp_path):
    if shutil.which("pdftotext") is None or shutil.which("pdffonts") is None:
        message = "poppler-utils (pdftotext, pdffonts) is not installed (CI installs it: see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    target = tmp_path / "t.pdf"
    assert main(["derive", "--lang", "zh", "--format", "pdf", "-o", str(target)]) == 0
    text = subprocess.run(["pdftotext", str(target), "-"], capture_output=True, text=True, check=True).stdout
    for term in TERMS:
        assert term in text, term
    fonts = subprocess.run(["pdffonts", str(target)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"gbsn|gkai|bsmi|bkai", fonts), fonts  # the Arphic CJK fonts


@pytest.mark.parametrize("network", NETWORKS[:3], ids=lambda n: n.describe())
def test_chinese_document_compiles_without_overfull_lines(pdflatex, tmp_path, network):
    values = TUTORIAL_VALUES if network == TUTORIAL else sample_values(network, 0)
    log = build_pdf(derive(network).latex(document=True, values=values, lang="zh"), tmp_path / "zh.pdf")
    too_wide = [float(p) for p in re.findall(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)", log)]
    assert all(points <= 20 for points in too_wide), too_wide


def test_missing_chinese_tex_support_names_the_packages(monkeypatch, tmp_path):
    monkeypatch.setattr("symbolic._pdf.tex_file_found", lambda name: False)
    with pytest.raises(LatexUnavailable, match="latex-cjk-chinese latex-cjk-chinese-arphic-gbsn00lp"):
        build_pdf(derive(TUTORIAL).latex(document=True, lang="zh"), tmp_path / "zh.pdf")


def test_tutorial_report_in_chinese(capsys):
    assert main(["--lang", "zh"]) == 0
    out = capsys.readouterr().out
    for term in (*TERMS, "推导", "梯度"):
        assert term in out, term
    assert main(["tutorial"]) == 0  # English by default
    assert not re.search(r"[\u4e00-\u9fff]", capsys.readouterr().out)
