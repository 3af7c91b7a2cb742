"""Size, not speed: the derivation stays linear in the network (timings live in benchmarks/)."""

from __future__ import annotations

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from symbolic import Network, derive
from symbolic._elementwise import _symbol_product


@given(st.text("abcxyzW[]0123456789,", min_size=1, max_size=6), st.text("abcxyzW[]0123456789,", min_size=1, max_size=6))
def test_symbol_product_is_sympys_own_product(first, second):
    for assumptions in ({}, {"real": True}):
        u, v = sympy.Symbol(first, **assumptions), sympy.Symbol(second, **assumptions)
        ours, theirs = _symbol_product(u, v), u * v
        assert ours == theirs and ours.args == theirs.args and hash(ours) == hash(theirs)
        assert sympy.srepr(ours) == sympy.srepr(theirs)


def test_symbol_product_falls_back_for_anything_else():
    x = sympy.Symbol("x", real=True)
    y = sympy.Symbol("y")
    assert _symbol_product(x, x) == x**2
    assert _symbol_product(x, y).args == (x * y).args
    assert _symbol_product(x, sympy.Integer(2)) == 2 * x


def test_program_length_is_linear_in_depth():
    shallow = derive(Network([4] * 17, "tanh"))
    deep = derive(Network([4] * 65, "tanh"))
    assert len(deep.program) == 4 * len(shallow.program)


@pytest.mark.parametrize(
    "sizes, activation",
    [([1, 2, 2], "sigmoid"), ([4] * 5, "sigmoid"), ([16] * 4, "tanh"), ([8] * 9, "relu"), ([3, 32, 32, 2], "softplus")],
)
def test_gradient_program_is_at_most_two_and_a_half_forward_passes(sizes, activation):
    counts = derive(Network(sizes, activation)).operation_counts()
    assert 0 < counts["gradient"] <= 2.5 * counts["forward"], counts


def test_naive_closed_form_would_be_far_larger():
    """What the named intermediates avoid: the substituted closed form grows with depth."""
    derivation = derive(Network([3] * 7, "tanh"))
    counts = derivation.operation_counts()
    closed = derivation.closed_form_size("W1")
    assert closed > 20 * (counts["forward"] + counts["gradient"])
