"""The immutable description of a model beyond dense stacks: layers in order, each its own frozen record.

A ``Network`` is a dense stack with one activation per weight layer and one bias switch for all; a ``Model`` is
what ``nn.Sequential`` writes: a sequence of layers, each with its own options (a bias per layer), including
normalisation, residual blocks, convolution, pooling, flatten and dropout. Samples are ROWS here, as in torch:
a batch x is [B, *input_shape] with ``input_shape`` (n,) for features, (C, L) for Conv1d, (C, H, W) for Conv2d.

Every layer knows only its own options; ``Model`` walks them once (``_place``) to check each layer against the
shape it receives, to name its parameters and to record the shape it gives. Parameter names number the layers
that have parameters, in model order (into residual blocks too), as a textbook numbers a network's layers:
``W1, b1`` (the first Linear or Conv), ``gamma2, beta2`` (a norm after it), ``W3`` ...; so a dense stack's
names are ``Network``'s. Dropout masks are numbered on their own (``mask1``, ...): inputs like x, so that
gradients are reproducible. Names are Python identifiers; the compiled code and the pages use them as they
are. A layer's ``position`` (``"3"``, or ``"4_2"`` inside the residual block at 4) is for messages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._errors import NetworkError, NetworkTypeError
from ._network import MAX_WIDTH, REDUCTIONS, Network, _allowed, _check_loss
from ._rules import ACTIVATIONS, Activation, Loss

Shape = tuple[int, ...]  # one sample's shape: (n,), (C, L) or (C, H, W)


def _positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NetworkTypeError(f"{what} must be a positive integer; got {value!r}")
    if value > MAX_WIDTH:
        raise NetworkError(f"{what} = {value} is larger than chainrule allows ({MAX_WIDTH:,})")
    return value


def _per_axis(value: object, dims: int, what: str, smallest: int = 1) -> tuple[int, ...]:
    """An int or one int per spatial axis, as torch accepts ``kernel_size=3`` or ``(3, 2)``."""
    given = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(given, tuple) or len(given) != dims:
        raise NetworkTypeError(f"{what} must be an int or a tuple of {dims}; got {value!r}")
    for entry in given:
        if isinstance(entry, bool) or not isinstance(entry, int) or entry < smallest:
            raise NetworkTypeError(f"{what} must hold integers ≥ {smallest}; got {value!r}")
    return given


@dataclass(frozen=True)
class Linear:
    """y = x Wᵀ + b over the features of a flat sample (torch's ``nn.Linear``); W is [out, in], b is [out]."""

    out: int
    bias: bool = True

    def __post_init__(self) -> None:
        _positive(self.out, "Linear's out")
        if not isinstance(self.bias, bool):
            raise NetworkTypeError(f"Linear's bias must be True or False; got {self.bias!r}")


@dataclass(frozen=True)
class Act:
    """An element-wise activation by name (one of ``ACTIVATIONS``); softmax normalises a flat sample's features
    and only as the last layer."""

    name: str | Activation
    rule: Activation = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.name, Activation):  # a user's Activation.define, or a built-in rule
            rule = self.name
        elif not isinstance(self.name, str) or self.name not in ACTIVATIONS:
            raise NetworkError(f"unknown activation {self.name!r}; allowed: {_allowed(ACTIVATIONS)}")
        else:
            rule = ACTIVATIONS[self.name]
        object.__setattr__(self, "name", rule.name)
        object.__setattr__(self, "rule", rule)


@dataclass(frozen=True)
class LayerNorm:
    """Normalises each sample over all its features (torch's ``nn.LayerNorm(input_shape)``), γ and β of the
    sample's shape; μ and σ² are the sample's (biased variance), σ̂ = √(σ² + ε)."""

    eps: float = 1e-5


@dataclass(frozen=True)
class BatchNorm:
    """Training-mode batch normalisation: each feature (each channel, with its spatial positions, after a
    convolution: ``nn.BatchNorm1d``/``2d``) normalised over the batch; γ and β one per feature or channel.
    The running statistics do not enter the gradient and are not modelled."""

    eps: float = 1e-5


@dataclass(frozen=True)
class Conv:
    """Cross-correlation as torch computes it (``nn.Conv1d``/``nn.Conv2d``, one ``dims`` each): W is
    [out_channels, in_channels, *kernel], b is [out_channels]; zero padding on both sides of each axis."""

    out_channels: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...] | int = 1
    padding: tuple[int, ...] | int = 0
    bias: bool = True

    def __post_init__(self) -> None:
        _positive(self.out_channels, "Conv's out_channels")
        kernel = _per_axis(self.kernel, len(self.kernel) if isinstance(self.kernel, tuple) else 1, "Conv's kernel")
        if len(kernel) not in (1, 2):
            raise NetworkError(f"Conv's kernel has {len(kernel)} axes; chainrule has Conv1d and Conv2d (1 or 2)")
        object.__setattr__(self, "kernel", kernel)
        object.__setattr__(self, "stride", _per_axis(self.stride, len(kernel), "Conv's stride"))
        object.__setattr__(self, "padding", _per_axis(self.padding, len(kernel), "Conv's padding", smallest=0))
        if not isinstance(self.bias, bool):
            raise NetworkTypeError(f"Conv's bias must be True or False; got {self.bias!r}")

    @property
    def dims(self) -> int:
        return len(self.kernel)


@dataclass(frozen=True)
class Pool:
    """Max or average pooling over windows of ``kernel`` moved by ``stride`` (torch's default stride: the
    kernel), no padding (``nn.MaxPool1d/2d``, ``nn.AvgPool1d/2d``)."""

    kind: str  # "max" or "avg"
    kernel: tuple[int, ...]
    stride: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("max", "avg"):
            raise NetworkError(f"Pool's kind must be 'max' or 'avg'; got {self.kind!r}")
        kernel = _per_axis(self.kernel, len(self.kernel) if isinstance(self.kernel, tuple) else 1, "Pool's kernel")
        if len(kernel) not in (1, 2):
            raise NetworkError(f"Pool's kernel has {len(kernel)} axes; chainrule pools over 1 or 2")
        object.__setattr__(self, "kernel", kernel)
        stride = kernel if self.stride is None else _per_axis(self.stride, len(kernel), "Pool's stride")
        object.__setattr__(self, "stride", stride)

    @property
    def dims(self) -> int:
        return len(self.kernel)


@dataclass(frozen=True)
class Flatten:
    """A sample's [C, ...] reshaped to one row of features (``nn.Flatten()``): no parameters, no arithmetic."""


@dataclass(frozen=True)
class Dropout:
    """y = m ⊙ x / (1 − p) with the mask m (0 or 1 per entry) given as an input, as torch draws it in training
    mode; given, it makes the gradients reproducible and derivable."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0 <= self.p < 1:
            raise NetworkError(f"Dropout's p must be a number with 0 ≤ p < 1; got {self.p!r}")


@dataclass(frozen=True)
class Residual:
    """y = x + block(x): the block's output is added to its input, so it must keep the input's shape."""

    block: tuple[Layer, ...]

    def __post_init__(self) -> None:
        if isinstance(self.block, (str, bytes)) or not isinstance(self.block, Sequence) or not self.block:
            raise NetworkTypeError(f"Residual's block must be a non-empty sequence of layers; got {self.block!r}")
        object.__setattr__(self, "block", tuple(self.block))


Layer = Linear | Act | LayerNorm | BatchNorm | Conv | Pool | Flatten | Dropout | Residual
LAYER_TYPES = (Linear, Act, LayerNorm, BatchNorm, Conv, Pool, Flatten, Dropout, Residual)


@dataclass(frozen=True)
class Placed:
    """One layer where it stands in a model: its position (``"3"``, or ``"4_2"`` inside the residual block at
    4), the shape it receives and gives (one sample's), and its parameters' and mask's names and shapes."""

    layer: Layer
    position: str
    shape_in: Shape
    shape_out: Shape
    parameters: dict[str, Shape]
    masks: dict[str, Shape]
    inside: tuple[str, ...] = ()  # the positions of the residual blocks it sits in, outermost first
    number: int = 0  # its number among the layers with parameters (W3 is layer 3's); 0 when it has none


def _spatial_out(size: int, kernel: int, stride: int, padding: int, what: str) -> int:
    span = size + 2 * padding
    if kernel > span:
        raise NetworkError(f"{what}: the kernel ({kernel}) is larger than the input ({size}, padded {span})")
    return (span - kernel) // stride + 1


@dataclass
class _Counters:
    layers: int = 0  # layers with parameters so far
    masks: int = 0


def _place(
    layer: object, position: str, shape: Shape, is_last: bool, inside: tuple[str, ...], count: _Counters
) -> list[Placed]:
    """The placed layer(s) for ``layer`` receiving ``shape``; a residual block gives itself, then its block."""
    where = f"layer {position} ({type(layer).__name__})"
    if isinstance(layer, (Linear, LayerNorm, BatchNorm, Conv)):
        count.layers += 1
    number = count.layers if isinstance(layer, (Linear, LayerNorm, BatchNorm, Conv)) else 0
    position_name = str(number)
    params: dict[str, Shape] = {}
    masks: dict[str, Shape] = {}
    if isinstance(layer, Linear):
        if len(shape) != 1:
            raise NetworkError(f"{where} needs a flat sample (n,); it gets {shape}: add Flatten() before it")
        out: Shape = (layer.out,)
        params[f"W{position_name}"] = (layer.out, shape[0])
        if layer.bias:
            params[f"b{position_name}"] = (layer.out,)
    elif isinstance(layer, Act):
        rule = layer.rule
        if rule.last_layer_only and (not is_last or inside):
            raise NetworkError(f"{where}: activation {layer.name!r} is allowed as the last layer only")
        if not rule.elementwise and len(shape) != 1:
            raise NetworkError(f"{where}: {layer.name} needs a flat sample (n,); it gets {shape}")
        out = shape
    elif isinstance(layer, (LayerNorm, BatchNorm)):
        out = shape
        affine = shape if isinstance(layer, LayerNorm) else shape[:1]
        params[f"gamma{position_name}"] = affine
        params[f"beta{position_name}"] = affine
    elif isinstance(layer, Conv):
        if len(shape) != layer.dims + 1:
            axes = "length" if layer.dims == 1 else "H, W"
            raise NetworkError(f"{where}: Conv{layer.dims}d needs a sample (channels, {axes}); it gets {shape}")
        spatial = tuple(
            _spatial_out(size, k, s, p, where)
            for size, k, s, p in zip(shape[1:], layer.kernel, layer.stride, layer.padding, strict=True)
        )
        out = (layer.out_channels, *spatial)
        params[f"W{position_name}"] = (layer.out_channels, shape[0], *layer.kernel)
        if layer.bias:
            params[f"b{position_name}"] = (layer.out_channels,)
    elif isinstance(layer, Pool):
        if len(shape) != layer.dims + 1:
            raise NetworkError(
                f"{where}: pooling over {layer.dims} axis(es) needs a sample (channels, ...); got {shape}"
            )
        spatial = tuple(
            _spatial_out(size, k, s, 0, where) for size, k, s in zip(shape[1:], layer.kernel, layer.stride, strict=True)
        )
        out = (shape[0], *spatial)
    elif isinstance(layer, Flatten):
        out = (math.prod(shape),)
    elif isinstance(layer, Dropout):
        out = shape
        count.masks += 1
        masks[f"mask{count.masks}"] = shape
    elif isinstance(layer, Residual):
        placed = [Placed(layer, position, shape, shape, {}, {}, inside)]
        inner = shape
        for number, member in enumerate(layer.block, start=1):
            found = _place(member, f"{position}_{number}", inner, False, (*inside, position), count)
            placed += found
            inner = found[0].shape_out
        if inner != shape:
            raise NetworkError(f"{where}: its block turns {shape} into {inner}; a residual block must keep the shape")
        return placed
    else:
        raise NetworkTypeError(f"layer {position} is not a chainrule layer: {layer!r}")
    return [Placed(layer, position, shape, out, params, masks, inside, number)]


@dataclass(frozen=True)
class Model:
    """A sequence of layers ending in a loss: ``Model((784,), (Linear(256), Act("relu"), Linear(10)),
    "softmax_cross_entropy", "mean")``. ``loss`` and ``reduction`` are those of ``Network``; the last layer's
    output is the prediction (flat: one row of n outputs a sample), compared with y [B, n]."""

    input_shape: Shape
    layers: tuple[Layer, ...]
    loss: str = "half_sse"
    reduction: str = "sum"
    loss_rule: Loss = field(init=False, repr=False, compare=False)
    placed: tuple[Placed, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.input_shape, int) and not isinstance(self.input_shape, bool):
            object.__setattr__(self, "input_shape", (self.input_shape,))
        if not isinstance(self.input_shape, tuple) or not 1 <= len(self.input_shape) <= 3:
            raise NetworkTypeError(f"input_shape must be (n,), (C, L) or (C, H, W); got {self.input_shape!r}")
        for size in self.input_shape:
            _positive(size, "input_shape's entries")
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, Sequence) or not self.layers:
            raise NetworkTypeError(f"layers must be a non-empty sequence of layers; got {self.layers!r}")
        layers = tuple(self.layers)
        placed: list[Placed] = []
        shape, count = self.input_shape, _Counters()
        for number, layer in enumerate(layers, start=1):
            found = _place(layer, str(number), shape, number == len(layers), (), count)
            placed += found
            shape = found[0].shape_out
        if len(shape) != 1:
            raise NetworkError(f"the model's output must be flat (n,) for the loss; it is {shape}: add Flatten()")
        loss_rule = _check_loss(self.loss)
        if loss_rule.output_activations is not None:
            last = layers[-1].name if isinstance(layers[-1], Act) else "identity"
            if last not in loss_rule.output_activations:
                raise NetworkError(
                    f"loss {loss_rule.name!r} needs the last layer to be one of "
                    f"{_allowed(sorted(loss_rule.output_activations))}; got {last!r}"
                )
        if self.reduction not in REDUCTIONS:
            raise NetworkError(f"unknown reduction {self.reduction!r}; allowed: {_allowed(REDUCTIONS)}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "loss", loss_rule.name)
        object.__setattr__(self, "loss_rule", loss_rule)
        object.__setattr__(self, "placed", tuple(placed))

    @property
    def output_size(self) -> int:
        return _last_shape(self)[0]

    @property
    def parameter_shapes(self) -> dict[str, Shape]:
        """Every parameter's name and shape, in model order."""
        return {name: shape for p in self.placed for name, shape in p.parameters.items()}

    @property
    def mask_shapes(self) -> dict[str, Shape]:
        """Every dropout mask's name and one sample's shape (the mask is [B, *shape]), in model order."""
        return {name: shape for p in self.placed for name, shape in p.masks.items()}

    @classmethod
    def from_network(cls, network: Network) -> Model:
        """The same dense stack as a model: Linear(n_l, bias) then the layer's activation, for every layer."""
        layers: list[Layer] = []
        for width, activation in zip(network.sizes[1:], network.activation_rules, strict=True):
            layers += [Linear(width, network.bias), Act(activation)]
        return cls((network.sizes[0],), tuple(layers), network.loss, network.reduction)


def _last_shape(model: Model) -> Shape:
    """The output shape of the model's last top-level layer (a residual block's placed record comes first)."""
    top = [p for p in model.placed if not p.inside]
    return top[-1].shape_out


def _pair(value: object) -> object:
    return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value


def Conv1d(out_channels: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = True) -> Conv:
    """``nn.Conv1d``'s options as a ``Conv`` over one axis (the input's in_channels is read from its shape)."""
    return Conv(out_channels, (kernel,) if isinstance(kernel, int) else kernel, stride, padding, bias)


def Conv2d(out_channels: int, kernel, stride=1, padding=0, bias: bool = True) -> Conv:
    """``nn.Conv2d``'s options as a ``Conv`` over two axes: an int is the same on both, as torch takes it."""
    return Conv(out_channels, _pair(kernel), _pair(stride), _pair(padding), bias)


def MaxPool1d(kernel: int, stride: int | None = None) -> Pool:
    return Pool("max", (kernel,) if isinstance(kernel, int) else kernel, stride)


def MaxPool2d(kernel, stride=None) -> Pool:
    return Pool("max", _pair(kernel), None if stride is None else _pair(stride))


def AvgPool1d(kernel: int, stride: int | None = None) -> Pool:
    return Pool("avg", (kernel,) if isinstance(kernel, int) else kernel, stride)


def AvgPool2d(kernel, stride=None) -> Pool:
    return Pool("avg", _pair(kernel), None if stride is None else _pair(stride))
