"""Every displayed equality holds: each side of each equation chain equals the one before it.

The chains are the very blocks the LaTeX, Markdown and text outputs typeset; each side that stands for
something carries it (``Math.value``): factors of the chain rule as ``sympy.diff`` of the definitions,
index forms (Σ, 𝟙[k = i]) written out, and matrix equations (Wᵀδ ⊙ f'(z), δ aᵀ, δ𝟏) evaluated on the
layer's own symbols, over a batch of two samples where the batch matters. Two sides are equal when
their difference (entry by entry for matrices), with every intermediate substituted back into x, y
and the parameters, simplifies to zero. Networks come from a fixed list and from hypothesis.
"""

from __future__ import annotations

import itertools
import random

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from symbolic import ACTIVATIONS, LOSSES, TUTORIAL, TUTORIAL_VALUES, Network, derive, sample_values
from symbolic._blocks import Chain
from symbolic._render import explain

NETWORKS = {
    "tutorial": TUTORIAL,
    "tanh-softmax-ce-bias": Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True),
    "relu-softplus-sigmoid-bce": Network([2, 3, 3, 1], ["relu", "softplus", "sigmoid"], "bce"),
    "identity-mse-bias": Network([2, 2, 2], "identity", "mse", bias=True),
    "sigmoid-sse": Network([2, 2, 1], "sigmoid", "sse"),
    "deep-general-step": Network([2, 2, 2, 2, 2, 1], ["tanh", "relu", "softplus", "tanh", "sigmoid"], "bce"),
    "wide-softmax": Network([2, 5], "softmax", "cross_entropy"),
    "wide-hidden": Network([6, 5, 2], "sigmoid", "half_sse"),
    "wide-output": Network([2, 6], "sigmoid", "mse", bias=True, reduction="mean"),
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
    if derivation.network.parameter_count <= 30 or derivation.network.depth == 1:  # closed forms are shown
        transforms.append(derivation.substitute)
    return transforms


def _equal(derivation, left, right) -> bool:
    if isinstance(left, sympy.MatrixBase) or isinstance(right, sympy.MatrixBase):
        return (
            isinstance(left, sympy.MatrixBase)
            and isinstance(right, sympy.MatrixBase)
            and left.shape == right.shape
            and all(_equal(derivation, a, b) for a, b in zip(left, right))
        )
    differences = []
    for transform in _substitutions(derivation):  # cheapest first; stop at the first that shows equality
        differences.append(transform(left) - transform(right))
        if sympy.expand(differences[-1]) == 0:
            return True
    # the last resort, on the one-level form: zero at random points to 30 digits (simplify can take minutes on
    # erf or Piecewise definitions); a wrong step differs at almost every point
    difference = differences[1].replace(lambda e: type(e).__name__ == "batch_size", lambda e: sympy.Integer(3))
    rng = random.Random(0)
    for _ in range(3):
        point = {symbol: sympy.Rational(rng.randint(-90, 90), 37) for symbol in difference.free_symbols}
        value = difference.xreplace(point).evalf(30)
        if not value.is_Number:  # a function without numerical values: simplify decides
            return sympy.simplify(differences[1]) == 0
        if abs(value) >= 1e-20:
            return False
    return True


def _chains(derivation, values=None):
    return [block for block in explain(derivation, values) if isinstance(block, Chain)]


def _check_every_step(derivation) -> int:
    checked = 0
    for chain in _chains(derivation):
        values = [term.value for term in chain.terms if term.value is not None]
        for left, right in itertools.pairwise(values):
            assert _equal(derivation, left, right), (" = ".join(t.text for t in chain.terms), left, right)
            checked += 1
    return checked


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_each_step_equals_the_step_before(key):
    derivation = derive(NETWORKS[key])
    assert _check_every_step(derivation) >= 2 * derivation.network.depth  # the chains are there, and compared


@st.composite
def networks(draw):
    """Small random architectures: every activation, loss and bias setting, widths up to 6 (Σ forms)."""
    depth = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 6)) for _ in range(depth + 1)]
    hidden = st.sampled_from([name for name, rule in ACTIVATIONS.items() if rule.elementwise])
    activations = [draw(hidden) for _ in range(depth - 1)]
    loss = draw(st.sampled_from(list(LOSSES)))
    allowed = LOSSES[loss].output_activations
    last = draw(st.sampled_from(sorted(allowed) if allowed is not None else list(ACTIVATIONS)))
    if last == "softmax" or loss == "softmax_cross_entropy":
        sizes[-1] = max(sizes[-1], 2)
    reduction = draw(st.sampled_from(["sum", "mean"]))
    return Network(sizes, [*activations, last], loss, bias=draw(st.booleans()), reduction=reduction)


@given(networks())
def test_each_step_equals_the_step_before_for_random_networks(network):
    derivation = derive(network)
    assert _check_every_step(derivation) >= 2 * network.depth


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


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")


def read_number(printed: str) -> float:
    """A number as the text form prints it (−1.0729×10⁻⁵ or 0.73106) back as a float."""
    printed = printed.replace("−", "-")
    if "×10" in printed:
        mantissa, exponent = printed.split("×10")
        return float(mantissa) * 10 ** int(exponent.translate(_SUPERSCRIPTS))
    return float(printed)


def read_vector(text: str, name: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.strip().startswith(f"{name} = ["))
    inside = line.split("[", 1)[1].rsplit("]", 1)[0]
    return [cell.strip() for row in inside.split(";") for cell in row.split(",")]


def test_numbers_are_shown_for_the_tutorial():
    derivation = derive(TUTORIAL)
    text = derivation.text(values=TUTORIAL_VALUES)
    exact = derivation.evaluate(TUTORIAL_VALUES)
    for name, printed in (("W1", "∂L/∂W⁽¹⁾"), ("W2", "∂L/∂W⁽²⁾")):
        shown = [read_number(cell) for cell in read_vector(text, printed)]
        expected = [v for row in exact[name] for v in row]
        assert shown == pytest.approx(expected, rel=1e-4)
    assert "7.8006×10⁻⁵" in text  # the float64 value the tutorial issue names


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_one_number_format_per_vector(key):
    network = NETWORKS[key]
    values = TUTORIAL_VALUES if network == TUTORIAL else sample_values(network, seed=1)
    text = derive(network).text(values=values)
    numbers = text[text.index("Numbers") :]
    for line in numbers.splitlines():
        if " = [" in line:
            cells = read_vector(line, line.split(" = [")[0].strip())
            # an exact 0 (a dead relu unit's gradient) is written 0 in either format (_render.number_format)
            assert len({"×10" in cell for cell in cells if cell != "0"}) <= 1, line
