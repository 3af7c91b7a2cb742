"""A reference forward pass of a ``Model``, for tests: plain torch.nn.functional, one call per layer.

It shares nothing with the module a model was read from (its forward, its modules) nor with chainrule's
compiled code: only the Model's layers and the parameters by the Model's names. Activations are looked up in a
table of its own, by the names chainrule gives them, so a reader that confused two activations is caught.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch.nn import functional as F  # noqa: N812 - the usual spelling

from symbolic._model import Act, BatchNorm, Conv, Dropout, Flatten, LayerNorm, Linear, Model, Placed, Pool, Residual

# chainrule's activation name (its parametrised rows: the base name) -> the function, given the row's arguments
ACTIVATION_FUNCTIONS = {
    "sigmoid": lambda z: torch.sigmoid(z),
    "tanh": lambda z: torch.tanh(z),
    "relu": lambda z: F.relu(z),
    "softplus": lambda z: torch.logaddexp(z, torch.zeros_like(z)),
    "identity": lambda z: z,
    "silu": lambda z: z * torch.sigmoid(z),
    "gelu": lambda z: F.gelu(z),
    "softmax": lambda z: torch.softmax(z, dim=-1),
    "elu": lambda z, alpha=1.0: F.elu(z, alpha),
    "leaky_relu": lambda z, negative_slope=0.01: F.leaky_relu(z, negative_slope),
}


def _activation(layer: Act, z: torch.Tensor) -> torch.Tensor:
    base = next(name for name in sorted(ACTIVATION_FUNCTIONS, key=len, reverse=True) if layer.name.startswith(name))
    return ACTIVATION_FUNCTIONS[base](z, **dict(layer.rule.torch_arguments if base in ("elu", "leaky_relu") else ()))


def _run(layers, h: torch.Tensor, placed: Iterator[Placed], params, masks) -> torch.Tensor:
    for layer in layers:
        record = next(placed)
        p = [params[name] for name in record.parameters]
        if isinstance(layer, Linear):
            h = F.linear(h, *p)
        elif isinstance(layer, Act):
            h = _activation(layer, h)
        elif isinstance(layer, LayerNorm):
            h = F.layer_norm(h, record.shape_in, *p, eps=layer.eps)
        elif isinstance(layer, BatchNorm):
            h = F.batch_norm(h, None, None, *p, training=True, eps=layer.eps)
        elif isinstance(layer, Conv):
            conv = F.conv1d if layer.dims == 1 else F.conv2d
            h = conv(h, p[0], p[1] if layer.bias else None, stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, Pool):
            pool = {("max", 1): F.max_pool1d, ("max", 2): F.max_pool2d, ("avg", 1): F.avg_pool1d}.get(
                (layer.kind, layer.dims), F.avg_pool2d
            )
            h = pool(h, layer.kernel, layer.stride)
        elif isinstance(layer, Flatten):
            h = h.reshape(h.shape[0], -1)
        elif isinstance(layer, Dropout):
            (mask,) = record.masks
            h = h * masks[mask] / (1 - layer.p)
        elif isinstance(layer, Residual):
            h = h + _run(layer.block, h, placed, params, masks)
        else:
            raise TypeError(f"the reference evaluator has no rule for {layer!r}")
    return h


def model_forward(
    model: Model,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The model's output [B, n] for x [B, *input_shape]; params by the Model's names in torch's layout,
    masks (the dropout masks, [B, *shape] each, 0 or 1) by theirs."""
    return _run(model.layers, x, iter(model.placed), params, masks or {})
