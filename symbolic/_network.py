"""The immutable description of a dense feed-forward network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ._errors import NetworkError, NetworkTypeError
from ._rules import ACTIVATIONS, LOSSES, Activation, Loss
from ._words import words

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


def _check_activations(activations: object, depth: int) -> tuple[Activation, ...]:
    given = [activations] * depth if isinstance(activations, (str, Activation)) else activations
    if not isinstance(given, Sequence) or isinstance(given, bytes):
        raise NetworkTypeError(
            f"activations must be one name (or Activation) or a sequence of one per layer; got {activations!r}"
        )
    if len(given) != depth:
        raise NetworkError(
            f"activations has {len(given)} entries {list(given)!r} but the network has {depth} layer(s); "
            "give one name for every layer or one per layer"
        )
    rules = []
    for layer, entry in enumerate(given, start=1):
        if isinstance(entry, Activation):
            rule = entry
        elif not isinstance(entry, str):
            raise NetworkTypeError(
                f"activation of layer {layer} must be a name (str) or an Activation (Activation.define); got {entry!r}"
            )
        elif entry not in ACTIVATIONS:
            raise NetworkError(f"unknown activation {entry!r} for layer {layer}; allowed: {_allowed(ACTIVATIONS)}")
        else:
            rule = ACTIVATIONS[entry]
        if rule.last_layer_only and layer != depth:
            raise NetworkError(
                f"activation {rule.name!r} is allowed on the last layer only; got it on layer {layer} of {depth}"
            )
        rules.append(rule)
    return tuple(rules)


def _check_loss(loss: object) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str):
        raise NetworkTypeError(f"loss must be a name (str) or a Loss (Loss.define); got {loss!r}")
    if loss not in LOSSES:
        raise NetworkError(f"unknown loss {loss!r}; allowed: {_allowed(LOSSES)}")
    return LOSSES[loss]


@dataclass(frozen=True)
class Network:
    """A dense feed-forward network: z_l = W_l a_{l-1} (+ b_l), a_l = f_l(z_l), a_0 = x, loss ℓ(a_L, y).

    ``sizes`` lists the widths, input first; ``activations`` is one name (or ``Activation``) for every
    layer or one per layer; ``loss`` a name or ``Loss``, a per-sample loss summed over the batch
    (``reduction="sum"``) or averaged over it (``reduction="mean"``, PyTorch's default); ``bias`` adds b_l
    to every layer. After construction ``activations`` and ``loss`` hold names, and ``activation_rules`` /
    ``loss_rule`` the rules behind them.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...] | str = "sigmoid"
    loss: str = "half_sse"
    bias: bool = False
    reduction: str = "sum"  # "sum" over the batch, or "mean": divided by the batch size B (torch's default)
    # the rules behind the names (built-in rows, or a user's Activation.define / Loss.define)
    activation_rules: tuple[Activation, ...] = field(init=False, repr=False)
    loss_rule: Loss = field(init=False, repr=False)

    def __post_init__(self) -> None:
        sizes = _check_sizes(self.sizes)
        rules = _check_activations(self.activations, len(sizes) - 1)
        loss_rule = _check_loss(self.loss)
        names = tuple(rule.name for rule in rules)
        pairing = loss_rule.output_activations
        if pairing is not None and names[-1] not in pairing:
            raise NetworkError(
                f"loss {loss_rule.name!r} needs the last layer's activation to be one of "
                f"{_allowed(sorted(pairing))}; got {names[-1]!r}"
            )
        if names[-1] == "softmax" and sizes[-1] == 1:
            raise NetworkError(
                "softmax over a single output unit is the constant 1 (nothing to learn); "
                "use sigmoid for one output, or give the last layer two or more units"
            )
        if loss_rule.name == "softmax_cross_entropy" and sizes[-1] == 1:
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
        # normalise to names, keeping the rules beside them (the dataclass is frozen, so set through object)
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activations", names)
        object.__setattr__(self, "loss", loss_rule.name)
        object.__setattr__(self, "activation_rules", rules)
        object.__setattr__(self, "loss_rule", loss_rule)

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

    def describe(self, lang: str = "en") -> str:
        """A one-line description, e.g. ``3-4-2, tanh/sigmoid, bce, with bias``; the activation and loss names
        are identifiers, the same in every language (``lang``: one of ``LANGUAGES``)."""
        w = words(lang)
        widths = "-".join(map(str, self.sizes))
        acts = self.activations[0] if len(set(self.activations)) == 1 else "/".join(self.activations)
        extras = [w["describe_bias"]] if self.bias else []
        extras += [w["describe_mean"]] if self.reduction == "mean" else []
        return w["list_separator"].join([widths, acts, self.loss, *extras])
