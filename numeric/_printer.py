"""SymPy → torch code: subclasses of SymPy's TorchPrinter.

SymPy 1.14's printer prints element-wise functions as ``Lambda(...)`` and transposes as
``torch.transpose(A).t()``, neither of which runs, and knows no sigmoid (shared/design-notes.md).
Instead of patching its output we subclass it: ``_print_<Class>`` methods for chainrule's functions,
dispatched on the class the way SymPy's own printers are, and one table for the plain function names.
"""

from __future__ import annotations

from typing import ClassVar

import sympy
from sympy.printing.pytorch import TorchPrinter

from symbolic import matmul, relu, sigmoid, softplus

# The sympy → torch map for chainrule's own element-wise functions (SymPy's table covers tanh, exp, log).
TORCH_FUNCTIONS = {
    sigmoid: "torch.sigmoid",
    relu: "torch.relu",
    softplus: "torch.nn.functional.softplus",
}


# torch's fused kernels for g ⊙ f'(z), by activation (the same formulas as the table's derivatives;
# tests/test_printer.py checks each against the product). Others print their product.
TORCH_BACKWARD = {
    "sigmoid": "torch.ops.aten.sigmoid_backward({g}, {a})",
    "tanh": "torch.ops.aten.tanh_backward({g}, {a})",
    "relu": "torch.ops.aten.threshold_backward({g}, {z}, 0)",
    "softplus": "torch.ops.aten.softplus_backward({g}, {z}, 1, 20)",
}


class MatrixTorchPrinter(TorchPrinter):
    """Prints the matrix program: every symbol is a whole tensor, ``*`` is element-wise."""

    printmethod = "_chainrule_torch"
    mapping: ClassVar[dict] = {**TorchPrinter.mapping, **TORCH_FUNCTIONS}

    def _print_Pow(self, expr):
        base, exponent = expr.args
        if exponent.is_Integer and exponent > 0:
            return f"{self.parenthesize(base, 60)}**{exponent}"
        if exponent == -1:
            return f"1/{self.parenthesize(base, 60)}"
        return super()._print_Pow(expr)

    def _print_ActivationBackwardBase(self, expr):
        template = TORCH_BACKWARD.get(expr.activation)
        if template is None:
            return self._print(expr.doit())
        upstream, z, a = (self._print(arg) for arg in expr.args)
        return template.format(g=upstream, z=z, a=a)

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

    def _print_softmax(self, expr):
        return f"torch.softmax({self._print(expr.args[0])}, dim=0)"

    def _print_unit_logsumexp(self, expr):
        return f"torch.logsumexp({self._print(expr.args[0])}, 0, keepdim=True)"

    def _print_batch_size(self, expr):
        # B of reduction="mean": the argument is always the whole x argument, [n_in, B], in both forms
        return f"{self.parenthesize(expr.args[0], 999)}.shape[1]"

    def _print_matmul(self, expr):
        left, right = expr.args
        return f"({self._print(left)} @ {self._print(right)})"

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

    def _print_logsumexp(self, expr):
        stacked = ", ".join(self._print(argument) for argument in expr.args)
        return f"torch.logsumexp(torch.stack([{stacked}]), 0)"

    def _print_MatrixBase(self, expr):
        rows = ", ".join(
            "torch.stack([" + ", ".join(self._print(v) for v in expr.row(i)) + "])" for i in range(expr.rows)
        )
        return f"torch.stack([{rows}])"
