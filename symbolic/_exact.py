"""Numbers as exact as their definition: a program evaluated with mpmath at a precision that grows until it holds.

At saturation the numbers on a page come from cancellations: the loss of bce after a sigmoid at w = 50 is
−log(1 − σ(50)), and 1 − σ(50) = 2·10⁻²² is all that is left of two numbers near 1. Evaluated at a fixed
20 digits, σ(50) rounds to 1 and the log is of 0 (or of a negative rounding error: a complex number); at
w = 46 it is wrong in the second digit. Rewriting every such expression into a finite form would have to
know every form; instead the same program is run with mpmath (SymPy's own arbitrary-precision library) at
a working precision that doubles until two runs agree to the digits asked for, every number real and
finite. A cancellation costs the digits it cancels, so the precision grows with it (a logit gap of 10⁴
needs about 4,400 digits, a few milliseconds an operation), never with anything else.

Two runs can only agree on a wrong value if both rounded the same cancellation to exactly 0 and nothing
downstream divided by it or took its log (that would be inf, caught). The first run therefore uses
``FLOOR_DIGITS`` more digits than asked: a cancellation among numbers of order 1 whose result is still a
float (above 10⁻³⁰⁸) keeps the digits asked for (gelu(−30) = −1.5·10⁻¹⁹⁶, from 1 + erf(−21.2)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mpmath
import sympy
from sympy.printing.pycode import MpmathPrinter

FLOOR_DIGITS = 330  # beyond the float range (10⁻³⁰⁸): a cancellation down to any float keeps its digits
MAX_DIGITS = 45_000  # ~ a logit gap of 10⁵; past it the last run's numbers are returned, non-real as NaN
TINY = mpmath.mpf("1e-330")  # below this a float is 0: two such numbers agree whatever their digits


class _ExactPrinter(MpmathPrinter):
    """SymPy's mpmath printer, taught chainrule's functions: each defined function prints its definition.

    ``names`` gives every symbol of the program an identifier (``a1[2]`` is not one); the terms of a sum are
    printed as they stand (``order="none"``): sorting a 784-term z took most of a 784-12-10 page.
    """

    def __init__(self, names: dict[sympy.Symbol, str]):
        settings = {"fully_qualified_modules": True, "inline": True, "allow_unknown_functions": True}
        super().__init__({**settings, "order": "none", "user_functions": {}})
        self.names = names

    def _print_Symbol(self, expr):
        return self.names.get(expr) or super()._print_Symbol(expr)

    def _print_DefinedFunctionBase(self, expr):
        # parenthesised: the call stands for one factor, and −cube(u) must not print as −u + u³/3
        return f"({self._print(type(expr).definition(expr.args[0]))})"

    def _print_ActivationBackwardBase(self, expr):
        return self._print(expr.doit())

    def _print_logsumexp(self, expr):
        # mpmath's exponent is unbounded: log Σ e^{z_k} does not overflow, and the cancellation of
        # z_i − logsumexp(z) is what the growing precision is for
        return self._print(expr.rewrite(sympy.log))

    def _print_batch_size(self, expr):
        return _BATCH.name


_BATCH = sympy.Symbol("batch_size_B", positive=True, integer=True)


def exact_function(
    arguments: Sequence[sympy.Symbol],
    steps: Sequence[tuple[sympy.Symbol, sympy.Expr]],
    outputs: Sequence[sympy.Expr],
) -> Callable:
    """``f(*argument values, B) -> outputs`` computing ``steps`` line by line with mpmath (``sympy.lambdify``).

    The steps are handed to lambdify as its common subexpressions, so the function runs the program as
    written, once per line; B is the batch size of ``reduction="mean"``.
    """
    names = {symbol: f"v{number}" for number, symbol in enumerate(arguments)}
    names.update({target: f"t{number}" for number, (target, _) in enumerate(steps)})
    # a product of named symbols (a gradient entry δ_i a_j) is multiplied here rather than printed: printing
    # 9,550 of them took most of the time of a 784-12-10 page
    printed: dict[sympy.Expr, int] = {}
    recipes: list[tuple[int, ...]] = []
    for output in outputs:
        factors = output.args if isinstance(output, sympy.Mul) else (output,)
        if not all(factor in names for factor in factors):
            factors = (output,)
        recipes.append(tuple(printed.setdefault(factor, len(printed)) for factor in factors))
    function = sympy.lambdify(
        [*(sympy.Symbol(names[symbol]) for symbol in arguments), _BATCH],
        list(printed),
        modules=[{"mpmath": mpmath}, "mpmath"],  # the printer writes mpmath.log, ...
        printer=_ExactPrinter(names),
        cse=lambda expressions: (list(steps), expressions),
        docstring_limit=0,
    )

    def guarded(*values):
        try:
            results = [mpmath.mpmathify(value) for value in function(*values)]  # relu's 0 is a Python int
        except ZeroDivisionError:  # a cancellation rounded to exactly 0 and divided by: more precision
            return [mpmath.mpf("nan")] * len(recipes)
        return [mpmath.fprod(results[index] for index in recipe) for recipe in recipes]

    return guarded


def _agree(old: list, new: list, digits: int) -> bool:
    tolerance = mpmath.mpf(10) ** -digits
    for u, v in zip(old, new):
        if not (isinstance(v, mpmath.mpf) and mpmath.isfinite(v)):
            return False
        if not (isinstance(u, mpmath.mpf) and mpmath.isfinite(u)):
            return False
        largest = max(abs(u), abs(v))
        if largest > TINY and abs(u - v) > tolerance * largest:
            return False
    return True


def _as_float(value) -> float:
    if isinstance(value, mpmath.mpf):
        return float(value)
    return float("nan")  # a complex result that more precision did not make real


def run_exact(
    function: Callable,
    samples: Sequence[Sequence[float]],
    combine: Callable[[list[list]], list],
    digits: int = 20,
) -> list[float]:
    """``combine`` of ``function``'s outputs on every sample, to ``digits`` significant digits, as floats.

    ``samples`` holds each sample's argument values (floats, converted to mpmath exactly); ``combine``
    turns the per-sample outputs into the numbers wanted (sums over the batch, or the columns side by side).
    The precision doubles from ``digits + FLOOR_DIGITS`` until two runs agree, every number real and finite.
    """
    batch = len(samples)
    previous: list | None = None
    precision = digits + FLOOR_DIGITS
    while True:
        with mpmath.workdps(precision):
            current = combine([function(*map(mpmath.mpf, values), batch) for values in samples])
        if (previous is not None and _agree(previous, current, digits)) or precision > MAX_DIGITS:
            return [_as_float(v) for v in current]
        previous = current
        precision *= 2
