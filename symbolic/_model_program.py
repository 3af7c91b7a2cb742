"""A Model's gradient program: forward, loss, then each layer's vector-Jacobian product, over whole tensors.

Samples are ROWS here, as in torch (x is [B, *input_shape]). Each layer's forward and backward is written with
program operations (``_functions``: matmul, transpose; ``_layer_ops``: the rest), each the textbook form:

* Linear      y = a Wᵀ + b;          ∂a = g W,  ∂W = gᵀ a,  ∂b = Σ_b g
* activation  a = f(z);              ∂z = g ⊙ f'(z)  (``Activation.matrix_forward`` / ``matrix_backward``)
* LayerNorm, BatchNorm  y = γ ⊙ x̂ + β;  ∂x = (1/σ̂)(ĝ − mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂)), ĝ = γ ⊙ g; ∂γ = Σ g ⊙ x̂, ∂β = Σ g
* Conv        the correlation; ∂x the transposed convolution (flipped kernel), ∂W the correlation of x with g
* Max/Avg pool  routing to the arg-max; g/|K| spread over each window
* Flatten     reshape back;  Dropout  y = m ⊙ a/(1 − p), ∂a = m ⊙ g/(1 − p);  Residual  ∂x = g + ∂x of the block

The loss is the dense program's (``_rules.Loss``, ``_matrix.STABLE_OUTPUT_DELTAS``, ``reduction_scale``): those
rules are written for [units, batch] columns, so the output is transposed once (a view) and the output δ is
transposed back; the softmax/sigmoid + loss output δ is the same finite form as the dense program's.
Names: a layer's output is named by its kind and position (``z3`` a Linear or Conv, ``a4`` an activation,
``n2`` a norm, ``p5`` a pooling, ``f6`` flatten, ``d7`` dropout, ``r4`` a residual sum); ``grad_<name>`` is
∂L/∂<name>; parameter gradients are ``grad_W1``, ``grad_gamma2``, ...
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

import sympy
from sympy import Symbol

from ._errors import NetworkError, NetworkTypeError
from ._functions import batch_sum, matmul, transpose
from ._layer_ops import (
    along_channels,
    avg_pool,
    axis_mean,
    axis_sum,
    conv,
    conv_input_grad,
    conv_weight_grad,
    flatten_sample,
    integers,
    norm_backward,
    pool_argmax,
    route_to_argmax,
    spread_over_windows,
    take_at,
    unflatten_sample,
)
from ._matrix import STABLE_OUTPUT_DELTAS, matrix_symbol, reduction_scale
from ._model import Act, BatchNorm, Conv, Dropout, Flatten, LayerNorm, Linear, Model, Placed, Pool, Residual
from ._rules import ACTIVATIONS, Activation
from ._simplify import smallest


class ModelRole(enum.Enum):
    """What a step of a model's program holds (how a reader finds a quantity, whatever its name)."""

    FORWARD = "forward"  # a layer's output
    SAVED = "saved"  # an intermediate of a layer's forward that its backward reads (x̂, 1/σ̂, the arg-max)
    OUTPUT = "output"  # the output (and y) as [n, B] columns, the layout of the loss rules
    LOSS = "loss"
    DELTA = "delta"  # ∂L/∂(the output layer's input), as columns
    DELTA_PART = "delta part"  # a named part of the output δ (the stable softmax + bce form's mask, ratio)
    UPSTREAM = "upstream"  # ∂L/∂(a layer's input), or a part of it (ĝ = γ ⊙ g)
    GRAD = "grad"  # ∂L/∂ a parameter
    GRAD_X = "grad x"  # ∂L/∂x, when asked


@dataclass(frozen=True)
class ModelStep:
    """One line of a model's program: ``target = expression``; ``layer`` is the position ("3", "4_2") of the
    layer it belongs to ("" for the loss), ``kind`` that layer's class name."""

    target: Symbol
    expression: sympy.Expr
    role: ModelRole
    layer: str
    kind: str
    # the operands of a sum or product that have the result's own shape (a residual's x and block(x), g in
    # γ ⊙ g): compiled code may write the result into one of them that is not read again
    same_shape: tuple[Symbol, ...] = ()


@dataclass(frozen=True)
class ModelProgram:
    """The gradient program of ``model``: inputs (x, y, the parameters in model order, the dropout masks),
    steps, the loss's symbol and the gradients (name -> target, the parameters then "x" when asked)."""

    model: Model
    wrt: tuple[str, ...]
    inputs: tuple[Symbol, ...]
    steps: tuple[ModelStep, ...]
    loss: Symbol
    gradients: Mapping[str, Symbol]

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.model.parameter_shapes)

    @property
    def masks(self) -> tuple[str, ...]:
        return tuple(self.model.mask_shapes)

    def steps_of(self, layer: str) -> tuple[ModelStep, ...]:
        """Every step of the layer at ``layer`` (its position), forward and backward."""
        return tuple(step for step in self.steps if step.layer == layer)


def _exact(value: float) -> sympy.Rational:
    """A float option (ε, p) as the exact rational of its decimal text: printed as a division of integers,
    which Python rounds to that same float."""
    return sympy.Rational(repr(float(value)))


@dataclass
class _Record:
    """What a layer's backward needs from its forward."""

    placed: Placed
    input: Symbol
    output: Symbol
    saved: dict[str, sympy.Expr]
    block: list[_Record] | None = None  # a residual's block, in forward order


class _Builder:
    def __init__(self, model: Model, wrt: tuple[str, ...]):
        self.model = model
        self.wrt = wrt
        self.steps: list[ModelStep] = []
        self.params = {name: matrix_symbol(name) for name in model.parameter_shapes}
        self.masks = {name: matrix_symbol(name) for name in model.mask_shapes}
        self.gradients: dict[str, Symbol] = {}
        # whether a layer's input gradient is needed: a layer with parameters comes before it, or x is asked
        self.needs_input_gradient: dict[str, bool] = {}
        seen = "x" in wrt
        for placed in model.placed:
            self.needs_input_gradient[placed.position] = seen
            seen = seen or bool(placed.parameters)

    def emit(self, name: str, expression: sympy.Expr, role: ModelRole, placed: Placed | None, same_shape=()) -> Symbol:
        target = matrix_symbol(name)
        layer, kind = ("", "") if placed is None else (placed.position, type(placed.layer).__name__)
        self.steps.append(ModelStep(target, expression, role, layer, kind, tuple(same_shape)))
        return target

    # -- forward ------------------------------------------------------------------------------------------

    def forward(self, placed_iter: Iterator[Placed], count: int, value: Symbol) -> tuple[list[_Record], Symbol]:
        records = []
        for _ in range(count):
            placed = next(placed_iter)
            record = self.forward_layer(placed, placed_iter, value)
            records.append(record)
            value = record.output
        return records, value

    def forward_layer(self, placed: Placed, placed_iter: Iterator[Placed], a: Symbol) -> _Record:
        layer, at = placed.layer, placed.position
        saved: dict[str, sympy.Expr] = {}
        emit = lambda name, e, role=ModelRole.FORWARD: self.emit(name, e, role, placed)  # noqa: E731
        p = self.params
        if isinstance(layer, Linear):
            number = placed.number
            pre = matmul(a, transpose(p[f"W{number}"]))  # y = a Wᵀ + b (rows)
            out = emit(f"z{at}", pre + p[f"b{number}"] if layer.bias else pre)
        elif isinstance(layer, Act):
            out = emit(f"a{at}", layer.rule.matrix_forward(a))
        elif isinstance(layer, (LayerNorm, BatchNorm)):
            axes, scale, shift = self._norm_axes(placed)
            centred = emit(f"xc{at}", a - axis_mean(a, axes), ModelRole.SAVED)
            spread = axis_mean(centred**2, axes) + _exact(layer.eps)  # σ² + ε, σ² the biased variance
            saved["rstd"] = emit(f"rstd{at}", spread ** sympy.Rational(-1, 2), ModelRole.SAVED)  # 1/σ̂
            saved["xhat"] = emit(f"xhat{at}", centred * saved["rstd"], ModelRole.SAVED)
            out = emit(f"n{at}", scale * saved["xhat"] + shift)
        elif isinstance(layer, Conv):
            weight = p[f"W{placed.number}"]
            bias = p[f"b{placed.number}"] if layer.bias else sympy.S.Zero
            out = emit(f"z{at}", conv(a, weight, bias, integers(layer.stride), integers(layer.padding)))
        elif isinstance(layer, Pool):
            kernel, stride = integers(layer.kernel), integers(layer.stride)
            if layer.kind == "max":
                saved["argmax"] = emit(f"argmax{at}", pool_argmax(a, kernel, stride), ModelRole.SAVED)
                out = emit(f"p{at}", take_at(a, saved["argmax"]))
            else:
                out = emit(f"p{at}", avg_pool(a, kernel, stride))
        elif isinstance(layer, Flatten):
            out = emit(f"f{at}", flatten_sample(a))
        elif isinstance(layer, Dropout):
            (mask,) = placed.masks
            out = emit(f"d{at}", self.masks[mask] * a / (1 - _exact(layer.p)))
        elif isinstance(layer, Residual):
            block, inner = self.forward(placed_iter, len(layer.block), a)
            out = self.emit(f"r{at}", a + inner, ModelRole.FORWARD, placed, (a, inner))
            return _Record(placed, a, out, saved, block)
        else:  # pragma: no cover - Model refuses any other layer
            raise TypeError(f"no program for {layer!r}")
        return _Record(placed, a, out, saved)

    def _norm_axes(self, placed: Placed) -> tuple[sympy.Tuple, sympy.Expr, sympy.Expr]:
        """The normalised axes of the [B, *shape] tensor, and γ, β as they stand against it."""
        rank = len(placed.shape_in)
        gamma, beta = (self.params[name] for name in placed.parameters)
        if isinstance(placed.layer, LayerNorm):
            return integers(range(1, rank + 1)), gamma, beta
        trailing = sympy.Integer(rank - 1)  # BatchNorm: per channel, over the batch and the spatial axes
        if trailing:
            gamma, beta = along_channels(gamma, trailing), along_channels(beta, trailing)
        return integers((0, *range(2, rank + 1))), gamma, beta

    # -- backward -----------------------------------------------------------------------------------------

    def backward(self, records: list[_Record], g: Symbol, first: str | None = None) -> Symbol | None:
        """Walks ``records`` back from g = ∂L/∂(their last output); ∂L/∂(their first input) (named ``first``
        when given), or None when nothing before needs it."""
        for index in range(len(records) - 1, -1, -1):
            g = self.backward_layer(records[index], g, first if index == 0 else None)
            if g is None:
                return None
        return g

    def backward_layer(self, record: _Record, g: Symbol, input_name: str | None = None) -> Symbol | None:
        placed, a = record.placed, record.input
        layer, at = placed.layer, placed.position
        needed = self.needs_input_gradient[at]
        p = self.params
        input_name = input_name or f"grad_{a.name}"

        def emit(name, expression, role=ModelRole.UPSTREAM, same_shape=()):
            return self.emit(name, expression, role, placed, same_shape)

        def gradient(name, expression):
            self.gradients[name] = emit(f"grad_{name}", expression, ModelRole.GRAD)

        if isinstance(layer, Linear):
            weight = f"W{placed.number}"
            gradient(weight, matmul(transpose(g), a))  # gᵀ a
            if layer.bias:
                gradient(f"b{placed.number}", axis_sum(g, integers((0,))))  # Σ_b g
            return emit(input_name, matmul(g, p[weight])) if needed else None  # g W
        if isinstance(layer, Act):
            return emit(input_name, layer.rule.matrix_backward(a, record.output, g)) if needed else None
        if isinstance(layer, (LayerNorm, BatchNorm)):
            axes, scale, _ = self._norm_axes(placed)
            gamma, beta = placed.parameters
            summed = (
                integers((0,)) if isinstance(layer, LayerNorm) else integers((0, *range(2, len(placed.shape_in) + 1)))
            )
            gradient(gamma, axis_sum(g * record.saved["xhat"], summed))
            gradient(beta, axis_sum(g, summed))
            if not needed:
                return None
            ghat = emit(f"ghat{at}", g * scale, same_shape=(g,))  # ĝ = γ ⊙ g
            return emit(input_name, norm_backward(ghat, record.saved["xhat"], record.saved["rstd"], axes))
        if isinstance(layer, Conv):
            weight = f"W{placed.number}"
            shape_w = integers((layer.out_channels, placed.shape_in[0], *layer.kernel))
            stride, padding = integers(layer.stride), integers(layer.padding)
            gradient(weight, conv_weight_grad(a, g, shape_w, stride, padding))
            if layer.bias:
                gradient(f"b{placed.number}", axis_sum(g, integers((0, *range(2, layer.dims + 2)))))
            if not needed:
                return None
            return emit(input_name, conv_input_grad(g, p[weight], stride, padding, self._leftover(placed)))
        if isinstance(layer, Residual):
            # the block's ∂x (named apart: its input is the residual's); the skip passes g on as it is
            inner = self.backward(record.block, g, f"{input_name}_block{at}")
            return emit(input_name, g + inner, same_shape=(g, inner)) if needed else None
        if not needed:
            return None
        if isinstance(layer, Pool):
            if layer.kind == "max":
                return emit(input_name, route_to_argmax(g, record.saved["argmax"], integers(placed.shape_in)))
            kernel, stride = integers(layer.kernel), integers(layer.stride)
            return emit(
                input_name, spread_over_windows(g, kernel, stride, self._leftover(placed), integers(placed.shape_in))
            )
        if isinstance(layer, Flatten):
            return emit(input_name, unflatten_sample(g, integers(placed.shape_in)))
        if isinstance(layer, Dropout):
            (mask,) = placed.masks
            return emit(input_name, self.masks[mask] * g / (1 - _exact(layer.p)))
        raise TypeError(f"no program for {layer!r}")  # pragma: no cover

    @staticmethod
    def _leftover(placed: Placed) -> sympy.Tuple:
        """Per spatial axis, the input entries past the last window ((n + 2p − k) mod s): their gradient is 0
        (the transposed convolution's output_padding)."""
        layer = placed.layer
        padding = layer.padding if isinstance(layer, Conv) else (0,) * layer.dims
        return integers(
            (size + 2 * pad - k) % s
            for size, k, s, pad in zip(placed.shape_in[1:], layer.kernel, layer.stride, padding, strict=True)
        )

    # -- the loss and the output δ ------------------------------------------------------------------------

    def output(self, records: list[_Record], output: Symbol) -> tuple[Symbol, Symbol]:
        """The loss and ∂L/∂(the input of the output activation, or of the output itself when the last layer
        is not an activation) as rows; the records of the backward pass are left to ``backward``."""
        model, rule = self.model, self.model.loss_rule
        n = model.output_size
        last = records[-1]
        final = isinstance(last.placed.layer, Act)
        activation: Activation = last.placed.layer.rule if final else ACTIVATIONS["identity"]
        before = last.input if final else output
        emit = lambda name, e, role: self.emit(name, e, role, last.placed if final else None)  # noqa: E731
        if final:  # the output activation is computed on columns with the loss: drop its rows step
            self.steps = [step for step in self.steps if step.target != last.output]
        z = emit("z_out", transpose(before), ModelRole.OUTPUT)
        y = emit("y_out", transpose(matrix_symbol("y")), ModelRole.OUTPUT)
        a = emit("a_out", activation.matrix_forward(z), ModelRole.OUTPUT) if final else z
        scale = reduction_scale(model)  # L = s Σ_b ℓ_b (s = 1/B for the mean)
        loss = self.emit("loss", scale * batch_sum(rule.matrix_per_sample(a, y, n)), ModelRole.LOSS, None)
        upstream = scale * rule.matrix_gradient(a, y, n)  # ∂L/∂a, element-wise
        chain = activation.matrix_backward(z, a, upstream)
        if activation.elementwise:
            # as the dense program: the loss's derivative may cancel against f' (bce after a sigmoid: a − y)
            product = upstream * activation.derivative(z, a)
            simplified = smallest(product)
            if simplified != product or not final:
                chain = simplified
        elif (activation.name, rule.name) in STABLE_OUTPUT_DELTAS:
            stable = STABLE_OUTPUT_DELTAS[activation.name, rule.name]
            part = lambda name, e: emit(name, e, ModelRole.DELTA_PART)  # noqa: E731
            chain = scale * stable(z, a, y, part, n)
        else:
            chain = smallest(chain)
        delta = emit("delta_out", chain, ModelRole.DELTA)
        return loss, emit(f"grad_{before.name}", transpose(delta), ModelRole.UPSTREAM)


def derive_model_program(model: Model, wrt: tuple[str, ...] = ()) -> ModelProgram:
    """The gradient program of ``model``: forward, loss, backward, in rows layout; ``wrt=("x",)`` adds ∂L/∂x."""
    if not isinstance(model, Model):
        raise NetworkTypeError(f"derive_model_program takes a Model; got {type(model).__name__}")
    if isinstance(wrt, str) or not isinstance(wrt, tuple) or any(w != "x" for w in wrt):
        raise NetworkError(f"wrt may hold only 'x' (the input); got {wrt!r}")
    wrt = tuple(dict.fromkeys(wrt))
    builder = _Builder(model, wrt)
    placed_iter = iter(model.placed)
    x = matrix_symbol("x")
    records, output = builder.forward(placed_iter, len(model.layers), x)
    loss, g = builder.output(records, output)
    final = isinstance(records[-1].placed.layer, Act)
    grad_x = builder.backward(records[:-1] if final else records, g)
    gradients = {name: builder.gradients[name] for name in model.parameter_shapes}
    steps = builder.steps
    if "x" in wrt:  # the step named grad_x is ∂L/∂x: its role says so
        gradients["x"] = grad_x
        steps = [replace(s, role=ModelRole.GRAD_X) if s.target == grad_x else s for s in steps]
    inputs = (x, matrix_symbol("y"), *builder.params.values(), *builder.masks.values())
    return ModelProgram(model, wrt, inputs, tuple(steps), loss, gradients)
