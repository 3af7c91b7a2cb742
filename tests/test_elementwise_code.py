"""The element-wise compiled form where the output layer couples its units (a softmax, a coupled loss).

Its output δ is the matrix program's, one line per unit with each sum over the units computed once
(``symbolic._elementwise.UnitProgram``): here SymPy proves those lines equal to the δ the derivation displays
(and to the chain rule it starts from), exactly, at every choice of the largest unit; and the compiled form's
size and compile time are checked to grow linearly with the width (they grew with its square: every unit's δ
carried the whole sum).
"""

from __future__ import annotations

import random
import re
import time

import pytest
import sympy
import torch

from numeric import autograd_loss_and_gradients, compile_gradients, random_values
from numeric._compile import _elementwise_steps
from symbolic import LOSSES, Network, derive
from symbolic._elementwise import BATCH_SIZE, stacked, unit_of
from symbolic._functions import batch_sum, logsumexp, max_mask, softmax, softmax_without_max, unit_logsumexp

WIDTH = 4
COUPLED = [
    ("softmax", loss)
    for loss, rule in LOSSES.items()
    if not rule.output_activations or "softmax" in rule.output_activations
]
COUPLED += [("identity", "softmax_cross_entropy")]


def _point(activation: str, derivation, generator: random.Random):
    """Values for the output layer's a and the targets y (rationals), and the probabilities P = softmax(z)
    they stand for: for a softmax output a = P; for logits (identity) a_k = log P_k, so softmax(a) = P."""
    weights = [generator.randint(1, 9) for _ in range(WIDTH)]
    probabilities = [sympy.Rational(w, sum(weights)) for w in weights]
    layer = derivation.layers[-1]
    outputs = probabilities if activation == "softmax" else [sympy.log(p) for p in probabilities]
    point = dict(zip(layer.a, outputs))
    point.update({t: sympy.Rational(generator.randint(0, 10), 10) for t in derivation.symbols["y"]})
    point[BATCH_SIZE] = sympy.Integer(3)
    return point, probabilities


def _run(steps, derivation, point, probabilities, largest: int) -> dict:
    """Every output-layer line's value at ``point``; an [n, B] line is given what it stands for, after checking
    that it reads the units it should: softmax of the layer's logits is P, the largest unit's mask is 1 at
    ``largest``, the softmax without it is P_i / (1 − P_largest) (0 at the largest)."""
    layer = derivation.layers[-1]
    logits = list(layer.z) if layer.activation.name == "softmax" else list(layer.a)
    given = set(point) | set(layer.z)
    values: dict = dict(point)
    for target, expression in steps:
        if target in given:
            continue
        if isinstance(expression, stacked):
            assert list(expression.args) == logits, expression
            values[target] = "logits"
        elif isinstance(expression, unit_logsumexp):
            assert values[expression.args[0]] == "logits", expression
            values[target] = sympy.log(sympy.Add(*(sympy.exp(point[unit]) for unit in logits)))
        elif isinstance(expression, (softmax, max_mask, softmax_without_max)):
            assert values[expression.args[0]] == "logits", expression
            if isinstance(expression, softmax):
                values[target] = list(probabilities)
            elif isinstance(expression, max_mask):
                values[target] = [int(k == largest) for k in range(WIDTH)]
            else:
                assert values[expression.args[1]] == [int(k == largest) for k in range(WIDTH)], expression
                rest = 1 - probabilities[largest]
                values[target] = [0 if k == largest else p / rest for k, p in enumerate(probabilities)]
        else:
            entries = expression.replace(lambda e: isinstance(e, unit_of), lambda e: values[e.args[0]][int(e.args[1])])
            values[target] = entries.xreplace({s: v for s, v in values.items() if not isinstance(v, (list, str))})
    return values


def _at(expression: sympy.Expr, point: dict) -> sympy.Expr:
    """The derivation's expression at ``point``, its log-sum-exp written out (log Σ P = log 1 = 0 exactly)."""
    value = expression.xreplace(point)
    return value.replace(lambda e: isinstance(e, logsumexp), lambda e: sympy.log(sympy.Add(*map(sympy.exp, e.args))))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("activation, loss", COUPLED)
def test_unit_level_delta_is_the_displayed_delta(activation, loss, reduction):
    """The compiled δ lines equal the displayed δ and the chain rule, exactly, whichever unit is the largest
    (the finite bce form treats that unit apart; the identity it rests on holds for any unit)."""
    derivation = derive(Network([2, WIDTH], activation, loss, reduction=reduction))
    steps, loss_symbol = _elementwise_steps(derivation, with_loss=True)
    layer = derivation.layers[-1]
    point, probabilities = _point(activation, derivation, random.Random(f"{activation}{loss}{reduction}"))
    for largest in range(WIDTH):
        values = _run(steps, derivation, point, probabilities, largest)
        for i in range(WIDTH):
            ours = values[layer.delta[i]]
            assert ours.free_symbols == set(), ours
            assert ours == _at(layer.delta_definition[i], point), (largest, i)
            assert ours == _at(layer.delta_chain[i], point), (largest, i)
        loss_value = values[loss_symbol].replace(lambda e: isinstance(e, batch_sum), lambda e: e.args[0])
        difference = loss_value - _at(derivation.loss_definition, point)
        assert abs(sympy.N(difference, 50)) < 1e-40


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("activation, loss", COUPLED)
def test_unit_level_code_equals_autograd(activation, loss, reduction):
    """The printed lines (the loss's and the gradients') against torch autograd in float64, two hidden layers
    and a bias in front, so that the hidden δ read the output δ's lines."""
    network = Network([3, 4, 3, WIDTH], ["tanh", "sigmoid", activation], loss, bias=True, reduction=reduction)
    values = random_values(network, 5, 11)
    params = {name: values[name] for name in network.parameter_shapes}
    reference_loss, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params)
    loss_value, gradients = compile_gradients(derive(network), "elementwise").value_and_grad(
        values["x"], values["y"], params
    )
    torch.testing.assert_close(loss_value, reference_loss.reshape(()), rtol=1e-12, atol=1e-14)
    for name in params:
        torch.testing.assert_close(gradients[name], reference[name], rtol=1e-12, atol=1e-14)


# Every loss with each output it is allowed on (sigmoid and softmax; the logits losses on the identity)
PAIRINGS = [
    (activation, loss)
    for loss, rule in LOSSES.items()
    for activation in ("sigmoid", "softmax", "identity")
    if (rule.output_activations is None and activation != "identity")
    or (rule.output_activations is not None and activation in rule.output_activations)
]
NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _names_in_source(activation: str, loss: str, reduction: str, width: int) -> int:
    compiled = compile_gradients(derive(Network([2, width], activation, loss, reduction=reduction)), "elementwise")
    return sum(len(NAME.findall(source)) for source in (compiled.source, compiled.value_and_grad_source))


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("activation, loss", PAIRINGS)
def test_elementwise_code_grows_linearly_with_the_width(activation, loss, reduction):
    """Doubling the output width at most doubles the names in the generated code (plus a little): a δ that
    carries the whole sum over the units makes it about four times (2.7 to 3.3 at these widths)."""
    small, large = (_names_in_source(activation, loss, reduction, width) for width in (8, 16))
    assert large / small < 2.3, (small, large)


def _compile_seconds(activation: str, loss: str, reduction: str, width: int, runs: int) -> float:
    """The CPU time of this process (not the wall clock: other processes on the machine do not count), the
    least of ``runs``."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        compile_gradients(derive(Network([2, width], activation, loss, reduction=reduction)), "elementwise")
        times.append(time.process_time() - start)
    return min(times)


@pytest.mark.parametrize(
    "activation, loss, reduction",
    [
        ("softmax", "bce", "mean"),  # 5.4 s at width 80 when its δ carried the whole sum
        ("softmax", "half_sse", "sum"),
        ("identity", "softmax_cross_entropy", "mean"),
        ("sigmoid", "bce", "mean"),
    ],
)
def test_elementwise_compile_time_grows_linearly_with_the_width(activation, loss, reduction):
    """A ratio of two widths, not a time, so that it holds on a slow machine: 4 times the width takes at most
    9 times as long. Measured (process time): 3.4 to 5.4 now (printing sorts each sum's n terms: n log n);
    15 to 18 when every unit's δ carried the whole sum."""
    _compile_seconds(activation, loss, reduction, 4, 1)  # SymPy's caches warmed, as for any later compile
    small, large = (
        _compile_seconds(activation, loss, reduction, 20, 3),
        _compile_seconds(activation, loss, reduction, 80, 2),
    )
    assert large / small < 9, (small, large)
