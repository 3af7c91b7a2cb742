"""Simplification of the output layer's δ, once per form rather than once per unit."""

from __future__ import annotations

import functools

import sympy
from sympy import Symbol


@functools.lru_cache(maxsize=256)
def smallest(expression: sympy.Expr) -> sympy.Expr:
    """The smallest of the expression and, when cancelling shrinks it, the cancelled and factored forms.

    This is where BCE after a sigmoid collapses to ŷ − y: the chain-rule product
    (−y/ŷ + (1−y)/(1−ŷ)) · ŷ(1−ŷ) cancels, which also removes the division by ŷ(1−ŷ) that overflows
    when the sigmoid saturates. Memoised: every unit of a layer, and the matrix program, ask the same
    question (see ``smallest_per_unit``).
    """
    if not any(power.exp.is_negative for power in expression.atoms(sympy.Pow)):
        return expression  # no division: nothing to cancel, and cancel would only expand the product
    cancelled = sympy.cancel(expression)
    if sympy.count_ops(cancelled) >= sympy.count_ops(expression):
        return expression  # nothing cancelled (the common case); factor would only restore the product
    return min([cancelled, sympy.factor(cancelled)], key=sympy.count_ops)


def smallest_per_unit(expression: sympy.Expr, generic: dict[Symbol, Symbol]) -> sympy.Expr:
    """``smallest`` of one unit's expression, computed on its generic form.

    ``generic`` renames the unit's own symbols (a2[3], y[3], z2[3]) to the layer's (a2, y, z2). When
    nothing else is left (an element-wise activation) every unit, and the matrix program, share one
    cached simplification; otherwise (softmax couples the units) the unit is simplified as it is.
    """
    renamed = expression.xreplace(generic)
    if renamed.free_symbols <= set(generic.values()):
        back = {placeholder: own for own, placeholder in generic.items()}
        return smallest(renamed).xreplace(back)
    return smallest(expression)
