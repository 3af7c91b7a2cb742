"""A Model as torch modules (``to_torch(model, params)``) and the autograd reference of its gradients.

The reference shares no code with the derivation: an ``nn.Sequential`` of torch's own modules (nn.Linear,
nn.Conv1d/2d, nn.LayerNorm, nn.BatchNorm1d/2d in training mode, pooling, nn.Flatten, the activation modules),
a ``Residual`` module (x + block(x)) and a ``MaskedDropout`` module (the given mask m: m ⊙ x/(1 − p)), run
forward and differentiated by ``backward()``; the loss is torch's (``_torch_models.reference_loss``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from symbolic import Activation, InputError
from symbolic._model import Act, BatchNorm, Conv, Dropout, Flatten, LayerNorm, Linear, Model, Pool
from symbolic._model import Residual as ResidualLayer


class Residual(nn.Module):
    """y = x + block(x)."""

    def __init__(self, *block: nn.Module):
        super().__init__()
        self.block = nn.Sequential(*block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class MaskedDropout(nn.Module):
    """Dropout with a given mask: m ⊙ x/(1 − p), m (0 or 1 per entry, [B, *sample]) set as ``.mask`` before a
    forward pass, so that its gradients are reproducible; without one it is nn.Dropout (a fresh mask in
    training mode, the identity in evaluation mode)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p
        self.mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return nn.functional.dropout(x, self.p, self.training)
        return x * self.mask / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


_BATCH_NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}  # by the rank of one sample
_CONVS = {1: nn.Conv1d, 2: nn.Conv2d}
_POOLS = {("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d}


ActivationModule = Callable[[Activation], nn.Module]  # an activation's torch module (``_torch_models``' table)


def _modules(model: Model, activation: ActivationModule) -> tuple[list[nn.Module], dict[str, tuple[nn.Module, str]]]:
    """The top-level modules, and where each of the model's parameters lives (module, attribute)."""
    where: dict[str, tuple[nn.Module, str]] = {}
    placed = iter(model.placed)

    def build(count: int) -> list[nn.Module]:
        modules: list[nn.Module] = []
        for _ in range(count):
            record = next(placed)
            layer, shape = record.layer, record.shape_in
            names = list(record.parameters)
            if isinstance(layer, Linear):
                module: nn.Module = nn.Linear(shape[0], layer.out, bias=layer.bias)
            elif isinstance(layer, Act):
                module = activation(layer.rule)
            elif isinstance(layer, LayerNorm):
                module = nn.LayerNorm(shape, eps=layer.eps)
            elif isinstance(layer, BatchNorm):
                module = _BATCH_NORMS[len(shape)](shape[0], eps=layer.eps)
            elif isinstance(layer, Conv):
                module = _CONVS[layer.dims](
                    shape[0], layer.out_channels, layer.kernel, layer.stride, layer.padding, bias=layer.bias
                )
            elif isinstance(layer, Pool):
                module = _POOLS[layer.kind, layer.dims](layer.kernel, layer.stride)
            elif isinstance(layer, Flatten):
                module = nn.Flatten()
            elif isinstance(layer, Dropout):
                module = MaskedDropout(layer.p)
            elif isinstance(layer, ResidualLayer):
                module = Residual(*build(len(layer.block)))
            else:  # pragma: no cover - Model refuses any other layer
                raise TypeError(f"no torch module for {layer!r}")
            for name, attribute in zip(names, ("weight", "bias")):
                where[name] = (module, attribute)
            modules.append(module)
        return modules

    return build(len(model.layers)), where


def to_torch_model(
    model: Model, params: Mapping[str, torch.Tensor] | None, activation: ActivationModule
) -> nn.Sequential:
    """``model`` as an ``nn.Sequential`` in training mode (samples as rows); ``params`` are copied in.

    ``activation`` makes each activation's module (``numeric.to_torch`` passes the activation table's; the
    autograd reference its exact softplus). Dropout layers are ``MaskedDropout``: set ``.mask`` to reproduce a
    mask (``set_masks``). This module imports nothing of numeric's, so that ``_torch_models`` (to_torch,
    from_torch) can import it.
    """
    modules, where = _modules(model, activation)
    sequential = nn.Sequential(*modules)
    if params:
        reference = next(iter(params.values()))
        sequential = sequential.to(dtype=reference.dtype, device=reference.device)
        with torch.no_grad():
            for name, (module, attribute) in where.items():
                getattr(module, attribute).copy_(params[name])
    return sequential.train()


def torch_names(model: Model, module: nn.Sequential) -> dict[str, str]:
    """The model's parameter names (W1, gamma2, ...) -> the module's (``0.weight``, ``3.block.1.bias``)."""
    _, where = _modules(model, lambda rule: nn.Identity())  # the same walk: the same positions
    by_position = {name: index for index, name in enumerate(where)}
    ours = list(where)
    theirs = [name for name, _ in module.named_parameters()]
    if len(theirs) != len(ours):
        raise InputError(f"the module has {len(theirs)} parameters; the model has {len(ours)}")
    return {name: theirs[by_position[name]] for name in ours}


def set_masks(module: nn.Module, masks: Mapping[str, torch.Tensor] | None) -> None:
    """Gives each MaskedDropout its mask, in model order (mask1, mask2, ...)."""
    dropouts = [m for m in module.modules() if isinstance(m, MaskedDropout)]
    given = list((masks or {}).values())
    for dropout, mask in zip(dropouts, given, strict=True):
        dropout.mask = mask
