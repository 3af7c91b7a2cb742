"""Every displayed equality holds: each term of each equation chain equals the one before it.

The chains are the very blocks the LaTeX, Markdown and text outputs typeset; each term that stands for
an expression carries it (``Math.value``), factors of the chain rule as ``sympy.diff`` of the
definitions. Two terms are equal when their difference, with every intermediate substituted back
into x, y and the parameters, simplifies to zero.
"""

from __future__ import annotations

import itertools

import pytest
import sympy

from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive
from symbolic._render import Chain, explain

NETWORKS = {
    "tutorial": TUTORIAL,
    "tanh-softmax-ce-bias": Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True),
    "relu-softplus-sigmoid-bce": Network([2, 3, 3, 1], ["relu", "softplus", "sigmoid"], "bce"),
    "identity-mse-bias": Network([2, 2, 2], "identity", "mse", bias=True),
    "sigmoid-sse": Network([2, 2, 1], "sigmoid", "sse"),
    "deep-general-step": Network([2, 2, 2, 2, 2, 1], ["tanh", "relu", "softplus", "tanh", "sigmoid"], "bce"),
    "wide-softmax": Network([2, 5], "softmax", "cross_entropy"),
    "wide-hidden": Network([6, 5, 2], "sigmoid", "half_sse"),
    "logits-ce-mean": Network([2, 3, 3], ["tanh", "identity"], "softmax_cross_entropy", bias=True, reduction="mean"),
    "logits-bce": Network([2, 2, 2], ["sigmoid", "identity"], "bce_with_logits"),
}


def _substitutions(derivation):
    """Ways to write both sides in the same terms, cheapest first: the backward steps in a, y, W (then a by
    f(z)), the forward steps in one layer's terms, and the closed form for small networks. An identity in
    free symbols holds whatever they stand for, so each is as strict as the closed form."""
    deltas, outputs, pre_activations = {}, {}, {}
    for layer in reversed(derivation.layers):  # each δ in terms of a and y alone, from the output down
        deltas.update({d: definition.xreplace(deltas) for d, definition in zip(layer.delta, layer.delta_definition)})
    for layer in derivation.layers:
        outputs.update(zip(layer.a, layer.a_definition))
        pre_activations.update(zip(layer.z, layer.z_definition))
    transforms = [
        lambda e: e,
        lambda e: e.xreplace(deltas).xreplace(outputs),  # the backward steps
        lambda e: e.xreplace(pre_activations),  # the forward steps
    ]
    if derivation.network.parameter_count <= 30:
        transforms.append(derivation.substitute)
    return transforms


def _equal(derivation, left, right) -> bool:
    differences = [t(left) - t(right) for t in _substitutions(derivation)]
    if any(sympy.expand(d) == 0 for d in differences):
        return True
    return sympy.simplify(differences[1]) == 0  # the last resort, on the one-level form


def _chains(derivation, values=None):
    return [block for block in explain(derivation, values) if isinstance(block, Chain)]


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_each_step_equals_the_step_before(key):
    derivation = derive(NETWORKS[key])
    checked = 0
    for chain in _chains(derivation):
        values = [term.value for term in chain.terms if term.value is not None]
        for left, right in itertools.pairwise(values):
            assert _equal(derivation, left, right), (chain.terms[0].text, left, right)
            checked += 1
    assert checked >= 2 * derivation.network.depth  # the chains are there, and were compared


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_simplified_delta_equals_the_chain_rule_as_written(key):
    derivation = derive(NETWORKS[key])
    for layer in derivation.layers:
        for chain, simplified in zip(layer.delta_chain, layer.delta_definition):
            assert sympy.simplify(chain - simplified) == 0


def test_a_wrong_step_would_be_caught():
    """The check itself can fail: a chain with a wrong term is reported unequal."""
    derivation = derive(TUTORIAL)
    layer = derivation.layers[-1]
    wrong = layer.delta_definition[0] * 2
    assert not _equal(derivation, layer.delta[0], wrong)
    assert _equal(derivation, layer.delta[0], layer.delta_definition[0])


def test_numbers_are_shown_for_the_tutorial():
    derivation = derive(TUTORIAL)
    text = derivation.text(values=TUTORIAL_VALUES)
    exact = derivation.evaluate(TUTORIAL_VALUES)
    assert f"{exact['W1'][0][0]:.5g}" in text and f"{exact['W1'][1][0]:.5g}" in text
    assert "7.8006e-05" in text  # the float64 value the tutorial issue names
