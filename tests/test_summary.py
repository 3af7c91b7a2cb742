"""The summary box: backpropagation's equations in matrix form, each with the shapes of its factors.

What each equation says is checked with the others (tests/test_steps.py: each side equals the next, on the
derivation's symbols; tests/test_printed.py: each printed side reads back); here, that the box holds the
equations a student needs, in order (output δ, each hidden δ, each ∂L/∂W, each ∂L/∂b, ∂L/∂x), that they are
the derivation's own (the same trees as its sections above), that the shapes are those of the network's widths
(written here from the sizes), and that the box is framed in every format.
"""

from __future__ import annotations

import re

import pytest

from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive
from symbolic._blocks import Chain, Frame, FrameEnd, Heading
from symbolic._html import render_html
from symbolic._render import explain

NETWORKS = {
    "tutorial": TUTORIAL,
    "bias-mean-x": Network([3, 4, 4, 2], ["tanh", "gelu", "sigmoid"], "half_sse", bias=True, reduction="mean"),
    "softmax": Network([4, 5, 3], ["relu", "softmax"], "cross_entropy"),
    "identity-hidden": Network([2, 3, 2], ["identity", "sigmoid"], "bce", bias=True),
}
WRT = {"bias-mean-x": ("x",)}
SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _summary(blocks) -> list:
    start = next(k for k, b in enumerate(blocks) if isinstance(b, Frame))
    end = next(k for k, b in enumerate(blocks) if isinstance(b, FrameEnd))
    return blocks[start : end + 1]


def _expected(network: Network, wrt: tuple[str, ...]) -> list[tuple[str, str]]:
    """(left side, shapes) of every equation the summary must hold, written from the network's sizes."""
    sizes, depth = network.sizes, network.depth

    def layer(letter: str, index: int) -> str:
        return f"{letter}⁽{str(index).translate(SUPERSCRIPT)}⁾"

    rows = []
    if network.activations[-1] != "softmax":  # softmax's δ sums over the units: not a matrix product
        rows.append((layer("δ", depth), None))
    for index in range(depth - 1, 0, -1):
        n, above = sizes[index], sizes[index + 1]
        identity = network.activations[index - 1] == "identity"
        shapes = f"({n}×{above})({above}×B)" + ("" if identity else f" ⊙ ({n}×B)") + f" → {n}×B"
        rows.append((layer("δ", index), shapes))
    for index in range(1, depth + 1):
        n, m = sizes[index], sizes[index - 1]
        rows.append((f"∂L/∂{layer('W', index)}", f"({n}×B)(B×{m}) → {n}×{m}"))
    if network.bias:
        for index in range(1, depth + 1):
            rows.append((f"∂L/∂{layer('b', index)}", f"({sizes[index]}×B)(B×1) → {sizes[index]}×1"))
    if "x" in wrt:
        rows.append(("∂L/∂x", f"({sizes[0]}×{sizes[1]})({sizes[1]}×B) → {sizes[0]}×B"))
    return rows


@pytest.mark.parametrize("name", NETWORKS)
def test_the_summary_holds_each_equation_with_its_shapes(name):
    network = NETWORKS[name]
    blocks = explain(derive(network, wrt=WRT.get(name, ())))
    chains = [b for b in _summary(blocks) if isinstance(b, Chain)]
    expected = _expected(network, WRT.get(name, ()))
    assert [c.terms[0].text for c in chains] == [left for left, _ in expected]
    for chain, (left, shapes) in zip(chains, expected):
        if shapes is not None:
            assert chain.shapes.text == shapes, left
        # every shape the output δ's factors have is the output layer's, n_L × B
        assert chain.shapes.text.endswith("×B") or chain.shapes.text.endswith(f"×{network.sizes[0]}") or "∂L/∂" in left


@pytest.mark.parametrize("name", NETWORKS)
def test_the_summary_s_equations_are_those_derived_above(name):
    """The same trees as the hidden layers' recursion and the matrix form's products (not retyped)."""
    network = NETWORKS[name]
    blocks = explain(derive(network, wrt=WRT.get(name, ())))
    frame = blocks.index(next(b for b in blocks if isinstance(b, Frame)))
    above = {c.terms[0].text: c.terms[-1].text for c in blocks[:frame] if isinstance(c, Chain) and len(c.terms) >= 2}
    for chain in _summary(blocks):
        if isinstance(chain, Chain) and chain.terms[0].text in above and "[" not in chain.terms[0].text:
            # the program drops a factor f' = 1 (identity): (Wᵀδ) ⊙ identity'(z) is Wᵀδ
            derived = re.sub(r"^\((.*)\) ⊙ identity'\(z⁽.⁾\)$", r"\1", above[chain.terms[0].text])
            assert chain.terms[-1].text == derived, chain.terms[0].text
    matrix_heading = blocks.index(Heading("Gradients in matrix form", 3))
    assert matrix_heading < frame  # after the matrix form, before the numbers
    assert sum(1 for c in _summary(blocks) if isinstance(c, Chain) and c.terms[0].text in above) >= network.depth


@pytest.mark.parametrize("name", NETWORKS)
def test_the_summary_is_framed_in_every_format(name):
    derivation = derive(NETWORKS[name])
    values = TUTORIAL_VALUES if NETWORKS[name] == TUTORIAL else None
    latex = derivation.latex(values=values)
    inside = latex[latex.index(r"\fbox{\begin{minipage}") : latex.index(r"\end{minipage}}")]
    assert r"\partial W^{(1)}}" in inside and "&&" in inside  # the equations and their shapes' column
    html = render_html(derivation, values)
    section = html[html.index('<section class="cr-frame">') : html.index("</section>")]
    assert "cr-display" in section and r"\times B" in section
    markdown = str(derivation.markdown(values=values))
    quoted = re.search(r"^> \*\*Summary[^\n]*\n(?:>[^\n]*\n)+", markdown, re.MULTILINE)
    assert quoted and r"\partial W^{(1)}}" in quoted.group(0)
    text = derivation.text(values=values)
    box = text[text.index("┌") : text.index("┘") + 1].splitlines()
    assert box[-1].startswith("└") and all(line.startswith("│") and line.endswith("│") for line in box[1:-1])
    assert any("∂L/∂W⁽¹⁾ = δ⁽¹⁾ xᵀ" in line for line in box)
