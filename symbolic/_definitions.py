"""What a user's definition may be (``Activation.define``, ``Loss.define``), checked once, at ``define``.

* A name that reads unambiguously: not chainrule's own function names, not SymPy's names (a report that
  writes ``exp(z)`` or ``step(z)`` for a user's function would mislead). The name is only displayed: the
  SymPy class made for a user function lives in a namespace of its own (``_functions.define_function``),
  so no printer can dispatch on it whatever it is called.
* A formula chainrule can differentiate and compile: every node of the definition and of its derivative is
  in ``COMPILABLE`` (the classes numeric's torch printer prints; tests/test_user_definitions.py compiles
  each against torch autograd), finite and real at a few sample points, and not constant.
* LaTeX confined to math: an allow-list of characters and commands, because a deny-list cannot be complete
  in TeX (``^^5cinput`` spells ``\\input``, ``\\csname input\\endcsname`` builds it, ``\\let`` renames it).
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence

import sympy
from sympy.core.numbers import ComplexInfinity, Infinity, NaN, NegativeInfinity
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.logic.boolalg import ITE, BooleanAtom

from ._errors import NetworkError, NetworkTypeError

# --- names ----------------------------------------------------------------------------------------------


def _chainrule_names() -> frozenset[str]:
    """Every name chainrule's own SymPy functions and notation use (imported late: no import cycle)."""
    from . import _functions, _printers

    modules = (_functions, _printers)
    return frozenset(name for module in modules for name, value in vars(module).items() if isinstance(value, type))


def reserved_names() -> frozenset[str]:
    """Names a user's activation or loss may not take: chainrule's function and class names and SymPy's."""
    sympy_names = {name for name in dir(sympy) if not name.startswith("_")}
    return _chainrule_names() | sympy_names


def check_name(name: object, kind: str, builtins: Mapping[str, object]) -> str:
    """``name`` for a user's ``kind`` ("activation", "loss"), or NetworkError saying why not."""
    if not isinstance(name, str):
        article = "an" if kind[0] in "aeiou" else "a"
        raise NetworkTypeError(f"{article} {kind} name must be a str; got {name!r}")
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise NetworkError(
            f"{kind} name {name!r} must be an ASCII identifier: letters a-z, A-Z, digits and _, not a keyword"
        )
    if name in builtins:
        raise NetworkError(f"{kind} name {name!r} is a built-in {kind}; choose another name")
    if name in reserved_names():
        owner = "SymPy's" if name in dir(sympy) else "chainrule's"
        raise NetworkError(
            f"{kind} name {name!r} is {owner} own name for a function or class; a report writing {name}(…) "
            "would mean that one; choose another name"
        )
    return name


# --- formulas -------------------------------------------------------------------------------------------

# The functions a definition and its derivative may use: those numeric's printer compiles to torch (SymPy's
# TorchPrinter mapping, checked there), differentiable where they are defined. Max and Min are rewritten to
# Piecewise first (``with_max_min_as_piecewise``). Not here, so refused: floor, ceiling, frac (their
# derivative is 0 between integers and does not exist at them: a finite difference across an integer is
# unbounded, so verify could not check them, and SymPy leaves Derivative(floor(z), z) unevaluated);
# Heaviside, DiracDelta (the derivatives of a jump, sign's among them); re, im, arg; undefined functions.
COMPILABLE_FUNCTIONS: tuple[type[sympy.Function], ...] = (
    sympy.exp,
    sympy.log,
    sympy.sin,
    sympy.cos,
    sympy.tan,
    sympy.asin,
    sympy.acos,
    sympy.atan,
    sympy.sinh,
    sympy.cosh,
    sympy.tanh,
    sympy.asinh,
    sympy.acosh,
    sympy.atanh,
    sympy.erf,
    sympy.Abs,
    sympy.sign,  # Abs' derivative; sign's own derivative (a Dirac delta) is refused
    sympy.Piecewise,
)
_STRUCTURE = (sympy.Add, sympy.Mul, sympy.Pow, sympy.Symbol, sympy.Number, sympy.NumberSymbol)
_CONDITIONS = (sympy.core.relational.Relational, sympy.And, sympy.Or, sympy.Not, BooleanAtom)
_NOT_FINITE = (NaN, ComplexInfinity, Infinity, NegativeInfinity)


def with_max_min_as_piecewise(expression: sympy.Expr) -> sympy.Expr:
    """Max and Min as Piecewise (hard-tanh's ``Max(-1, Min(1, z))`` → torch.where), flattened.

    SymPy's own rewrite writes some conditions as ITE(c, a, b); its ``to_nnf`` is the same condition in
    And/Or/Not, which the torch printer prints as logical_and/or/not.
    """
    if not expression.has(sympy.Max, sympy.Min):
        return expression
    rewritten = expression.replace(
        lambda e: isinstance(e, (sympy.Max, sympy.Min)), lambda e: e.rewrite(sympy.Piecewise)
    )
    rewritten = sympy.piecewise_fold(rewritten)
    return rewritten.replace(lambda e: isinstance(e, ITE), lambda e: e.to_nnf())


def uncompilable_part(expression: sympy.Basic) -> sympy.Basic | None:
    """The first node of ``expression`` chainrule cannot compile to torch, or None."""
    from ._functions import DefinedFunctionBase

    for node in sympy.preorder_traversal(expression):
        if isinstance(node, _NOT_FINITE):
            return node
        if isinstance(node, DefinedFunctionBase):
            continue  # printed through its mapping or its definition, itself checked when it was defined
        if isinstance(node, (*COMPILABLE_FUNCTIONS, ExprCondPair, *_STRUCTURE, *_CONDITIONS)):
            continue
        return node
    return None


def check_compilable(expression: sympy.Expr, what: str) -> None:
    """NetworkError naming the part of ``expression`` (``what``: "the derivative of 'f'") torch cannot get."""
    part = uncompilable_part(expression)
    if part is not None:
        allowed = ", ".join(f.__name__ for f in COMPILABLE_FUNCTIONS)
        raise NetworkError(
            f"{what} contains {sympy.sstr(part)}, which chainrule cannot differentiate or compile to torch "
            f"(allowed: + − × /, powers, {allowed}, Max, Min, and chainrule's activations)"
        )


def check_finite_real(expression: sympy.Expr, points: Sequence[Mapping[sympy.Symbol, float]], what: str) -> None:
    """NetworkError unless ``expression`` is a finite real number at every one of ``points``."""
    for point in points:
        value = expression.xreplace({s: sympy.Float(v) for s, v in point.items()}).evalf(20)
        if not (value.is_number and value.is_extended_real and value.is_finite):
            at = ", ".join(f"{s} = {v}" for s, v in point.items())
            raise NetworkError(f"{what} is not a finite real number at {at}: {value}")


def is_zero(expression: sympy.Expr) -> bool:
    """SymPy shows ``expression`` is 0 everywhere (as written, or after simplify)."""
    return expression == 0 or sympy.simplify(expression) == 0


# --- LaTeX ----------------------------------------------------------------------------------------------

# Commands a user's LaTeX may use: math notation only. None of them reads or writes a file, changes a
# catcode, defines or builds a command, or leaves math mode.
_GREEK = (
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi pi varpi rho "
    "varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi "
    "Psi Omega"
)
_MATH = (
    "operatorname mathrm mathbf mathit mathsf mathcal mathbb boldsymbol text frac dfrac tfrac sqrt left right "
    "big Big bigg Bigg cdot times pm mp odot circ ast star log ln exp sin cos tan sinh cosh tanh arcsin arccos "
    "arctan max min hat bar tilde vec dot ddot check breve prime infty partial nabla sum prod quad qquad lvert "
    "rvert lVert rVert langle rangle lfloor rfloor lceil rceil leq geq le ge neq ne approx sim cdots ldots "
    "top mid vert"
)
LATEX_COMMANDS = frozenset((_GREEK + " " + _MATH).split())
# Control symbols: thin spaces and escaped braces, bar, underscore
LATEX_SYMBOLS = frozenset(",;:! {}|_")
# Characters outside commands: letters, digits, spaces and the math punctuation. Not % (a comment swallows
# what follows), # (a macro parameter), $ (leaves math mode), & (alignment), ~ (active), non-ASCII (pdflatex
# without a Unicode font would stop).
_PLAIN = re.compile(r"[A-Za-z0-9 _^{}()\[\]+\-*/=<>,.;:!|']")
_COMMAND = re.compile(r"\\([A-Za-z]+|.?)", re.DOTALL)


def check_latex(latex: object, owner: str) -> str:
    """``latex`` when it is math notation only (see ``LATEX_COMMANDS``), else NetworkError naming the part."""
    if not isinstance(latex, str):
        raise NetworkTypeError(f"latex for {owner!r} must be a str; got {latex!r}")
    if "^^" in latex:  # TeX's ^^xx writes any character by its code, a backslash (^^5c) among them
        raise NetworkError(f"latex for {owner!r} contains ^^ (TeX's character-code notation); write math only")
    position = 0
    depth = 0
    lefts = 0
    while position < len(latex):
        character = latex[position]
        if character == "\\":
            match = _COMMAND.match(latex, position)
            command = match.group(1)
            allowed = command in LATEX_COMMANDS if len(command) > 1 or command.isalpha() else command in LATEX_SYMBOLS
            if not allowed:
                raise NetworkError(
                    f"latex for {owner!r} uses \\{command}, which is not math notation chainrule allows "
                    "(allowed: Greek letters, \\operatorname, \\mathrm, \\frac, \\sqrt, \\left, \\right, ...)"
                )
            lefts += {"left": 1, "right": -1}.get(command, 0)
            position = match.end()
            continue
        if not _PLAIN.fullmatch(character):
            raise NetworkError(
                f"latex for {owner!r} contains {character!r}, which is not math notation; write math only"
            )
        depth += {"{": 1, "}": -1}.get(character, 0)
        if depth < 0:
            raise NetworkError(f"latex for {owner!r} closes a brace it did not open: {latex!r}")
        position += 1
    if depth != 0 or lefts != 0:
        raise NetworkError(f"latex for {owner!r} has unbalanced braces or \\left … \\right: {latex!r}")
    return latex
