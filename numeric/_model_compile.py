"""A Model's gradient program compiled to a straight-line torch function (``compile_gradients(model)``).

The program (``symbolic._model_program``) is printed line by line by ``LayerTorchPrinter`` and made into one
function by ``_straight_line._straight_line``, as a dense network's is: each intermediate deleted after its last use,
a dying buffer reused in place where the operation allows. Views (a transpose, a flatten, a per-channel γ)
share their tensor's memory, so neither name is ever written in place. Steps that no output reads (the loss,
when only the gradients are asked for) are left out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

import sympy
import torch

from symbolic import InputError, InputTypeError
from symbolic._functions import transpose
from symbolic._layer_ops import VIEWS
from symbolic._model import Model
from symbolic._model_program import ModelProgram, derive_model_program

from ._compiled import _backend_function, _source_of
from ._layer_printer import LayerTorchPrinter
from ._straight_line import _straight_line


def _live_steps(program: ModelProgram, outputs: list[sympy.Symbol]) -> list[tuple[sympy.Symbol, sympy.Expr]]:
    """The steps some output needs, in program order (a backward walk over what each step reads)."""
    needed = set(outputs)
    live = []
    for step in reversed(program.steps):
        if step.target in needed:
            live.append((step.target, step.expression))
            needed |= step.expression.free_symbols
    return live[::-1]


def _views(steps: list[tuple[sympy.Symbol, sympy.Expr]]) -> frozenset[sympy.Symbol]:
    """Every name that shares memory with another: the target of a view and the tensor it views."""
    shared: set[sympy.Symbol] = set()
    for target, expression in steps:
        if isinstance(expression, (transpose, *VIEWS)):
            shared |= {target, *expression.args[0].free_symbols}
    return frozenset(shared)


def _build(program: ModelProgram, with_loss: bool) -> Callable:
    outputs = [*([program.loss] if with_loss else []), *program.gradients.values()]
    steps = _live_steps(program, outputs)
    printer = LayerTorchPrinter({step.expression: step.same_shape for step in program.steps if step.same_shape})
    return _straight_line(program.inputs, outputs, steps, printer, aliased_also=_views(steps))


class CompiledModelGradients:
    """``f(x, y, params, masks=None) -> {name: gradient}`` for a Model; ``f.value_and_grad`` adds the loss.

    Samples are rows, as torch feeds them: x is [B, *input_shape], y [B, n]; ``params`` maps the model's
    parameter names (W1, b1, gamma2, ...) to tensors of their torch shapes; ``masks`` maps the dropout masks
    (mask1, ...) to [B, *shape] tensors of 0 and 1. Every gradient has its parameter's shape; with
    ``wrt=("x",)`` ``"x"`` is ∂L/∂x, shaped like x. The gradients are plain values (no autograd recording).
    """

    def __init__(self, program: ModelProgram, backend: str | None = None):
        self.program = program
        self.model = program.model
        self.backend = backend
        self.form = "matrix"
        self.names = tuple(program.gradients)
        self._gradients_only = _build(program, with_loss=False)
        self._run_gradients = _backend_function(self._gradients_only, backend)
        self._with_loss: Callable | None = None
        self._run_with_loss: Callable | None = None

    @property
    def source(self) -> str:
        """The generated Python source of the gradient function, with its header."""
        return _source_of(self._gradients_only)

    @property
    def value_and_grad_source(self) -> str:
        return _source_of(self._loss_function())

    def _loss_function(self) -> Callable:
        if self._with_loss is None:
            self._with_loss = _build(self.program, with_loss=True)
        return self._with_loss

    def _arguments(self, x: object, y: object, params: object, masks: object) -> tuple[list[torch.Tensor], bool]:
        """x, y, the parameters and the masks in program order, checked; and whether any requires grad."""
        model = self.model
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise InputTypeError(f"x and y must be torch.Tensors; got {type(x).__name__} and {type(y).__name__}")
        if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
            raise InputTypeError(f"x must hold float32 or float64 numbers; got {x.dtype}")
        if x.ndim != 1 + len(model.input_shape) or tuple(x.shape[1:]) != model.input_shape or x.shape[0] < 1:
            expected = ", ".join(map(str, ("B", *model.input_shape)))
            raise InputError(f"x has shape {list(x.shape)}; expected [{expected}] (one sample per row)")
        batch = x.shape[0]
        tensors = [x, y]
        expected_shapes: dict[str, tuple[int, ...]] = {"y": (batch, model.output_size)}
        named: dict[str, object] = {"y": y}
        for what, given, shapes in (
            ("params", params, model.parameter_shapes),
            ("masks", {} if masks is None else masks, {k: (batch, *s) for k, s in model.mask_shapes.items()}),
        ):
            if not isinstance(given, Mapping):
                raise InputTypeError(f"{what} must map names to tensors; got {type(given).__name__}")
            missing, extra = set(shapes) - set(given), set(given) - set(shapes)
            if missing or extra:
                parts = [
                    f"missing {', '.join(sorted(missing))}" if missing else "",
                    f"unknown {', '.join(sorted(extra))}" if extra else "",
                ]
                raise InputError(f"{what}: {'; '.join(p for p in parts if p)} (expected {', '.join(shapes) or 'none'})")
            named.update({name: given[name] for name in shapes})
            expected_shapes.update(shapes)
        for name, value in named.items():
            if not isinstance(value, torch.Tensor):
                raise InputTypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
            if tuple(value.shape) != tuple(expected_shapes[name]):
                raise InputError(f"{name} has shape {list(value.shape)}; expected {list(expected_shapes[name])}")
            if value.dtype != x.dtype or value.device != x.device:
                raise InputTypeError(f"{name} is {value.dtype} on {value.device}; x is {x.dtype} on {x.device}")
            if name != "y":
                tensors.append(value)
        return tensors, any(t.requires_grad for t in tensors)

    def _run(self, function: Callable, arguments: list[torch.Tensor], recorded: bool) -> list[torch.Tensor]:
        # a tensor that requires grad would make autograd record the code and refuse its in-place writes
        with torch.no_grad() if recorded else contextlib.nullcontext():
            return function(*arguments)

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor], masks: Mapping | None = None
    ) -> dict[str, torch.Tensor]:
        arguments, recorded = self._arguments(x, y, params, masks)
        return dict(zip(self.names, self._run(self._run_gradients, arguments, recorded)))

    def value_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor], masks: Mapping | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        arguments, recorded = self._arguments(x, y, params, masks)
        if self._run_with_loss is None:
            self._run_with_loss = _backend_function(self._loss_function(), self.backend)
        loss, *gradients = self._run(self._run_with_loss, arguments, recorded)
        return loss.reshape(()), dict(zip(self.names, gradients))

    def __repr__(self) -> str:
        backend = "" if self.backend is None else f", backend={self.backend!r}"
        return f"CompiledModelGradients({self.model!r}{backend})"


def compile_model(
    model: Model | ModelProgram, form: str = "matrix", backend: str | None = None
) -> CompiledModelGradients:
    """``compile_gradients`` for a Model (or a ModelProgram made with ``wrt=("x",)``)."""
    if form != "matrix":
        raise InputError(f"a Model's gradients are compiled in the matrix form only; got form={form!r}")
    if backend not in (None, "inductor"):
        raise InputError(f"a Model's gradients run with backend None or 'inductor'; got {backend!r}")
    program = derive_model_program(model) if isinstance(model, Model) else model
    return CompiledModelGradients(program, backend)


def model_gradients(
    model: Model,
    params: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    wrt: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """``numeric.gradients`` for a Model: its compiled gradients at (inputs, targets), rows as samples; class
    indices (an integer [B] tensor) stand for one-hot rows where the loss takes a distribution."""
    if isinstance(targets, torch.Tensor) and isinstance(inputs, torch.Tensor) and not targets.is_floating_point():
        n = model.output_size
        if model.loss_rule.targets != "distribution" or targets.ndim != 1:
            raise InputError(f"targets must be float [B, {n}]; class indices [B] only for a loss on a distribution")
        if targets.numel() and (targets.min() < 0 or targets.max() >= n):
            raise InputError(f"class-index targets must lie in 0..{n - 1}")
        targets = torch.nn.functional.one_hot(targets.long(), n).to(inputs.dtype)
    return compile_model(derive_model_program(model, wrt))(inputs, targets, params, masks)
