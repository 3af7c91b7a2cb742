"""SymPy → torch code: subclasses of SymPy's TorchPrinter.

SymPy 1.14's printer prints element-wise functions as ``Lambda(...)`` and transposes as
``torch.transpose(A).t()``, neither of which runs, and knows no sigmoid.
Instead of patching its output we subclass it: ``_print_<Class>`` methods for chainrule's functions,
dispatched on the class the way SymPy's own printers are, and one table for the plain function names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, NamedTuple

import sympy
from sympy.printing.pytorch import TorchPrinter

from symbolic import matmul, transpose
from symbolic._functions import (
    USER_NAMESPACE,
    ActivationBackwardBase,
    elu,
    gelu,
    leaky_relu,
    relu,
    sigmoid,
    silu,
    softplus,
)

# The sympy → torch map for chainrule's own element-wise functions (SymPy's table covers tanh, exp, log).
# A defined function without a row here (a user's Activation.define) prints its definition. Keys are the
# classes themselves, never names: a user's function (its class named in USER_NAMESPACE) matches none.
# softplus is not here: torch's softplus returns z itself above its threshold (20), off by up to e^-20
# from log(1 + e^z); ``_print_DefinedFunctionBase`` writes it as logaddexp(z, 0), exact for every z.
TORCH_FUNCTIONS = {
    sigmoid: "torch.sigmoid",
    relu: "torch.relu",
    silu: "torch.nn.functional.silu",
    elu: "torch.nn.functional.elu",  # alpha = 1, as the table's row
    leaky_relu: "torch.nn.functional.leaky_relu",  # negative_slope = 0.01, as the table's row
    gelu: "torch.nn.functional.gelu",  # the exact erf form
}


class FusedKernel(NamedTuple):
    """torch's fused kernel for g ⊙ f'(z): its aten name and its arguments in order, each either an operand of
    the local step (``"g"``, ``"z"`` or ``"a"``, printed from the expression) or one of torch's constants (a
    number or a bool, printed as is). What the kernel reads is this data, never parsed from printed text."""

    kernel: str
    arguments: tuple[str | float | bool, ...]

    @property
    def reads(self) -> tuple[str, ...]:
        """The operands the kernel reads, in order ("g" and one of "z", "a")."""
        return tuple(argument for argument in self.arguments if isinstance(argument, str))

    def call(self, operands: Mapping[str, str]) -> str:
        """The kernel's arguments printed: each operand's code from ``operands``, each constant as Python."""
        return ", ".join(operands[a] if isinstance(a, str) else repr(a) for a in self.arguments)


# torch's fused kernels for g ⊙ f'(z), by activation, the same formulas as the table's derivatives
# (tests/test_compile.py checks each, constants included, against the product); others print their product.
# Each reads a rather than z where it can: then z is dead once a = f(z) is made, and f runs in place.
# relu reads a too: a = relu(z) > 0 exactly where z > 0, and threshold_backward zeroes where its input ≤ 0.
# softplus has none: softplus_backward(g, z, 1, 20) takes the derivative as exactly 1 above z = 20, where
# σ(z) = 1 − e^-z; its product g ⊙ σ(z) is printed instead.
TORCH_BACKWARD = {
    "sigmoid": FusedKernel("sigmoid_backward", ("g", "a")),
    "tanh": FusedKernel("tanh_backward", ("g", "a")),
    "relu": FusedKernel("threshold_backward", ("g", "a", 0)),  # threshold 0
    "silu": FusedKernel("silu_backward", ("g", "z")),
    "gelu": FusedKernel("gelu_backward", ("g", "z")),
    "elu": FusedKernel("elu_backward", ("g", 1.0, 1, 1, False, "z")),  # alpha, scale, input_scale, is_result
    "leaky_relu": FusedKernel("leaky_relu_backward", ("g", "z", 0.01, False)),  # negative_slope, self_is_result
}

_OPERANDS = ("g", "z", "a")  # the arguments of an ActivationBackwardBase expression, in order: g ⊙ f'(z), a = f(z)

# In-place forms of the forward functions, used when the pre-activation z is not needed again.
TORCH_IN_PLACE = {
    "torch.sigmoid": "torch.sigmoid_",
    "torch.tanh": "torch.tanh_",
    "torch.relu": "torch.relu_",
}


# Names the generated code binds once, in a header above the function (f.source shows it). A call through
# such a name skips the attribute look-ups of torch.ops.aten.<kernel>.<overload> and, for products,
# Tensor.__matmul__'s Python wrapper: about 3 µs of the tutorial's 20 µs call. name -> (what, comment).
def _kernel_alias(activation: str, out: bool) -> tuple[str, tuple[str, str]]:
    """The alias of ``activation``'s fused kernel (``out``: its grad_input overload) -> (what, comment)."""
    kernel = TORCH_BACKWARD[activation].kernel
    name, overload = (f"{kernel}_into", "grad_input") if out else (kernel, "default")
    reads = "a" if "a" in TORCH_BACKWARD[activation].reads else "z"  # the rest of the arguments are torch's constants
    comment = f"{name}(g, {reads}, ...) = g ⊙ {activation}'(z)" + (f", a = {activation}(z)" if reads == "a" else "")
    return name, (f"torch.ops.aten.{kernel}.{overload}", comment + (", written into grad_input" if out else ""))


ALIASES = {
    "mm_t": ("torch.nn.functional.linear", "mm_t(u, v) = u @ v.T in one call"),
    **dict(_kernel_alias(activation, out=True) for activation in TORCH_BACKWARD),
    **dict(_kernel_alias(activation, out=False) for activation in TORCH_BACKWARD),
}


def alias_namespace() -> dict[str, object]:
    """Every alias bound to its torch object (for code printed outside the generated header, e.g. lambdify)."""
    import torch

    def resolve(path: str) -> object:
        value: object = torch
        for part in path.split(".")[1:]:
            value = getattr(value, part)
        return value

    return {name: resolve(path) for name, (path, _) in ALIASES.items()}


class MatrixTorchPrinter(TorchPrinter):
    """Prints the matrix program: every symbol is a whole tensor, ``*`` is element-wise.

    ``used`` collects the ALIASES the printed code calls, for the header that binds them.
    """

    printmethod = "_chainrule_torch"
    mapping: ClassVar[dict] = {**TorchPrinter.mapping, **TORCH_FUNCTIONS}

    def __init__(self, settings=None):
        super().__init__(settings)
        self.used: set[str] = set()

    def _alias(self, name: str) -> str:
        self.used.add(name)
        return name

    def header(self) -> list[str]:
        """``import torch`` and the lines binding the aliases used so far, in the table's order: the source
        runs as it is when copied into a file."""
        aliases = [f"{name} = {ALIASES[name][0]}  # {ALIASES[name][1]}" for name in ALIASES if name in self.used]
        return ["import torch", *aliases]

    def _print_DefinedFunctionBase(self, expr):
        if type(expr) in self.mapping:
            return self._print_Function(expr)
        if type(expr) is softplus:
            # log(1 + e^z) = logaddexp(z, 0): exact and finite for every z (a 0-d zero, broadcast)
            argument = self.parenthesize(expr.args[0], 999)
            return f"torch.logaddexp({argument}, {argument}.new_zeros(()))"
        # parenthesised: the call stands for one factor (−f(u) must negate all of f's definition)
        return f"({self._print(type(expr).definition(expr.args[0]))})"

    @staticmethod
    def fused_kernel(expr: ActivationBackwardBase) -> FusedKernel | None:
        """torch's fused kernel for chainrule's own activation ``expr`` belongs to; None for a user's
        (its class is named in USER_NAMESPACE, whatever the user called it) or one without a kernel."""
        if type(expr).__name__.startswith(USER_NAMESPACE):
            return None
        return TORCH_BACKWARD.get(expr.activation)

    def _print_Piecewise(self, expr):
        # torch.where on Python numbers makes default-dtype (float32) tensors: a number branch takes the
        # dtype and shape of the tensor its condition tests (leaky_relu' = 0.01 stays float64)
        (reference,) = sorted(expr.args[0].cond.free_symbols, key=str)[:1]
        like = self._print(reference)

        def branch(value):
            return f"torch.full_like({like}, {float(value)!r})" if value.is_number else self._print(value)

        result = branch(expr.args[-1].expr)
        for piece in reversed(expr.args[:-1]):
            result = f"torch.where({self._print(piece.cond)}, {branch(piece.expr)}, {result})"
        return result

    def _print_Pow(self, expr):
        if expr.is_number and not expr.exp.is_Integer:  # √2 in gelu': a float, not torch.sqrt of an int
            return self._print(expr.evalf(17))
        base, exponent = expr.args
        if exponent.is_Integer and exponent > 0:
            return f"{self.parenthesize(base, 60)}**{exponent}"
        if exponent == -1:
            return f"1/{self.parenthesize(base, 60)}"
        return super()._print_Pow(expr)

    def _print_ActivationBackwardBase(self, expr, into: sympy.Symbol | None = None):
        kernel = self.fused_kernel(expr)
        if kernel is None and self._softplus_backward(expr):
            # g ⊙ σ(z) with one new buffer, as a fused kernel (the product form would allocate σ(z) and
            # then the product); into z itself when z dies here, σ computed in place
            upstream, z = self._print(expr.args[0]), self.parenthesize(expr.args[1], 999)
            sigmoid_of_z = f"torch.sigmoid_({z})" if into is not None else f"torch.sigmoid({z})"
            return f"{sigmoid_of_z}.mul_({upstream})"
        if kernel is None:
            return self._print(expr.doit())
        arguments = kernel.call(dict(zip(_OPERANDS, (self._print(arg) for arg in expr.args))))
        if into is None:
            return f"{self._alias(kernel.kernel)}({arguments})"
        # the aten out= overload: the result goes into a dead buffer of the same shape, no new allocation
        return f"{self._alias(kernel.kernel + '_into')}({arguments}, grad_input={self._print(into)})"

    @staticmethod
    def _softplus_backward(expr: ActivationBackwardBase) -> bool:
        """Whether ``expr`` is g ⊙ softplus'(z) of chainrule's own softplus (whose derivative is σ)."""
        return expr.activation == "softplus" and not type(expr).__name__.startswith(USER_NAMESPACE)

    def reads(self, expr: sympy.Basic) -> set[sympy.Symbol]:
        """The symbols ``expr``'s printed code reads: a fused kernel reads a or z, not both."""
        if not expr.has(ActivationBackwardBase):
            return set(expr.free_symbols)
        if isinstance(expr, ActivationBackwardBase):
            if self.fused_kernel(expr) is None:
                return self.reads(expr.doit())
            reads = self.fused_kernel(expr).reads
            return set().union(*(self.reads(arg) for arg, operand in zip(expr.args, _OPERANDS) if operand in reads))
        return set().union(*(self.reads(arg) for arg in expr.args))

    def print_into(self, expr: sympy.Expr, buffers: frozenset[sympy.Symbol]) -> str:
        """``expr``'s code, writing its result into one of ``buffers`` when torch can.

        ``buffers`` are intermediates of the result's shape that die on this line (nothing reads them
        after it). Only the outermost operation reuses one: its arguments are all evaluated before it runs,
        and its element-wise kernel reads each element before writing the same element.
        """
        if isinstance(expr, ActivationBackwardBase) and self.fused_kernel(expr) is not None:
            reads = self.fused_kernel(expr).reads
            read = [arg for arg, operand in zip(expr.args, _OPERANDS) if operand in reads]
            into = next((arg for arg in read if arg in buffers), None)
            if into is not None:
                return self._print_ActivationBackwardBase(expr, into)
        if isinstance(expr, ActivationBackwardBase) and self._softplus_backward(expr) and expr.args[1] in buffers:
            return self._print_ActivationBackwardBase(expr, expr.args[1])  # σ written over z, which dies here
        if isinstance(expr, sympy.Function) and len(expr.args) == 1 and expr.args[0] in buffers:
            printed = self._print(expr)
            function = printed.split("(", 1)[0]
            if function in TORCH_IN_PLACE:
                return TORCH_IN_PLACE[function] + printed[len(function) :]
        return self._print(expr)

    def _print_Add(self, expr, order=None):
        # b + W @ a as one fused torch.addmm
        products = [arg for arg in expr.args if isinstance(arg, matmul)]
        if len(expr.args) == 2 and len(products) == 1:
            (other,) = [arg for arg in expr.args if arg is not products[0]]
            left, right = products[0].args
            return f"torch.addmm({self._print(other)}, {self._print(left)}, {self._print(right)})"
        return super()._print_Add(expr, order)

    def _print_step(self, expr):
        # relu'(z): 1 where z > 0, else 0 (torch's relu has gradient 0 at 0 too)
        argument = self.parenthesize(expr.args[0], 60)
        return f"({argument} > 0).to({argument}.dtype)"

    def _print_max_mask(self, expr):
        z = self._print(expr.args[0])
        return f"torch.zeros_like({z}).scatter_(0, {z}.argmax(0, keepdim=True), 1.0)"

    def _print_softmax_without_max(self, expr):
        z, mask = (self._print(argument) for argument in expr.args)
        return f"torch.softmax({z}.masked_fill({mask}.bool(), float('-inf')), dim=0)"

    def _print_softmax(self, expr):
        return f"torch.softmax({self._print(expr.args[0])}, dim=0)"

    def _print_unit_logsumexp(self, expr):
        return f"torch.logsumexp({self._print(expr.args[0])}, 0, keepdim=True)"

    def _print_batch_size(self, expr):
        # B of reduction="mean": the argument is always the whole x argument, [n_in, B], in both forms
        return f"{self.parenthesize(expr.args[0], 999)}.shape[1]"

    def _print_matmul(self, expr):
        left, right = expr.args
        if isinstance(right, transpose):  # δ aᵀ: one call, no transposed view made first
            return f"{self._alias('mm_t')}({self._print(left)}, {self._print(right.args[0])})"
        return f"torch.mm({self._print(left)}, {self._print(right)})"  # not @: Tensor.__matmul__ wraps it

    def _print_transpose(self, expr):
        return f"{self.parenthesize(expr.args[0], 999)}.T"

    def _print_unit_sum(self, expr):
        return f"{self.parenthesize(expr.args[0], 999)}.sum(0, keepdim=True)"

    def _print_batch_sum(self, expr):
        return f"{self.parenthesize(expr.args[0], 999)}.sum(1, keepdim=True)"


class ElementwiseTorchPrinter(MatrixTorchPrinter):
    """Prints the per-scalar program: each symbol is one unit across the batch (a [B] tensor).

    Entries of the inputs print as indexing (``W1[0, 1]``, ``x[0]``), intermediates as plain names.
    """

    printmethod = "_chainrule_torch_elementwise"

    def __init__(self, names: dict[sympy.Symbol, str], settings=None):
        super().__init__(settings)
        self.names = names

    def _print_Symbol(self, expr):
        return self.names.get(expr) or super()._print_Symbol(expr)

    def _print_batch_sum(self, expr):
        return f"{self.parenthesize(expr.args[0], 999)}.sum(-1)"

    def _print_stacked(self, expr):
        return f"torch.stack([{', '.join(self._print(unit) for unit in expr.args)}])"

    def _print_unit_of(self, expr):
        matrix, index = expr.args
        return f"{self._print(matrix)}[{index}]"

    def _print_unit_logsumexp(self, expr):  # one value per sample, a [B] tensor as every unit's line
        return f"torch.logsumexp({self._print(expr.args[0])}, 0)"

    def _print_logsumexp(self, expr):
        stacked = ", ".join(self._print(argument) for argument in expr.args)
        return f"torch.logsumexp(torch.stack([{stacked}]), 0)"

    def _print_MatrixBase(self, expr):
        rows = ", ".join(
            "torch.stack([" + ", ".join(self._print(v) for v in expr.row(i)) + "])" for i in range(expr.rows)
        )
        return f"torch.stack([{rows}])"
