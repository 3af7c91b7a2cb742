"""The network's figure: its data against the network, its numbers against torch autograd, both backends."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
import torch

from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, NetworkTypeError, build_pdf, derive, sample_values
from symbolic._figure import figure_svg, figure_tikz, network_figure
from symbolic._formats import _PREAMBLE

SVG = "{http://www.w3.org/2000/svg}"
WIDE = Network([784, 128, 10], ["relu", "identity"], "softmax_cross_entropy", bias=True)


def _number(text: str) -> float:
    """A figure's printed number (1.224 × 10⁻⁴, 1.224×10⁻⁴, −0.5) as a float."""
    superscripts = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
    text = text.replace("−", "-").replace(" ", "")
    if "×10" in text:
        mantissa, exponent = text.split("×10")
        return float(mantissa) * 10 ** int(exponent.translate(superscripts))
    return float(text)


def _torch_tutorial():
    """The tutorial's forward pass and gradients by torch autograd in float64, independently of chainrule."""
    x = torch.tensor(TUTORIAL_VALUES["x"], dtype=torch.float64)
    y = torch.tensor(TUTORIAL_VALUES["y"], dtype=torch.float64)
    w1 = torch.tensor(TUTORIAL_VALUES["W1"], dtype=torch.float64, requires_grad=True)
    w2 = torch.tensor(TUTORIAL_VALUES["W2"], dtype=torch.float64, requires_grad=True)
    z1 = w1 @ x
    z1.retain_grad()
    a1 = torch.sigmoid(z1)
    z2 = w2 @ a1
    z2.retain_grad()
    a2 = torch.sigmoid(z2)
    loss = 0.5 * ((a2 - y) ** 2).sum()
    loss.backward()
    return {"z1": z1, "a1": a1, "z2": z2, "a2": a2, "loss": loss.detach(), "W1": w1, "W2": w2}


def test_tutorial_units_and_weights():
    figure = network_figure(TUTORIAL)
    assert figure.kind == "units"
    units = [node for node in figure.nodes if node.kind in ("input", "unit")]
    assert len(units) == sum(TUTORIAL.sizes)
    for layer, width in enumerate(TUTORIAL.sizes):
        assert sorted(node.key for node in units if node.column == layer) == [
            f"u{layer}-{i}" for i in range(1, width + 1)
        ]
    weighted = [edge for edge in figure.edges if edge.weight is not None]
    assert len(weighted) == sum(a * b for a, b in zip(TUTORIAL.sizes, TUTORIAL.sizes[1:]))
    # the edge from x to hidden unit 2 carries W1[2,1], printed as the page prints it
    edge = next(e for e in weighted if (e.source, e.target) == ("u0-1", "u1-2"))
    assert edge.weight == "W1[2,1]" and edge.label.text == "W⁽¹⁾[2,1]"
    assert edge.label.latex in derive(TUTORIAL).latex()
    # every weight edge runs from unit j of layer l−1 to unit i of layer l, carrying W_l[i, j]
    for edge in weighted:
        layer, i, j = map(int, re.match(r"W(\d+)\[(\d+),(\d+)\]", edge.weight).groups())
        assert (edge.source, edge.target) == (f"u{layer - 1}-{j}", f"u{layer}-{i}")


def test_tutorial_numbers_match_the_derivation_and_torch_autograd():
    figure = network_figure(TUTORIAL, TUTORIAL_VALUES)
    reference = _torch_tutorial()
    derivation = derive(TUTORIAL)
    named = derivation.intermediates(TUTORIAL_VALUES)
    assert float(reference["loss"]) == pytest.approx(0.4999, abs=1e-4)
    assert derivation.evaluate(TUTORIAL_VALUES)["loss"] == pytest.approx(float(reference["loss"]), rel=1e-12)
    assert _number(figure.node("loss").values[0].text) == pytest.approx(float(reference["loss"]), rel=1e-3)
    for layer in (1, 2):
        z, a = reference[f"z{layer}"].detach(), reference[f"a{layer}"].detach()
        delta = reference[f"z{layer}"].grad  # ∂L/∂z by autograd
        for i in range(2):
            node = figure.node(f"u{layer}-{i + 1}")
            shown = {label.text.split(" = ")[0]: _number(label.text.split(" = ")[1]) for label in node.values}
            (error,) = node.gradients
            assert error.text.startswith("δ = ")
            assert shown["z"] == pytest.approx(float(z[i, 0]), rel=1e-3)
            assert shown["a"] == pytest.approx(float(a[i, 0]), rel=1e-3)
            assert _number(error.text.split(" = ")[1]) == pytest.approx(float(delta[i, 0]), rel=1e-3)
            assert named[f"delta{layer}"][i][0] == pytest.approx(float(delta[i, 0]), rel=1e-12)
    # the caption's rule, ∂L/∂W[i,j] = δ[i]·a[j], read off the figure, against autograd (W2[1,1] ≈ −7.8433e-06)
    head, tail = figure.node("u2-1"), figure.node("u1-1")
    product = _number(head.gradients[0].text.split(" = ")[1]) * _number(tail.values[1].text.split(" = ")[1])
    assert product == pytest.approx(float(reference["W2"].grad[0, 0]), rel=2e-3)
    assert float(reference["W1"].grad[1, 0]) == pytest.approx(7.8006e-05, rel=1e-4)  # the brief's 7.8006e-05
    # each edge shows its weight's value
    for edge in figure.edges:
        if edge.weight is not None:
            name, i, j = re.match(r"(W\d+)\[(\d+),(\d+)\]", edge.weight).groups()
            assert edge.numeric and _number(edge.label.text) == TUTORIAL_VALUES[name][int(i) - 1][int(j) - 1]


def test_svg_is_xml_with_one_circle_per_unit_and_one_line_per_edge():
    for values in (None, TUTORIAL_VALUES):
        figure = network_figure(TUTORIAL, values)
        root = ET.fromstring(figure_svg(figure))
        assert root.tag == f"{SVG}svg"
        assert len(root.findall(f"{SVG}circle")) == len(figure.nodes) == sum(TUTORIAL.sizes) + 1  # units and L
        assert len(root.findall(f"{SVG}line")) == len(figure.edges) == 6 + 2  # weights, outputs → L
        texts = "".join(root.itertext())
        assert "W⁽²⁾[1,2]" in texts if values is None else "δ = 1.224×10⁻⁴" in texts


def test_bias_is_the_weight_of_a_constant_input():
    network = Network([2, 2, 1], "tanh", "half_sse", bias=True)
    figure = network_figure(network)
    biases = [edge for edge in figure.edges if edge.weight and edge.weight.startswith("b")]
    assert len(biases) == 3 and {edge.source for edge in biases} == {"one1", "one2"}
    assert len([e for e in figure.edges if e.weight]) == network.parameter_count
    assert "dashed 1" in figure.caption


def test_wide_network_is_the_layer_graph_with_shapes():
    figure = network_figure(WIDE, lang="zh")
    assert figure.kind == "layers" and "计算图" in figure.caption
    shapes = {node.key: node.shape for node in figure.nodes}
    assert shapes == {
        "x": "784×B",
        "W1": "128×784",
        "b1": "128×1",
        "z1": "128×B",
        "a1": "128×B",
        "W2": "10×128",
        "b2": "10×1",
        "z2": "10×B",
        "a2": "10×B",
        "y": "10×B",
        "L": "1×1",
    }
    assert ("x", "z1") in {(e.source, e.target) for e in figure.edges} and ("a2", "L") in {
        (e.source, e.target) for e in figure.edges
    }
    for key, rows_cols in WIDE.parameter_shapes.items():
        assert shapes[key] == "×".join(map(str, rows_cols))
    root = ET.fromstring(figure_svg(figure))
    assert len(root.findall(f"{SVG}rect")) == len(figure.nodes) and not root.findall(f"{SVG}circle")


def test_a_layer_of_nine_units_or_too_many_weights_is_drawn_by_layers():
    assert network_figure(Network([9, 1])).kind == "layers"  # 9 weights, but 9 units in a layer
    assert network_figure(Network([8, 1])).kind == "units"
    assert network_figure(Network([1, 6, 1])).kind == "units"  # 12 weights
    assert network_figure(Network([3, 4, 2])).kind == "layers"  # 20 weights: too many labels


def test_layer_graph_has_no_numbers():
    """Values on a wide network leave its layer graph as it is: a whole matrix has no one number to show."""
    network = Network([10, 3], "sigmoid", "half_sse")
    assert network_figure(network, sample_values(network, 0)) == network_figure(network)


def test_fragment_has_no_figure_and_a_network_is_required():
    """A fragment goes into someone else's document, which may not load TikZ: the figure is the document's."""
    assert "tikzpicture" not in derive(TUTORIAL).latex() and "tikzpicture" in derive(TUTORIAL).latex(document=True)
    with pytest.raises(NetworkTypeError):
        network_figure("1-2-2")


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = "poppler-utils is not installed (CI installs it: see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_document_with_the_figure_compiles_with_vector_fonts_only(pdflatex, tmp_path, lang):
    target = tmp_path / "t.pdf"
    document = derive(TUTORIAL).latex(document=True, values=TUTORIAL_VALUES, lang=lang)
    assert "\\begin{tikzpicture}" in document.split("\\section*")[1].split("\\subsection*")[0]  # on page 1
    build_pdf(document, target)
    fonts = subprocess.run([_poppler("pdffonts"), str(target)], capture_output=True, text=True, check=True).stdout
    assert "Type 3" not in fonts, fonts
    assert "LMRoman" in fonts
    page = subprocess.run(
        [_poppler("pdftotext"), "-f", "1", "-l", "1", str(target), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "0.4999" in page  # the figure's loss, as text
    if lang == "en":  # on the last page, how it was checked
        every = subprocess.run([_poppler("pdftotext"), str(target), "-"], capture_output=True, text=True, check=True)
        assert "differentiated" in every.stdout  # not di\x1berentiated: the ff ligature of a real font


def test_figure_alone_compiles(pdflatex, tmp_path):
    """figure_tikz needs only tikz: the wide layer graph and a biased unit drawing in a bare document."""
    body = figure_tikz(network_figure(WIDE)) + "\n\n" + figure_tikz(network_figure(Network([2, 2, 1], bias=True)))
    build_pdf(
        "\\documentclass{article}\n\\usepackage{tikz}\n\\begin{document}\n" + body + "\n\\end{document}\n",
        tmp_path / "f.pdf",
    )
    assert (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")  # build_pdf raises on a failure; a PDF it is


def test_preamble_uses_latin_modern():
    assert "\\usepackage[T1]{fontenc}" in _PREAMBLE and "\\usepackage{lmodern}" in _PREAMBLE


def test_markdown_starts_with_the_inline_svg():
    markdown = derive(TUTORIAL).markdown(values=TUTORIAL_VALUES)
    svg = re.search(r"<svg.*?</svg>", markdown, flags=re.S).group(0)
    assert markdown.index(svg) < markdown.index("##")  # at the top, before the first section
    assert len(ET.fromstring(svg).findall(f"{SVG}circle")) == 6


@pytest.mark.parametrize("depth", [2, 5, 9])
def test_layer_graph_boxes_never_overlap(depth):
    """However deep, the SVG's boxes stand apart (the PDF scales a picture wider than the page down instead)."""
    root = ET.fromstring(figure_svg(network_figure(Network([20] * (depth + 1), "tanh", bias=True))))
    boxes = [tuple(float(rect.get(k)) for k in ("x", "y", "width", "height")) for rect in root.iter(f"{SVG}rect")]
    assert len(boxes) == 4 * depth + 3  # x, y, L, and z, a, W, b per layer
    for k, (x, y, w, h) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[k + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, ((x, y, w, h), (x2, y2, w2, h2))


@pytest.mark.parametrize(
    "network, values",
    [
        (TUTORIAL, TUTORIAL_VALUES),
        pytest.param(
            Network([2, 3, 2], "sigmoid"),
            sample_values(Network([2, 3, 2], "sigmoid"), seed=2),
            # known: a middle unit's numbers stand over it, where the arrows between the columns cross
            marks=pytest.mark.xfail(strict=True, reason="a middle unit's numbers lie across crossing arrows"),
        ),
        (Network([2, 2, 2], "tanh", bias=True), sample_values(Network([2, 2, 2], "tanh", bias=True), seed=2)),
    ],
)
def test_no_weight_is_hidden_under_a_unit_s_numbers(network, values):
    """Every weight's label stands clear of the numbers written beside the units (the tutorial's weight 4 once lay
    under the white box of δ = 7.801×10⁻⁵). Boxes from the SVG: a label's anchor, its text's width at about 0.6
    of the font size a character, the font size high."""
    root = ET.fromstring(figure_svg(network_figure(network, values)))
    weights, numbers = [], []
    for text in root.iter(f"{SVG}text"):
        size, x, y = float(text.get("font-size")), float(text.get("x")), float(text.get("y"))
        half = 0.3 * size * len(text.text)
        turn = re.match(r"rotate\((\S+) ", text.get("transform") or "rotate(0 ")
        angle = math.radians(float(turn.group(1)))  # a sloped label: the box of its text turned along the arrow
        wide, high = (
            abs(half * math.cos(angle)) + abs(size / 2 * math.sin(angle)),
            abs(half * math.sin(angle)) + size / 2,
        )
        box = (x - wide, y - size / 2 - high, x + wide, y - size / 2 + high)
        (weights if text.get("transform") else numbers).append((text.text, box))
    assert len(weights) == sum(a * b for a, b in zip(network.sizes, network.sizes[1:])) + network.bias * (
        network.parameter_count - sum(a * b for a, b in zip(network.sizes, network.sizes[1:]))
    )
    for weight, (left, top, right, bottom) in weights:
        for number, (left2, top2, right2, bottom2) in numbers:
            apart = right <= left2 or right2 <= left or bottom <= top2 or bottom2 <= top
            assert apart, (weight, number)
