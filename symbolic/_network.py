"""The immutable description of a dense feed-forward network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import NetworkError, NetworkTypeError
from ._rules import ACTIVATIONS, LOSSES

REDUCTIONS = ("sum", "mean")  # of the per-sample losses over a batch
# The widest layer chainrule accepts. A wider one is almost surely a typo (--sizes 3,99999999999999999999,2),
# and its weights alone would not fit in memory (100,000 × 100,000 float32 is 40 GB).
MAX_WIDTH = 100_000


def _allowed(names) -> str:
    return ", ".join(names)


def _check_sizes(sizes: object) -> tuple[int, ...]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise NetworkTypeError(
            f"sizes must be a sequence of two or more positive integers (input width first); got {sizes!r}"
        )
    for position, size in enumerate(sizes):
        # bool is an int subclass, but Network([True, 2]) is surely a mistake
        if isinstance(size, bool) or not isinstance(size, int):
            raise NetworkTypeError(
                f"sizes[{position}] must be a positive integer; got {size!r} ({type(size).__name__}) "
                f"in sizes {list(sizes)!r}"
            )
        if size < 1:
            raise NetworkError(f"sizes[{position}] must be a positive integer; got {size} in sizes {list(sizes)!r}")
        if size > MAX_WIDTH:
            raise NetworkError(
                f"sizes[{position}] = {size} is wider than chainrule allows (at most {MAX_WIDTH:,} units a layer)"
            )
    if len(sizes) < 2:
        raise NetworkError(
            f"sizes must have two or more entries (input width, then each layer's width); got {list(sizes)!r}"
        )
    return tuple(sizes)


def _check_activations(activations: object, depth: int) -> tuple[str, ...]:
    names = [activations] * depth if isinstance(activations, str) else activations
    if not isinstance(names, Sequence) or isinstance(names, bytes):
        raise NetworkTypeError(f"activations must be one name or a sequence of one name per layer; got {activations!r}")
    if len(names) != depth:
        raise NetworkError(
            f"activations has {len(names)} entries {list(names)!r} but the network has {depth} layer(s); "
            "give one name for every layer or one per layer"
        )
    for layer, name in enumerate(names, start=1):
        if not isinstance(name, str):
            raise NetworkTypeError(f"activation of layer {layer} must be a name (str); got {name!r}")
        if name not in ACTIVATIONS:
            raise NetworkError(f"unknown activation {name!r} for layer {layer}; allowed: {_allowed(ACTIVATIONS)}")
        if ACTIVATIONS[name].last_layer_only and layer != depth:
            raise NetworkError(
                f"activation {name!r} is allowed on the last layer only; got it on layer {layer} of {depth}"
            )
    return tuple(names)


@dataclass(frozen=True)
class Network:
    """A dense feed-forward network: z_l = W_l a_{l-1} (+ b_l), a_l = f_l(z_l), a_0 = x, loss ℓ(a_L, y).

    ``sizes`` lists the widths, input first; ``activations`` is one name for every layer or one per
    layer; ``loss`` is a per-sample loss summed over the batch (``reduction="sum"``) or averaged over it
    (``reduction="mean"``, PyTorch's default); ``bias`` adds b_l to every layer.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...] | str = "sigmoid"
    loss: str = "half_sse"
    bias: bool = False
    reduction: str = "sum"  # "sum" over the batch, or "mean": divided by the batch size B (torch's default)

    def __post_init__(self) -> None:
        sizes = _check_sizes(self.sizes)
        activations = _check_activations(self.activations, len(sizes) - 1)
        if not isinstance(self.loss, str):
            raise NetworkTypeError(f"loss must be a name (str); got {self.loss!r}")
        if self.loss not in LOSSES:
            raise NetworkError(f"unknown loss {self.loss!r}; allowed: {_allowed(LOSSES)}")
        pairing = LOSSES[self.loss].output_activations
        if pairing is not None and activations[-1] not in pairing:
            raise NetworkError(
                f"loss {self.loss!r} needs the last layer's activation to be one of {_allowed(sorted(pairing))}; "
                f"got {activations[-1]!r}"
            )
        if activations[-1] == "softmax" and sizes[-1] == 1:
            raise NetworkError(
                "softmax over a single output unit is the constant 1 (nothing to learn); "
                "use sigmoid for one output, or give the last layer two or more units"
            )
        if self.loss == "softmax_cross_entropy" and sizes[-1] == 1:
            raise NetworkError(
                "softmax_cross_entropy over a single output unit is the constant 0 (nothing to learn); "
                "use bce_with_logits for one output, or give the last layer two or more units"
            )
        if not isinstance(self.reduction, str):
            raise NetworkTypeError(f"reduction must be a name (str); got {self.reduction!r}")
        if self.reduction not in REDUCTIONS:
            raise NetworkError(f"unknown reduction {self.reduction!r}; allowed: {_allowed(REDUCTIONS)}")
        if not isinstance(self.bias, bool):
            raise NetworkTypeError(f"bias must be True or False; got {self.bias!r}")
        # normalise (the dataclass is frozen, so set through object)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activations", activations)

    @property
    def depth(self) -> int:
        """The number of weight layers L."""
        return len(self.sizes) - 1

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, int]]:
        """``{"W1": (n1, n0), ..., "b1": (n1, 1), ...}`` in the order W1, b1, W2, b2, ..."""
        shapes: dict[str, tuple[int, int]] = {}
        for layer in range(1, self.depth + 1):
            shapes[f"W{layer}"] = (self.sizes[layer], self.sizes[layer - 1])
            if self.bias:
                shapes[f"b{layer}"] = (self.sizes[layer], 1)
        return shapes

    @property
    def parameter_count(self) -> int:
        return sum(rows * cols for rows, cols in self.parameter_shapes.values())

    def describe(self) -> str:
        """A one-line description, e.g. ``3-4-2, tanh/sigmoid, bce, with bias``."""
        widths = "-".join(map(str, self.sizes))
        acts = self.activations[0] if len(set(self.activations)) == 1 else "/".join(self.activations)
        mean = ", mean over the batch" if self.reduction == "mean" else ""
        return f"{widths}, {acts}, {self.loss}{', with bias' if self.bias else ''}{mean}"
