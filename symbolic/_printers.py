"""The notation of the derivation as SymPy trees, and the two printers that typeset them.

Every piece of mathematics a reader sees is a SymPy expression: the derivation's own expressions, and a
few notation nodes SymPy has no class for (∂f/∂x, the indicator 𝟙[·], f'(z), f applied element-wise to a
whole vector, a product written factor by factor). LaTeX and text are printed from the same tree by
subclasses of SymPy's LaTeX and str printers, so the two forms cannot say different things, and the tree
is what ``tests/test_steps.py`` evaluates and ``tests/test_printed.py`` parses back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import sympy
from sympy.matrices.expressions import MatAdd, MatMul, MatrixExpr, MatrixSymbol
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from ._functions import step

# --- notation nodes ------------------------------------------------------------------------------------


class Partial(sympy.Expr):
    """∂of/∂wrt as written (notation: its value is whatever the chain it stands in says)."""

    def __new__(cls, of: sympy.Basic, wrt: sympy.Basic):
        return sympy.Expr.__new__(cls, of, wrt)


class Indicator(sympy.Expr):
    """𝟙[relation]: 1 where the relation holds, else 0 (not Kronecker's δ, which clashes with the error δ)."""

    def __new__(cls, relation: sympy.Basic):
        return sympy.Expr.__new__(cls, relation)

    def value(self) -> sympy.Expr:
        """As a number when the relation decides, else the Piecewise it means."""
        relation = self.args[0]
        if relation in (sympy.true, sympy.false):
            return sympy.S.One if relation == sympy.true else sympy.S.Zero
        return sympy.Piecewise((1, relation), (0, True))


class Prime(sympy.Expr):
    """f'(argument) for the activation named by the symbol ``function``."""

    def __new__(cls, function: sympy.Symbol, argument: sympy.Basic):
        return sympy.Expr.__new__(cls, function, argument)


class Applied(sympy.Expr):
    """f(argument) for a function known here only by its name symbol (notation, e.g. ℓ(ŷ, y))."""

    def __new__(cls, function: sympy.Symbol, *arguments: sympy.Basic):
        return sympy.Expr.__new__(cls, function, *arguments)


class Factors(sympy.Expr):
    """A product written factor by factor, in this order, each sum in parentheses; its value is the Mul."""

    def __new__(cls, *factors: sympy.Basic):
        return sympy.Expr.__new__(cls, *factors)


class Scientific(sympy.Expr):
    """mantissa × 10^exponent as written (SymPy would evaluate the product)."""

    def __new__(cls, mantissa: sympy.Float, exponent: int):
        return sympy.Expr.__new__(cls, mantissa, sympy.Integer(exponent))

    def value(self) -> sympy.Float:
        return self.args[0] * sympy.Integer(10) ** self.args[1]


class Boxed(sympy.Expr):
    """The shared factor of the chain rule marked where the error δ is first named (the tutorial's red box):
    notation only, its value is its content's."""

    def __new__(cls, content: sympy.Basic):
        return sympy.Expr.__new__(cls, content)


class Shown(sympy.Expr):
    """A number as a worked step shows it: ``value`` already rounded to ``digits`` significant digits, kept as
    written (a Float would join in SymPy's arithmetic with its neighbours)."""

    def __new__(cls, value: float, digits: int, stands_for: sympy.Basic | None = None):
        # the decimal as written, held to 30 digits (a Float of `digits` digits would do its arithmetic that coarsely)
        number = sympy.Float(f"{value:.{digits}g}", 30)
        if stands_for is None:
            return sympy.Expr.__new__(cls, number, sympy.Integer(digits))
        # the symbol it stands for keeps two equal numbers apart: y₂ = 0 and y₃ = 0 are two terms, not 2·0
        return sympy.Expr.__new__(cls, number, sympy.Integer(digits), stands_for)

    def parts(self) -> tuple[bool, str, int | None]:
        """(negative, the digits as written, the power of ten or None): plain from 10⁻³ to 10⁵, else scientific."""
        value, digits = float(self.args[0]), int(self.args[1])
        size = abs(value)
        if value == 0 or 1e-3 <= size < 1e5:
            written = f"{size:.{digits}g}"
            return value < 0, written, None
        mantissa, exponent = f"{size:.{digits - 1}e}".split("e")
        return value < 0, mantissa, int(exponent)


HIGHLIGHT = "red"  # the box and every δ after it; the PDF's red is the figure's (_formats' preamble)
_ERROR_NAME = re.compile(r"^delta(\d+|l|l\+1)?(\[.*\])?$")


def _is_error(name: str) -> bool:
    """A name of the error δ: a layer's (delta2, deltal), or one entry's (delta2[1])."""
    return _ERROR_NAME.match(name) is not None


class Elementwise(MatrixExpr):
    """f(Z) or f'(Z) for a whole column Z: the activation (``prime=False``) or its derivative, entry by entry."""

    def __new__(cls, function: sympy.Symbol, argument: MatrixExpr, prime: bool = False):
        return MatrixExpr.__new__(cls, function, argument, sympy.true if prime else sympy.false)

    @property
    def shape(self):
        return self.args[1].shape


# --- names -------------------------------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("0123456789()+-l", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾⁺⁻ˡ")
_ENTRY = re.compile(r"^(delta|[A-Za-z])(\d*)\[(.+)\]$")
_MATRIX = re.compile(r"^(delta|[A-Za-z])(\d+|l|l\+1)?$")


def text_name(name: str) -> str:
    """The text form of a derivation's symbol name: W2[1,1] -> W⁽²⁾[1,1], delta2 -> δ⁽²⁾, x[1] -> x[1]."""
    for pattern in (_ENTRY, _MATRIX):
        match = pattern.match(name)
        if match:
            letter = "δ" if match.group(1) == "delta" else match.group(1)
            layer = f"({match.group(2)})".translate(_SUPERSCRIPT) if match.group(2) else ""
            index = f"[{match.group(3)}]" if pattern is _ENTRY else ""
            return f"{letter}{layer}{index}"
    return name


def latex_name(name: str) -> str:
    """The LaTeX of a whole layer's symbol name: W2 -> W^{(2)}, delta2 -> \\delta^{(2)}, Wl+1 -> W^{(l+1)}."""
    match = _MATRIX.match(name)
    if not match:
        return name
    letter = r"\delta" if match.group(1) == "delta" else match.group(1)
    return f"{letter}^{{({match.group(2)})}}" if match.group(2) else letter


def _natural_key(term: sympy.Basic) -> tuple:
    """Terms of a sum in reading order: numbers first, then by their symbols with indices compared as numbers."""
    names = sorted(
        (
            tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", s.name))
            for s in term.free_symbols
            if hasattr(s, "name")
        ),
    )
    if term.could_extract_minus_sign():
        rank = 2  # subtracted terms last: 1 − a, ŷ − y
    else:
        rank = 0 if term.is_Number or term.has(Indicator) else 1
    return (rank, names)


def _needs_parentheses(factor: sympy.Basic, product: Factors) -> bool:
    """A sum or a negative term among factors, or a Σ followed by more factors, is written in parentheses."""
    if isinstance(factor, sympy.Add) or (isinstance(factor, sympy.Expr) and factor.could_extract_minus_sign()):
        return True
    return isinstance(factor, sympy.Sum) and factor is not product.args[-1]


def _branches(expr: sympy.Piecewise) -> list[tuple[sympy.Basic, sympy.Basic]]:
    """A Piecewise's branches with the last condition (True) written as what it means: none of the others."""
    branches, previous = [], []
    for value, condition in expr.args:
        if condition == sympy.true and previous:
            condition = sympy.And(*(sympy.Not(c) for c in previous))
        branches.append((value, condition))
        previous.append(condition)
    return branches


def _subtracted(term: sympy.Basic) -> bool:
    return isinstance(term, MatMul) and term.args[0] == -1


# --- printers ------------------------------------------------------------------------------------------


class LatexNotation(LatexPrinter):
    """SymPy's LaTeX printer for the derivation's notation; ``names`` maps symbols to their LaTeX."""

    def __init__(self, names: Mapping[sympy.Basic, str], red_errors: bool = False):
        super().__init__(
            {"symbol_names": names, "mul_symbol": "dot", "order": "none", "mat_str": "bmatrix", "mat_delim": ""}
        )
        self.names = names
        self.red_errors = red_errors  # δ in red, as in the figure, once the page has named it in its red box

    def _red(self, printed: str, name: str) -> str:
        return rf"{{\color{{{HIGHLIGHT}}}{printed}}}" if self.red_errors and _is_error(name) else printed

    def _print(self, expr, **kwargs):
        # step and unit_sum carry their own _latex, which SymPy would call before any _print_ method
        if isinstance(expr, step):
            return self._print(Indicator(sympy.StrictGreaterThan(expr.args[0], 0)))
        return super()._print(expr, **kwargs)

    def _as_ordered_terms(self, expr, order=None):
        return sorted(expr.args, key=_natural_key) if isinstance(expr, sympy.Add) else super()._as_ordered_terms(expr)

    def _print_Symbol(self, expr, style="plain"):
        # a^{(1)}_{1} squared must print as {a^{(1)}_{1}}^{2}, not as a double superscript
        name = super()._print_Symbol(expr, style)
        return self._red(f"{{{name}}}" if "^" in name else name, expr.name)

    def _print_MatrixSymbol(self, expr):
        return self._red(self.names.get(expr, latex_name(expr.name)), expr.name)

    def _print_Shown(self, expr):
        negative, written, exponent = expr.parts()
        number = ("-" if negative else "") + written + (rf" \times 10^{{{exponent}}}" if exponent is not None else "")
        return rf"\left({number}\right)" if negative or exponent is not None else number

    def _print_Boxed(self, expr):
        # the frame in red, the factor inside in the text's colour (\boxed: amsmath, KaTeX and MathJax alike)
        return rf"{{\color{{{HIGHLIGHT}}}\boxed{{\color{{black}}{self._print(expr.args[0])}}}}}"

    def _print_Transpose(self, expr):
        inner = self._print(expr.args[0])
        if isinstance(expr.args[0], MatrixSymbol) and "^" in inner:
            inner = f"{{{inner}}}"  # a^{(1)} transposed is {a^{(1)}}^{\top}, not a double superscript
        elif not isinstance(expr.args[0], (MatrixSymbol, sympy.MatrixBase)):
            inner = rf"\left({inner}\right)"
        return rf"{inner}^{{\top}}"

    def _print_IndexedBase(self, expr):
        return self.names.get(expr.label, latex_name(str(expr.label)))

    def _print_Indexed(self, expr):
        base = self.names.get(expr.base.label, latex_name(str(expr.base.label)))
        indices = [self._print(i) for i in expr.indices]
        # x_{ij} for letters; numbers keep their commas (x_{0,2,2}, not x_{022}, which reads as one index)
        numbered = len(indices) > 1 and any(i.is_Integer for i in expr.indices)
        joined = "".join(indices) if all(len(i) == 1 for i in indices) and not numbered else ",".join(indices)
        return self._red(f"{base}_{{{joined}}}", str(expr.base.label))

    def _print_Partial(self, expr):
        of, wrt = (self._print(a) for a in expr.args)
        return rf"\frac{{\partial {of}}}{{\partial {wrt}}}"

    def _print_Indicator(self, expr):
        return rf"\mathbb{{1}}\left[{self._print(expr.args[0])}\right]"

    def _print_Prime(self, expr):
        return rf"{self._print(expr.args[0])}'\left({self._print(expr.args[1])}\right)"

    def _print_Applied(self, expr):
        function, *arguments = expr.args
        return rf"{self._print(function)}\left({', '.join(self._print(a) for a in arguments)}\right)"

    def _print_Elementwise(self, expr):
        function, argument, prime = expr.args
        return rf"{self._print(function)}{chr(39) if prime else ''}\left({self._print(argument)}\right)"

    def _print_Factors(self, expr):
        return r" \cdot ".join(
            rf"\left({self._print(f)}\right)" if _needs_parentheses(f, expr) else self._print(f) for f in expr.args
        )

    def _print_HadamardProduct(self, expr):
        return r" \odot ".join(
            rf"\left({self._print(a)}\right)" if isinstance(a, (MatMul, MatAdd)) else self._print(a) for a in expr.args
        )

    def _print_MatMul(self, expr):
        return " ".join(self.parenthesize(a, PRECEDENCE["Mul"], strict=True) for a in expr.args)

    def _print_OneMatrix(self, expr):
        return r"\mathbf{1}"

    def _print_Scientific(self, expr):
        mantissa, exponent = expr.args
        return rf"{self._print(mantissa)} \times 10^{{{exponent}}}"

    def _print_Piecewise(self, expr):
        # every branch with its condition (no "otherwise", a word that would need translating)
        rows = [rf"{self._print(value)} & {self._print(condition)}" for value, condition in _branches(expr)]
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"

    def _print_Tuple(self, expr):
        return ", ".join(self._print(item) for item in expr.args)

    def _print_Sum(self, expr):
        # one Σ per limit, the outermost (SymPy's last) first: a sum over several indices (the conv facts') too
        body = self.parenthesize(expr.function, PRECEDENCE["Mul"], strict=True)
        signs = [
            rf"\sum_{{{self._print(variable)}={self._print(low)}}}^{{{self._print(high)}}}"
            for variable, low, high in reversed(expr.limits)
        ]
        return " ".join(signs) + f" {body}"


class TextNotation(StrPrinter):
    """The same notation as terminal text: δ⁽²⁾[1], ∂L/∂W⁽²⁾[1,1], σ'(z), 𝟙[k = i], Σ_k, ᵀ, ⊙, ·, −."""

    def __init__(self, names: Mapping[sympy.Basic, str]):
        super().__init__({"order": "none"})
        self.names = names

    def _print(self, expr, **kwargs):
        if isinstance(expr, step):
            return self._print(Indicator(sympy.StrictGreaterThan(expr.args[0], 0)))
        if isinstance(expr, sympy.Indexed):  # Indexed carries its own _sympystr
            return self._print_Indexed(expr)
        return super()._print(expr, **kwargs)

    def _as_ordered_terms(self, expr, order=None):
        return sorted(expr.args, key=_natural_key) if isinstance(expr, sympy.Add) else super()._as_ordered_terms(expr)

    def _print_Symbol(self, expr):
        return self.names.get(expr, text_name(expr.name))

    _print_Dummy = _print_Symbol  # noqa: N815 - SymPy dispatches on _print_<ClassName>

    def _print_MatrixSymbol(self, expr):
        return self.names.get(expr, text_name(expr.name))

    def _print_IndexedBase(self, expr):
        return self.names.get(expr.label, text_name(str(expr.label)))

    def _print_Indexed(self, expr):
        return f"{self._print(expr.base)}[{','.join(self._print(i) for i in expr.indices)}]"

    def doprint(self, expr):
        # every hyphen the str printer writes is a minus sign (names have none; exponents are superscripts)
        return super().doprint(expr).replace("-", "−")

    def _print_Mul(self, expr):
        return super()._print_Mul(expr).replace("*", "·")

    def _print_Pow(self, expr, rational=False):
        base, exponent = expr.args
        if exponent.is_Integer and 1 < exponent < 10:
            return self.parenthesize(base, PRECEDENCE["Pow"], strict=True) + str(exponent).translate(_SUPERSCRIPT)
        return super()._print_Pow(expr, rational)

    def _print_Relational(self, expr):
        symbol = {"==": "=", ">": ">", ">=": "≥", "<": "<", "<=": "≤"}[expr.rel_op]
        return f"{self._print(expr.lhs)} {symbol} {self._print(expr.rhs)}"

    def _print_Equality(self, expr):
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"

    def _print_Partial(self, expr):
        return "∂{}/∂{}".format(*(self._print(a) for a in expr.args))

    def _print_Indicator(self, expr):
        return f"𝟙[{self._print(expr.args[0])}]"

    def _print_Shown(self, expr):
        negative, written, exponent = expr.parts()
        power = f"×10{str(exponent).translate(_SUPERSCRIPT)}" if exponent is not None else ""
        number = ("-" if negative else "") + written + power  # doprint turns - into −
        return f"({number})" if negative or exponent is not None else number

    def _print_Boxed(self, expr):
        return f"⟦{self._print(expr.args[0])}⟧"  # the red box, in characters a terminal has

    def _print_Prime(self, expr):
        return f"{self._print(expr.args[0])}'({self._print(expr.args[1])})"

    def _print_Applied(self, expr):
        function, *arguments = expr.args
        return f"{self._print(function)}({', '.join(self._print(a) for a in arguments)})"

    def _print_Elementwise(self, expr):
        function, argument, prime = expr.args
        return f"{self._print(function)}{chr(39) if prime else ''}({self._print(argument)})"

    def _print_Factors(self, expr):
        return " · ".join(f"({self._print(f)})" if _needs_parentheses(f, expr) else self._print(f) for f in expr.args)

    def _print_Transpose(self, expr):
        return f"{self.parenthesize(expr.args[0], PRECEDENCE['Pow'])}ᵀ"

    def _print_HadamardProduct(self, expr):
        return " ⊙ ".join(
            f"({self._print(a)})" if isinstance(a, (MatMul, MatAdd)) else self._print(a) for a in expr.args
        )

    def _print_MatMul(self, expr):
        return " ".join(self.parenthesize(a, PRECEDENCE["Mul"], strict=True) for a in expr.args)

    def _print_OneMatrix(self, expr):
        return "𝟏"

    def _print_MatAdd(self, expr):
        printed = []
        for term in sorted(expr.args, key=_subtracted):
            negative = _subtracted(term)
            shown = self._print(MatMul(*term.args[1:]) if negative else term)
            printed.append(("- " if negative else "+ ") + shown)
        return " ".join(printed).removeprefix("+ ")

    def _print_Sum(self, expr):
        body = self.parenthesize(expr.function, PRECEDENCE["Mul"], strict=True)  # one Σ per limit, as in LaTeX
        limits = reversed(expr.limits)
        signs = [f"Σ[{self._print(v)}={self._print(low)}..{self._print(high)}]" for v, low, high in limits]
        return " ".join(signs) + f" {body}"

    def _print_Scientific(self, expr):
        mantissa, exponent = expr.args
        return f"{self._print(mantissa)}×10{str(exponent).translate(_SUPERSCRIPT)}"

    def _print_Piecewise(self, expr):
        return "{" + "; ".join(f"{self._print(v)} | {self._print(c)}" for v, c in _branches(expr)) + "}"

    def _print_Infinity(self, expr):
        return "∞"

    def _print_NegativeInfinity(self, expr):
        return "-∞"

    def _print_Tuple(self, expr):
        return ", ".join(self._print(item) for item in expr.args)

    def _print_MatrixBase(self, expr):
        return "[" + "; ".join(", ".join(self._print(v) for v in expr.row(i)) for i in range(expr.rows)) + "]"

    _print_ImmutableDenseMatrix = _print_MatrixBase  # noqa: N815 - as above
    _print_MutableDenseMatrix = _print_MatrixBase  # noqa: N815 - as above

    def _print_Exp1(self, expr):
        return "e"

    def _print_exp(self, expr):
        return f"exp({self._print(expr.args[0])})"

    def _print_sigmoid(self, expr):
        return f"σ({self._print(expr.args[0])})"
