"""LaTeX that compiles, fits the page and is reproducible; Markdown and notebook math that compile."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import sympy

from numeric.cli import main
from symbolic import TUTORIAL, TUTORIAL_VALUES, LatexUnavailable, Network, build_pdf, derive, sample_values

NETWORKS = {
    # the three the issue names, then a deep one (one general layer-l step) and a wide one (Σ forms)
    "tutorial": TUTORIAL,
    "tanh-softmax-ce-bias": Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True),
    "relu-softplus-sigmoid-bce": Network([2, 3, 3, 1], ["relu", "softplus", "sigmoid"], "bce"),
    "deep": Network([2, 6, 6, 6, 6, 1], ["tanh", "relu", "softplus", "tanh", "sigmoid"], "bce", bias=True),
    "wide": Network([32, 32, 32, 10], ["relu", "tanh", "softmax"], "cross_entropy", bias=True),
    "wide-logits-mean": Network([4, 8, 10], ["tanh", "identity"], "softmax_cross_entropy", bias=True, reduction="mean"),
}
OVERFULL = re.compile(r"Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)")


def _values(network):
    return TUTORIAL_VALUES if network == TUTORIAL else sample_values(network, seed=0)


def _document(body: str) -> str:
    # xcolor: the red box's \color, which MathJax and KaTeX (Markdown's and notebooks' math) define themselves
    return (
        "\\documentclass{article}\n\\usepackage{amsmath,amssymb,xcolor}\n\\begin{document}\n"
        + body
        + "\n\\end{document}\n"
    )


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_standalone_document_compiles_without_overfull_lines(pdflatex, tmp_path, key):
    network = NETWORKS[key]
    log = build_pdf(derive(network).latex(document=True, values=_values(network)), tmp_path / "d.pdf")
    assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF")
    too_wide = [float(points) for points in OVERFULL.findall(log)]
    assert all(points <= 20 for points in too_wide), too_wide


def test_fragment_is_the_documents_body():
    derivation = derive(TUTORIAL)
    fragment = derivation.latex()
    document = derivation.latex(document=True)
    assert r"\documentclass" not in fragment and fragment in document


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_markdown_and_notebook_math_compile(pdflatex, tmp_path, key):
    derivation = derive(NETWORKS[key])
    markdown = derivation.markdown()
    assert derivation._repr_markdown_() == markdown
    unquoted = re.sub(r"^> ?", "", markdown, flags=re.M)  # the summary is a quoted block
    blocks = re.findall(r"\$\$\n(.*?)\n\$\$", unquoted, flags=re.S)
    inline = re.findall(r"(?<!\$)\$([^$\n]+)\$(?!\$)", unquoted)
    assert blocks
    body = "\n".join(rf"\[ {block} \]" for block in blocks) + "\n\n" + " ".join(f"${m}$" for m in inline)
    build_pdf(_document(body), tmp_path / "markdown.pdf")

    notebook = derivation._repr_latex_()  # display math only: MathJax typesets no sections
    assert "\\subsection" not in notebook and notebook.count("$$") == 2 * len(blocks)
    build_pdf(_document(notebook.replace("$$", "\n$$\n")), tmp_path / "notebook.pdf")


def test_same_input_gives_byte_identical_output():
    """Across processes with different hash seeds, where SymPy's set orderings could differ."""
    code = (
        "from symbolic import Network, derive, sample_values; "
        "n = Network([3, 4, 2], ['tanh', 'softmax'], 'cross_entropy', bias=True); "
        "print(derive(n).latex(document=True, values=sample_values(n, 3)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


def test_cli_writes_a_pdf(pdflatex, tmp_path):
    target = tmp_path / "tutorial.pdf"
    assert main(["derive", "--format", "pdf", "-o", str(target)]) == 0
    assert target.read_bytes().startswith(b"%PDF")


def test_missing_pdflatex_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr("symbolic._pdf.shutil.which", lambda name: None)
    with pytest.raises(LatexUnavailable, match="pdflatex was not found"):
        build_pdf("\\documentclass{article}\\begin{document}x\\end{document}", tmp_path / "x.pdf")
    assert (
        main(["derive", "--format", "pdf", "-o", str(tmp_path / "x.pdf")]) == 3
    )  # the environment, not the input (see EXIT_CODES)
    assert "pdflatex was not found" in capsys.readouterr().err


PAGES = re.compile(r"Output written on \S+ \((\d+) pages?")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_tutorial_fits_three_pages_without_overfull_boxes(pdflatex, tmp_path, lang):
    log = build_pdf(derive(TUTORIAL).latex(document=True, values=TUTORIAL_VALUES, lang=lang), tmp_path / "t.pdf")
    assert int(PAGES.search(log).group(1)) <= 3
    assert "Overfull" not in log


def test_forward_pass_and_loss_are_one_unbreakable_block():
    """The loss is the last row of the forward pass's aligned block, and display breaks are not allowed."""
    document = derive(TUTORIAL).latex(document=True)
    assert "allowdisplaybreaks" not in document
    forward = document.split("Entry by entry:")[1].split("\\end{align*}")[0]
    assert "\\begin{align*}" in forward and "L &=" in forward


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_no_plus_minus_and_real_minus_in_text(key):
    derivation = derive(NETWORKS[key])
    network = NETWORKS[key]
    values = TUTORIAL_VALUES if network == TUTORIAL else sample_values(network, seed=0)
    text, latex = derivation.text(values=values), derivation.latex(values=values)
    assert "+ -" not in text and "+ −" not in text and "+ -" not in latex
    prose = [line for line in text.splitlines() if not line.startswith("  ")]
    assert not any(" - " in line for line in prose)  # a minus in the text form is the real one, −


def test_sums_run_in_natural_order():
    """z_2 before z_10 when a sum of a layer's entries is printed (SymPy's own order is by string)."""
    from symbolic._printers import LatexNotation, TextNotation

    derivation = derive(Network([2, 12], "softmax", "cross_entropy"))
    z = derivation.layers[0].z
    denominator = sympy.Add(*(sympy.exp(z[k]) for k in range(12)))
    latex = LatexNotation(derivation.latex_names).doprint(denominator)
    text = TextNotation({}).doprint(denominator)
    exponentials = re.findall(r"e\^\{\{z\^\{\(1\)\}_\{(\d+)\}\}\}", latex)
    assert exponentials == [str(k) for k in range(1, 13)]
    assert text.index("z⁽¹⁾[2]") < text.index("z⁽¹⁾[10]")


def test_a_wide_softmax_is_written_with_a_sum_over_its_units():
    """exp(z_1)/Σ_k exp(z_k) on the page, not 12 terms (test_steps checks it equals the definition)."""
    text = derive(Network([2, 12], "softmax", "cross_entropy")).text()
    assert "a⁽¹⁾[1] = exp(z⁽¹⁾[1])/Σ[k=1..12] exp(z⁽¹⁾[k])" in text


def test_markdown_renders_as_a_notebook_cells_last_value():
    markdown = derive(TUTORIAL).markdown()
    assert isinstance(markdown, str) and markdown._repr_markdown_() == str(markdown)
    assert markdown.startswith("# Backpropagation by the chain rule")
