"""SymPy's C99 printer, taught chainrule's functions: the kernel's arithmetic is printed from the derivation's trees.

Every element-wise expression of the matrix program (a forward activation, the loss's δ, an activation's
derivative from ``Activation.derivative``) reaches C through ``KernelPrinter.expression``: SymPy's common
subexpression elimination names the repeated parts, SymPy's C99 printer writes each one, and only what SymPy
cannot know is added here: where each matrix symbol lives in memory (``access``), chainrule's own opaque
functions (printed as their definitions, softplus in a form finite at every z), and numbers such as √2/√π
as literals of the kernel's floating type (the printer's M_SQRT2 macros are double and need _GNU_SOURCE).
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy
from sympy.codegen.ast import float32, float64, real
from sympy.codegen.cfunctions import log1p
from sympy.codegen.rewriting import create_expand_pow_optimization, expm1_opt, log1p_opt, optimize
from sympy.printing.c import C99CodePrinter

from symbolic._functions import ActivationBackwardBase, softplus

C_TYPES = {"float32": float32, "float64": float64}  # torch dtype name -> SymPy's codegen type

# Rewrites from sympy.codegen (library, not hand-written): e^z − 1 → expm1(z) (elu's definition; exact near 0, as
# torch's elu), log(1 + u) → log1p(u), and small integer powers x**2 → x*x rather than pow(x, 2).
_REWRITES = [expm1_opt, log1p_opt, create_expand_pow_optimization(4)]


def _softplus_exact(argument: sympy.Expr) -> sympy.Expr:
    """log(1 + e^z) as log1p(e^−|z|) + max(z, 0): equal for every z, finite where e^z overflows (z > 88.7 in
    float32, 709.8 in float64), with no threshold (torch's softplus returns z itself above 20)."""
    return log1p(sympy.exp(-sympy.Abs(argument))) + sympy.Max(argument, 0)


def local_steps(expression: sympy.Expr) -> sympy.Expr:
    """Each fused local step g ⊙ f'(z) written out as the product with the table's f' (``Activation.derivative``,
    the same tree the torch printer falls back to where torch has no fused kernel): C has no fused kernels."""
    return expression.replace(lambda e: isinstance(e, ActivationBackwardBase), lambda e: e.doit(deep=False))


class KernelPrinter(C99CodePrinter):
    """C99 for one floating type (``"float32"`` prints expf, 0.5F, ...), with each program symbol printed as
    its place in memory (``access``: symbol -> C lvalue text, set per loop by the kernel writer)."""

    def __init__(self, dtype: str):
        super().__init__({"type_aliases": {real: C_TYPES[dtype]}})
        self.dtype = dtype
        self.access: Mapping[sympy.Symbol, str] = {}

    @property
    def type_name(self) -> str:
        """The C type of this printer's reals: ``float`` or ``double``."""
        return self._print(self.type_aliases[real])

    def _print_Symbol(self, expr):
        placed = self.access.get(expr)
        return placed if placed is not None else super()._print_Symbol(expr)

    def _print_DefinedFunctionBase(self, expr):
        (argument,) = expr.args
        if type(expr) is softplus:
            return self._print(_softplus_exact(argument))
        # parenthesised: the call stands for one factor (−f(u) must negate all of f's definition)
        definition = optimize(type(expr).definition(argument), _REWRITES)
        return f"({self._print(definition)})"

    def _print_exp(self, expr):  # float: the kernel's inline e^x (PRELUDE in _kernel: why)
        if self.dtype == "float32":
            return f"chainrule_expf({self._print(expr.args[0])})"
        return super()._print_exp(expr)

    def _print_NumberSymbol(self, expr):  # π, e: a literal of the kernel's type, not the double macro M_PI
        return self._print(sympy.Float(expr.evalf(20), 20))

    def _print_Pow(self, expr):
        if expr.is_number and not expr.exp.is_Integer:  # √2, √π (gelu): a literal, not the double macro M_SQRT2
            return self._print(sympy.Float(expr.evalf(20), 20))
        return super()._print_Pow(expr)

    def _print_Piecewise(self, expr):
        # SymPy's inline form spreads each branch over lines of its own; the kernel reads better on one
        if expr.args[-1].cond is not sympy.true:
            raise ValueError(f"a Piecewise without a last 'otherwise' branch has no value everywhere: {expr}")
        text = self._print(expr.args[-1].expr)
        for piece in reversed(expr.args[:-1]):
            text = f"({self._print(piece.cond)} ? {self._print(piece.expr)} : {text})"
        return text

    def expression(self, expression: sympy.Expr, indent: str) -> tuple[list[str], str]:
        """``expression`` as C: the lines declaring its common subexpressions (SymPy's ``cse``) and the final
        text that reads them. Local steps are written out and the codegen rewrites applied first."""
        rewritten = optimize(local_steps(expression), _REWRITES)
        shared, (reduced,) = sympy.cse([rewritten], symbols=sympy.numbered_symbols("e"), optimizations="basic")
        real = self.type_name
        lines = [f"{indent}const {real} {self._print(symbol)} = {self._print(value)};" for symbol, value in shared]
        return lines, self._print(reduced)
