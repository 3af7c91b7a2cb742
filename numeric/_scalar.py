"""The scalar path: a tiny network's gradients at B=1 as straight-line Python over floats.

At one sample a torch call costs far more than its arithmetic (about 1 µs of dispatch for a handful of
multiplies), so the tutorial's 13 torch ops cost more than the same program on Python floats, tensor conversion
in and out included. Here the derivation's matrix program is unrolled at B=1 into one line per entry (z1_0 =
W1_0_0*x_0 + ..., ``matmul`` as SymPy's own Matrix product) and printed by SymPy's ``PythonCodePrinter``;
``CompiledGradients`` runs it, chosen automatically, where it pays (``scalar_path_applies``).

Python's float arithmetic is IEEE double, but its math functions raise where torch returns inf or nan
(``math.exp(710)``: OverflowError; ``math.log(0)``: ValueError; ``x/0``: ZeroDivisionError). The functions
whose textbook forms overflow (σ, softplus, softmax, log Σ e^z) are written in their stable forms
(``_HELPERS``); any other such error makes the call return None, and the caller runs the torch function
instead: such an input gets torch's own result (inf, nan or a finite form), never an exception.

Float32 in, float32 out, but computed in doubles and rounded once: the tutorial's W1.grad[2] is float64's
7.8006e-05 where float32 autograd prints 7.8005e-05. ``compile_gradients(..., scalar=False)`` keeps torch's
float32 arithmetic (the tutorial command does, to reproduce the tutorial's printed numbers).
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy
import sympy
import torch
from sympy.printing.pycode import PythonCodePrinter

from symbolic import Derivation
from symbolic._functions import (
    USER_NAMESPACE,
    batch_size,
    batch_sum,
    matmul,
    max_mask,
    softmax,
    softmax_without_max,
    transpose,
    unit_logsumexp,
    unit_sum,
)
from symbolic._functions import sigmoid as sigmoid_function
from symbolic._functions import softplus as softplus_function

from ._compiled import GENERATED

# The scalar path runs at B=1 on networks of at most this many parameters (weights and biases) per layer.
# Measured (one thread, median of 15 interleaved rounds, sigmoid, tensor conversion included): the scalar call
# costs about 9 µs + 0.12 µs a parameter, the torch backend's about 12 µs + 5 µs a layer, so where the scalar
# path stops paying depends on the depth: 4-4-4 (32 weights) 13.1 against 22.2 µs, 8-8-8 (128) 24.5 against
# 25.3, 12-12-12 (288) 43.7 against 22.7; 8-8-8-8 (192) 35.7 against 34.1, 10-10-10-10 (300) 50.7 against 33.5.
# Even at 128 weights for two layers and near 190 for three: 64 a layer.
SCALAR_PARAMETERS_PER_LAYER = 64
_NUMPY_TYPES = {torch.float32: numpy.float32, torch.float64: numpy.float64}  # the results' rounding
_function_numbers = itertools.count()

# Helpers the printed code calls for the functions whose definitions overflow in floats (e^{-z} of σ at z < -709,
# e^z of softplus, softmax and log Σ e^z above 709). Written by hand, as torch's kernels are: SymPy has no stable
# forms of them to print. Each is the definition chainrule derives with (tests/test_scalar_path.py checks them).
_HELPERS = {
    "sigmoid": """
def sigmoid(v):  # 1/(1 + e^-v), the exponential never of a positive number
    if v >= 0:
        return 1.0 / (1.0 + exp(-v))
    e = exp(v)
    return e / (1.0 + e)
""",
    "softplus": """
def softplus(v):  # log(1 + e^v) = max(v, 0) + log1p(e^-|v|)
    return (v if v > 0 else 0.0) + log1p(exp(-abs(v)))
""",
    "softmax": """
def softmax(z):  # e^z_i / Σ e^z_k, shifted by the largest z_k
    m = max(z)
    e = [exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]
""",
    "logsumexp": """
def logsumexp(z):  # log Σ e^z_k, shifted by the largest z_k
    m = max(z)
    return m + log(sum([exp(v - m) for v in z]))
""",
    "max_mask": """
def max_mask(z):  # 1 at the first largest unit, 0 elsewhere (torch's argmax)
    k = z.index(max(z))
    return [1.0 if i == k else 0.0 for i in range(len(z))]
""",
    "softmax_without_max": """
def softmax_without_max(z, mask):  # the softmax over the units the mask leaves out, 0 under it
    m = max([v for v, k in zip(z, mask) if not k])
    e = [0.0 if k else exp(v - m) for v, k in zip(z, mask)]
    s = sum(e)
    return [v / s for v in e]
""",
}
# chainrule's own functions printed as a helper; every other defined function prints its definition
_STABLE = {sigmoid_function: "sigmoid", softplus_function: "softplus"}


def scalar_path_applies(derivation: Derivation) -> bool:
    """Whether ``compile_gradients`` runs this network's B=1 calls over Python floats."""
    network = derivation.network
    return network.parameter_count <= SCALAR_PARAMETERS_PER_LAYER * network.depth


@dataclass(frozen=True)
class VectorCall:
    """A line calling one of ``_HELPERS`` on a column's units: ``targets = helper(arguments...)``."""

    targets: tuple[sympy.Symbol, ...]  # one target: the helper returns a number
    helper: str
    arguments: tuple[tuple[sympy.Expr, ...], ...]


Step = tuple[sympy.Symbol, sympy.Expr] | VectorCall


class ScalarPrinter(PythonCodePrinter):
    """SymPy's Python printer for float code: ``math``'s functions by their short names (the header imports
    them), chainrule's functions as their definitions or a stable helper, its local backward steps as their
    products g ⊙ f'(z)."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": False, "standard": "python3"})
        self.helpers: set[str] = set()  # the _HELPERS the printed code calls

    def _print_DefinedFunctionBase(self, expr):
        helper = None if type(expr).__name__.startswith(USER_NAMESPACE) else _STABLE.get(type(expr))
        if helper is not None:
            self.helpers.add(helper)
            return f"{helper}({self._print(expr.args[0])})"
        return f"({self._print(type(expr).definition(expr.args[0]))})"

    def _print_ActivationBackwardBase(self, expr):
        return self._print(expr.doit())

    def _print_step(self, expr):  # relu'(z): 1 where z > 0 (torch's relu has gradient 0 at 0 too)
        return f"(1.0 if {self._print(expr.args[0])} > 0 else 0.0)"

    def _print_Symbol(self, expr):
        return expr.name

    def header(self) -> list[str]:
        """The imports of the math functions printed so far and those the helpers call, then the helpers."""
        names = set(self.module_imports.get("math", ()))
        if self.helpers:
            names |= {"exp", "log", "log1p"}
        imports = [f"from math import {', '.join(sorted(names))}"] if names else []
        return [*imports, *(_HELPERS[helper] for helper in _HELPERS if helper in self.helpers)]


class _Unroller:
    """The matrix program at B=1: every matrix a sympy.Matrix of scalar symbols and expressions."""

    def __init__(self, derivation: Derivation):
        network, program = derivation.network, derivation.matrix_program
        self.steps: list[Step] = []
        self.values: dict[sympy.Symbol, sympy.Matrix] = {}
        self._fresh = itertools.count()
        shapes = {"x": (network.sizes[0], 1), "y": (network.sizes[-1], 1), **network.parameter_shapes}
        self.inputs = {symbol: self._symbols(symbol.name, *shapes[symbol.name]) for symbol in program.inputs}
        self.values.update(self.inputs)

    @staticmethod
    def _symbols(name: str, rows: int, cols: int) -> sympy.Matrix:
        if cols == 1:  # a column: one index
            return sympy.Matrix(rows, 1, lambda i, _: sympy.Symbol(f"{name}_{i}", real=True))
        return sympy.Matrix(rows, cols, lambda i, j: sympy.Symbol(f"{name}_{i}_{j}", real=True))

    def fresh(self, prefix: str) -> sympy.Symbol:
        return sympy.Symbol(f"{prefix}_{next(self._fresh)}", real=True)

    def define(self, target: sympy.Symbol, expression: sympy.Expr) -> None:
        """``target = expression``: one line per entry that is not already a symbol or a number."""
        value = self.value(expression)
        if not isinstance(value, sympy.MatrixBase):
            value = sympy.Matrix([[value]])
        entries = self._symbols(target.name, *value.shape)
        for (i, j), entry in zip(itertools.product(range(value.rows), range(value.cols)), value):
            if entry.is_Symbol or entry.is_Number:
                entries[i, j] = entry  # an alias (identity's a = z): no line
            else:
                self.steps.append((entries[i, j], entry))
        self.values[target] = entries

    def call(self, helper: str, arguments: Sequence[sympy.MatrixBase], width: int) -> sympy.Matrix:
        """A helper on a column's units (B=1: the one column), ``width`` results (1: a number)."""
        targets = tuple(self.fresh(helper) for _ in range(width))
        self.steps.append(VectorCall(targets, helper, tuple(tuple(argument) for argument in arguments)))
        return sympy.Matrix(width, 1, targets)

    def value(self, expression: sympy.Expr) -> sympy.Expr | sympy.MatrixBase:
        """``expression``'s value: a Matrix, or a number-like expression that broadcasts (B = 1)."""
        if expression in self.values:
            return self.values[expression]
        if isinstance(expression, batch_size):
            return sympy.S.One  # the scalar path runs one sample
        if not expression.free_symbols:
            return expression
        arguments = [self.value(argument) for argument in expression.args]
        if isinstance(expression, matmul):
            return arguments[0] * arguments[1]
        if isinstance(expression, transpose):
            return arguments[0].T
        if isinstance(expression, batch_sum):  # B = 1: the one column is the sum
            return arguments[0]
        if isinstance(expression, unit_sum):  # named once, not repeated in every unit's line
            (column,) = arguments
            if column.rows == 1:
                return column
            total = self.fresh("sum")
            self.steps.append((total, sympy.Add(*column)))
            return sympy.Matrix([[total]])
        if isinstance(expression, softmax):
            return self.call("softmax", arguments, arguments[0].rows)
        if isinstance(expression, unit_logsumexp):
            return self.call("logsumexp", arguments, 1)
        if isinstance(expression, max_mask):
            return self.call("max_mask", arguments, arguments[0].rows)
        if isinstance(expression, softmax_without_max):
            return self.call("softmax_without_max", arguments, arguments[0].rows)
        return self.elementwise(expression, arguments)

    @staticmethod
    def elementwise(expression: sympy.Expr, arguments: list) -> sympy.Expr | sympy.MatrixBase:
        """``expression``'s operation entry by entry, a 1 x 1 matrix or a number broadcast against the rest."""
        shapes = {argument.shape for argument in arguments if isinstance(argument, sympy.MatrixBase)}
        shapes.discard((1, 1))
        if len(shapes) > 1:
            raise NotImplementedError(f"the scalar path cannot broadcast shapes {sorted(shapes)} in {expression}")
        if not shapes and not any(isinstance(argument, sympy.MatrixBase) for argument in arguments):
            return expression.func(*arguments)
        rows, cols = shapes.pop() if shapes else (1, 1)

        def entry(argument, i: int, j: int):
            if not isinstance(argument, sympy.MatrixBase):
                return argument
            return argument[0, 0] if argument.shape == (1, 1) else argument[i, j]

        return sympy.Matrix(rows, cols, lambda i, j: expression.func(*(entry(a, i, j) for a in arguments)))


def _print_function(
    unroller: _Unroller, steps: Sequence[Step], outputs: Sequence[sympy.MatrixBase]
) -> tuple[Callable, str]:
    """The Python function ``(x, y, *params as nested lists) -> [each output's entries, row by row]``."""
    printer = ScalarPrinter()
    name = printer.doprint
    arguments = [symbol.name for symbol in unroller.inputs]
    lines = [f"def gradients({', '.join(arguments)}):"]
    for symbol, matrix in unroller.inputs.items():  # tolist's nested lists into locals, in one unpacking each
        rows = ", ".join("(" + "".join(f"{name(entry)}, " for entry in matrix.row(i)) + ")" for i in range(matrix.rows))
        lines.append(f"    ({rows},) = {symbol.name}")
    for step in steps:
        if isinstance(step, VectorCall):
            targets = ", ".join(name(target) for target in step.targets)
            vectors = ", ".join("[" + ", ".join(name(entry) for entry in vector) + "]" for vector in step.arguments)
            printer.helpers.add(step.helper)
            unpacked = targets if len(step.targets) == 1 else f"({targets},)"  # a number, or a list unpacked
            lines.append(f"    {unpacked} = {step.helper}({vectors})")
        else:
            target, expression = step
            lines.append(f"    {name(target)} = {name(expression)}")
    returned = ", ".join("[" + ", ".join(name(entry) for entry in output) + "]" for output in outputs)
    lines.append(f"    return [{returned}]")
    source = "\n".join([*printer.header(), "", *lines]) + "\n"
    filename = f"{GENERATED} scalar {next(_function_numbers)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {}
    exec(compile(source, filename, "exec"), namespace)  # our own printed code; no user string is run
    return namespace["gradients"], source


class ScalarGradients:
    """A tiny network's gradients at B=1 over Python floats; built on the first call (SymPy unrolls the
    program then, so compile_gradients costs no more for those who never call at B=1)."""

    def __init__(self, derivation: Derivation):
        self.derivation = derivation
        self._built: dict[bool, tuple[Callable, str, list[tuple[int, ...]]]] = {}

    def _build(self, with_loss: bool) -> tuple[Callable, str, list[tuple[int, ...]]]:
        if with_loss not in self._built:
            program = self.derivation.matrix_program
            unroller = _Unroller(self.derivation)
            for step in program.steps:
                if with_loss or step.target != program.loss:
                    unroller.define(step.target, step.expression)
            targets = [*([program.loss] if with_loss else []), *program.gradients.values()]
            outputs = [unroller.values[target] for target in targets]
            function, source = _print_function(unroller, unroller.steps, outputs)
            shapes = [tuple(output.shape) for output in outputs]
            if with_loss:
                shapes[0] = ()  # the loss: a 0-d tensor
            self._built[with_loss] = (function, source, shapes)
        return self._built[with_loss]

    def source(self, with_loss: bool = False) -> str:
        return self._build(with_loss)[1]

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, params: Sequence[torch.Tensor], with_loss: bool = False
    ) -> list[torch.Tensor] | None:
        """The outputs as tensors of x's dtype, or None where the scalar path does not run (not a float32 or
        float64 CPU tensor) or floats raise where torch gives inf or nan: the caller runs torch's function."""
        numpy_type = _NUMPY_TYPES.get(x.dtype)
        if numpy_type is None or not x.is_cpu:
            return None
        function, _, shapes = self._built.get(with_loss) or self._build(with_loss)
        try:
            values = function(x.tolist(), y.tolist(), *[p.tolist() for p in params])
        except (ArithmeticError, ValueError):  # math's exp overflowed, log(0), a division by zero
            return None
        # through NumPy: one copy, rounded once to the dtype, 1.5 µs an output (torch.tensor(list) takes 3 µs,
        # torch.frombuffer and a view 2 µs)
        return [
            torch.from_numpy(numpy.array(entries, dtype=numpy_type).reshape(shape))
            for entries, shape in zip(values, shapes)
        ]
