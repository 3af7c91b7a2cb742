"""What the derivation says, in the order a student needs it (the content list of the LaTeX issue)."""

from __future__ import annotations

import pytest
import sympy

from numeric.cli import main
from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive, sample_values
from symbolic._blocks import Chain, Heading, Notation
from symbolic._render import explain
from tests.test_steps import read_number, read_vector


def _headings(blocks):
    return [block.text for block in blocks if isinstance(block, Heading)]


def test_sections_come_in_teaching_order():
    blocks = explain(derive(TUTORIAL), TUTORIAL_VALUES)
    assert _headings(blocks) == [
        "Notation",
        "Forward pass",
        "Backward pass",
        "Output layer (layer 2)",
        "Hidden layer (layer 1)",
        "Gradients in matrix form",
        "Numbers",
        "How this page was checked",
    ]
    notation = next(block for block in blocks if isinstance(block, Notation))
    symbols = [math.latex for math, _, _ in notation.rows]
    for symbol in ("x", "y", "W^{(l)}", "z^{(l)}", "a^{(l)}", r"\delta^{(l)}", r"\sigma", r"u \odot v"):
        assert symbol in symbols


def test_output_weight_is_derived_factor_by_factor_then_delta_is_named():
    blocks = explain(derive(TUTORIAL))
    texts = [" = ".join(term.text for term in block.terms) for block in blocks if isinstance(block, Chain)]
    factor_by_factor = "∂L/∂W⁽²⁾[1,1] = ⟦∂L/∂a⁽²⁾[1] · ∂a⁽²⁾[1]/∂z⁽²⁾[1]⟧ · ∂z⁽²⁾[1]/∂W⁽²⁾[1,1]"  # ⟦⟧: the red box
    derivative = "σ'(z) = "
    named = "δ⁽²⁾[1] = ⟦∂L/∂a⁽²⁾[1] · ∂a⁽²⁾[1]/∂z⁽²⁾[1]⟧"
    reused = "δ⁽¹⁾[1] = (Σ[i=1..2] ∂L/∂z⁽²⁾[i] · ∂z⁽²⁾[i]/∂a⁽¹⁾[1]) · ∂a⁽¹⁾[1]/∂z⁽¹⁾[1]"
    positions = [
        next(k for k, t in enumerate(texts) if t.startswith(s)) for s in (derivative, factor_by_factor, named, reused)
    ]
    assert positions == sorted(positions)


def test_numbers_end_in_the_gradients():
    derivation = derive(TUTORIAL)
    blocks = explain(derivation, TUTORIAL_VALUES)
    chains = [block for block in blocks[blocks.index(Heading("Numbers")) :] if isinstance(block, Chain)]
    assert chains[-1].terms[0].text == "∂L/∂W⁽²⁾" and chains[-2].terms[0].text == "∂L/∂W⁽¹⁾"
    exact = derivation.evaluate(TUTORIAL_VALUES)
    shown = chains[-2].terms[1].text.removeprefix("[").removesuffix("]ᵀ").split(", ")
    assert [read_number(v) for v in shown] == pytest.approx([row[0] for row in exact["W1"]], rel=1e-4)
    assert "7.8006×10⁻⁵" in chains[-2].terms[1].text  # float64, as the issue states it


def test_deep_networks_get_one_general_hidden_step():
    network = Network([2, 3, 3, 3, 3, 3, 1], "tanh", "half_sse")
    headings = _headings(explain(derive(network)))
    assert "Hidden layers l = 5, …, 1" in headings
    assert not any(h.startswith("Layer ") for h in headings)


def test_softmax_output_shows_the_jacobian_step_and_its_result():
    derivation = derive(Network([2, 3], "softmax", "cross_entropy"))
    text = derivation.text()
    assert "∂a⁽¹⁾[k]/∂z⁽¹⁾[i] = a⁽¹⁾[k]·(𝟙[k = i] − a⁽¹⁾[i])" in text
    assert "δ⁽¹⁾ = a⁽¹⁾ − y" in text
    chain = next(
        block for block in explain(derivation) if isinstance(block, Chain) and block.terms[0].text == "δ⁽¹⁾[1]"
    )
    result = chain.terms[-1].value
    a, y = derivation.layers[0].a, derivation.symbols["y"]
    assert sympy.expand(result - (a[0] * sum(y) - y[0])) == 0


def test_any_network_given_a_seed_gets_numbers(capsys):
    assert main(["derive", "--sizes", "2,3,1", "--activation", "tanh,sigmoid", "--loss", "bce", "--seed", "4"]) == 0
    text = capsys.readouterr().out
    network = Network([2, 3, 1], ["tanh", "sigmoid"], "bce")
    exact = derive(network).evaluate(sample_values(network, seed=4))
    assert read_number(text.rsplit("\n  L = ", 1)[1].split("\n")[0]) == pytest.approx(exact["loss"], rel=1e-4)
    shown = [read_number(v) for v in read_vector(text, "∂L/∂W⁽²⁾")]
    assert shown == pytest.approx(exact["W2"][0], rel=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_values_suit_the_loss(seed):
    ce = sample_values(Network([3, 4], "softmax", "cross_entropy"), seed, batch=5)
    assert all(sum(row[b] for row in ce["y"]) == 1.0 for b in range(5))
    bce = sample_values(Network([3, 4], "sigmoid", "bce"), seed, batch=5)
    assert all(0 < v < 1 for row in bce["y"] for v in row)
