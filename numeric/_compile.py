"""compile_gradients: a Derivation's program as a straight-line torch function.

The code is made by ``sympy.lambdify`` with chainrule's printers; the derivation's named intermediates
are handed to lambdify as its common subexpressions (its ``cse`` hook), so the generated function is the
derivation line for line and ``f.source`` reads like it. Two forms:

* ``"matrix"`` (default): one line per layer quantity (z, a, δ, gradient) over whole tensors, with
  ``@`` for products; as fast as a hand-written recursion, at any batch size.
* ``"elementwise"``: one line per unit, as the derivation displays it; for small networks.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import sympy
import torch

from symbolic import Derivation, InputError, InputTypeError, batch_sum

from ._checks import check_inputs
from ._printer import ElementwiseTorchPrinter, MatrixTorchPrinter

FORMS = ("matrix", "elementwise")


class CompiledGradients:
    """``f(x, y, params) -> {name: gradient}``; ``f.value_and_grad`` also returns the loss.

    ``x`` is [n_in, B] and ``y`` [n_out, B] (samples are columns, as in the tutorial's ``torch.mm``);
    every gradient is of the batch loss (summed over the B samples, or their mean with
    ``reduction="mean"``), with its parameter's shape, dtype and device. A derivation made with
    ``wrt=("x",)`` adds ``"x"``: ∂L/∂x, [n_in, B], one column per sample.
    """

    def __init__(self, derivation: Derivation, form: str, gradients_only: Callable, with_loss: Callable | None = None):
        self.derivation = derivation
        self.form = form
        self._gradients_only = gradients_only
        self._with_loss_function = with_loss  # built on first use: most callers never ask for the loss
        self.names = tuple(derivation.matrix_program.gradients)  # the parameters, then "x" when asked

    @property
    def _with_loss(self) -> Callable:
        if self._with_loss_function is None:
            self._with_loss_function = _BUILDERS[self.form](self.derivation, with_loss=True)
        return self._with_loss_function

    @property
    def source(self) -> str:
        """The generated Python source of the gradient function."""
        return inspect.getsource(self._gradients_only)

    @property
    def value_and_grad_source(self) -> str:
        return inspect.getsource(self._with_loss)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ordered = check_inputs(self.derivation.network, x, y, params)
        return dict(zip(self.names, self._gradients_only(x, y, *ordered)))

    def value_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ordered = check_inputs(self.derivation.network, x, y, params)
        loss, *gradients = self._with_loss(x, y, *ordered)
        return loss.reshape(()), dict(zip(self.names, gradients))

    def __repr__(self) -> str:
        return f"CompiledGradients({self.derivation.network.describe()}, form={self.form!r})"


def _lambdify(arguments, outputs, steps, printer) -> Callable:
    # lambdify's cse hook takes (replacements, reduced outputs): our program is exactly that
    return sympy.lambdify(
        arguments, outputs, modules=[{"torch": torch}], printer=printer, cse=lambda _: (steps, outputs)
    )


def _compile_matrix(derivation: Derivation, with_loss: bool) -> Callable:
    program = derivation.matrix_program
    steps = [(step.target, step.expression) for step in program.steps]
    gradients = list(program.gradients.values())
    if with_loss:
        return _lambdify(program.inputs, [program.loss, *gradients], steps, MatrixTorchPrinter())
    without_loss = [line for line in steps if line[0] != program.loss]
    return _lambdify(program.inputs, gradients, without_loss, MatrixTorchPrinter())


def _elementwise_names(derivation: Derivation) -> dict[sympy.Symbol, str]:
    """Code names: inputs index their tensor (``W1[0, 1]``, ``x[0]``), intermediates get identifiers."""
    names: dict[sympy.Symbol, str] = {}
    for name, matrix in derivation.symbols.items():
        for i in range(matrix.rows):
            for j in range(matrix.cols):
                vector = name in ("x", "y")  # one row of the batch: a [B] tensor
                names[matrix[i, j]] = f"{name}[{i}]" if vector else f"{name}[{i}, {j}]"
    for symbol, _ in derivation.program:
        base, index = str(symbol).rstrip("]").split("[")
        names[symbol] = f"{base}_{index}"
    return names


def _compile_elementwise(derivation: Derivation, with_loss: bool) -> Callable:
    printer = ElementwiseTorchPrinter(_elementwise_names(derivation))
    arguments = derivation.matrix_program.inputs  # the plain names x, y, W1, ...
    outputs = [derivation.gradient_definitions[name].applyfunc(batch_sum) for name in derivation.parameters]
    if with_loss:
        outputs.insert(0, batch_sum(derivation.loss_definition))
    return _lambdify(arguments, outputs, list(derivation.program), printer)


_BUILDERS = {"matrix": _compile_matrix, "elementwise": _compile_elementwise}


def compile_gradients(derivation: Derivation, form: str = "matrix") -> CompiledGradients:
    """Compile ``derivation`` into a torch function ``f(x, y, params) -> {name: gradient}``."""
    if not isinstance(derivation, Derivation):
        raise InputTypeError(
            f"compile_gradients takes a Derivation (from symbolic.derive); got {type(derivation).__name__}"
        )
    if form not in FORMS:
        raise InputError(f"unknown form {form!r}; allowed: {', '.join(FORMS)}")
    if derivation.wrt and form != "matrix":
        raise InputError(f"gradients with respect to {', '.join(derivation.wrt)} are compiled in the matrix form only")
    return CompiledGradients(derivation, form, _BUILDERS[form](derivation, with_loss=False))
