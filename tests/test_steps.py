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
}


def _equal(derivation, left, right) -> bool:
    difference = derivation.substitute(left) - derivation.substitute(right)
    return sympy.expand(difference) == 0 or sympy.simplify(difference) == 0


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
