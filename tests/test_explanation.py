"""What the derivation says, in the order a student needs it (the content list of the LaTeX issue)."""

from __future__ import annotations

import pytest
import sympy

from numeric.cli import main
from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive, sample_values
from symbolic._render import Chain, Heading, Notation, explain


def _headings(blocks):
    return [block.text for block in blocks if isinstance(block, Heading)]


def test_sections_come_in_teaching_order():
    blocks = explain(derive(TUTORIAL), TUTORIAL_VALUES)
    assert _headings(blocks) == [
        "Notation",
        "Forward pass",
        "Output layer (layer 2)",
        "Layer 1",
        "Gradients in matrix form",
        "Numbers",
    ]
    notation = next(block for block in blocks if isinstance(block, Notation))
    symbols = [math.latex for math, _ in notation.rows]
    for symbol in ("x", "y", "W^{(l)}", "z^{(l)}", "a^{(l)}", r"\delta^{(l)}", r"\sigma", r"\odot"):
        assert symbol in symbols


def test_output_weight_is_derived_factor_by_factor_then_delta_is_named():
    blocks = explain(derive(TUTORIAL))
    texts = [" = ".join(term.text for term in block.terms) for block in blocks if isinstance(block, Chain)]
    factor_by_factor = "∂L/∂W2[1,1] = ∂L/∂a2[1] · ∂a2[1]/∂z2[1] · ∂z2[1]/∂W2[1,1]"
    derivative = "sigmoid'(z) = (1 - sigmoid(z))*sigmoid(z) = a*(1 - a)"
    named = "delta2[1] = ∂L/∂a2[1] · ∂a2[1]/∂z2[1]"
    reused = "delta1[1] = (Σ_i ∂L/∂z2[i] · ∂z2[i]/∂a1[1]) · ∂a1[1]/∂z1[1]"
    positions = [
        next(k for k, t in enumerate(texts) if t.startswith(s)) for s in (derivative, factor_by_factor, named, reused)
    ]
    assert positions == sorted(positions)


def test_numbers_end_in_the_gradients():
    derivation = derive(TUTORIAL)
    blocks = explain(derivation, TUTORIAL_VALUES)
    chains = [block for block in blocks[blocks.index(Heading("Numbers")) :] if isinstance(block, Chain)]
    assert chains[-1].terms[0].text == "∂L/∂W2" and chains[-2].terms[0].text == "∂L/∂W1"
    exact = derivation.evaluate(TUTORIAL_VALUES)
    assert chains[-2].terms[1].text == f"[{exact['W1'][0][0]:.5g}, {exact['W1'][1][0]:.5g}]^T"
    assert "7.8006e-05" in chains[-2].terms[1].text  # float64, as the issue states it


def test_deep_networks_get_one_general_hidden_step():
    network = Network([2, 3, 3, 3, 3, 3, 1], "tanh", "half_sse")
    headings = _headings(explain(derive(network)))
    assert "Hidden layers l = 5, ..., 1" in headings
    assert not any(h.startswith("Layer ") for h in headings)


def test_softmax_output_shows_the_jacobian_step_and_its_result():
    derivation = derive(Network([2, 3], "softmax", "cross_entropy"))
    text = derivation.text()
    assert "∂a_k/∂z_i = a_k (δ_ki − a_i)" in text
    assert "delta1 = a1 - y" in text
    chain = next(
        block for block in explain(derivation) if isinstance(block, Chain) and block.terms[0].text == "delta1[1]"
    )
    result = chain.terms[-1].value
    a, y = derivation.layers[0].a, derivation.symbols["y"]
    assert sympy.expand(result - (a[0] * sum(y) - y[0])) == 0


def test_any_network_given_a_seed_gets_numbers(capsys):
    assert main(["derive", "--sizes", "2,3,1", "--activation", "tanh,sigmoid", "--loss", "bce", "--seed", "4"]) == 0
    text = capsys.readouterr().out
    network = Network([2, 3, 1], ["tanh", "sigmoid"], "bce")
    exact = derive(network).evaluate(sample_values(network, seed=4))
    assert f"L = {exact['loss']:.5g}" in text
    assert f"∂L/∂W2 = [{', '.join(f'{v:.5g}' for v in exact['W2'][0])}]" in text


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_values_suit_the_loss(seed):
    ce = sample_values(Network([3, 4], "softmax", "cross_entropy"), seed, batch=5)
    assert all(sum(row[b] for row in ce["y"]) == 1.0 for b in range(5))
    bce = sample_values(Network([3, 4], "sigmoid", "bce"), seed, batch=5)
    assert all(0 < v < 1 for row in bce["y"] for v in row)
