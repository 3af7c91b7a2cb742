"""The element-wise δ of a softmax layer is simplified term by term: quick at any width, and still the chain rule."""

from __future__ import annotations

import random
import time

import pytest
import sympy

from symbolic import Network, derive
from symbolic._elementwise import BATCH_SIZE


@pytest.mark.parametrize("loss", ["bce", "mean_bce", "cross_entropy", "half_sse"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_softmax_delta_quick_and_equal_to_the_chain(loss, reduction):
    """bce with reduction="mean" took 70 s at width 10 (cancelling the whole sum over its common denominator)."""
    width = 16
    layer = derive(Network([2, width], "softmax", loss, reduction=reduction)).layers[-1]
    start = time.perf_counter()
    definitions = list(layer.delta_definition)
    assert time.perf_counter() - start < 3.0
    generator = random.Random(7)
    weights = [sympy.Rational(generator.randint(1, 9)) for _ in range(width)]
    point = {a: w / sum(weights) for a, w in zip(layer.a, weights)}  # a point on the simplex, as softmax gives
    point.update(
        {y: sympy.Rational(generator.randint(0, 10), 10) for y in Network([2, width], "softmax", loss).sizes[:0]}
    )
    symbols = derive(Network([2, width], "softmax", loss, reduction=reduction)).symbols["y"]
    point.update({y: sympy.Rational(generator.randint(0, 10), 10) for y in symbols})
    point[BATCH_SIZE] = sympy.Integer(3)
    for unit in (0, width - 1):
        # the chain rule as written, Σ_k ∂L/∂a_k ∂a_k/∂z_i, against the simplified δ: exactly equal (rationals)
        assert definitions[unit].xreplace(point) == layer.delta_chain[unit].xreplace(point)
