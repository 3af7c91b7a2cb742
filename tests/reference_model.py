"""An independent torch reference for a chainrule Network, written from the definitions alone.

Nothing here calls chainrule's own torch code (``to_torch``, ``autograd_gradients``, ``REFERENCE_LOSSES``):
each activation and each loss is written again from its textbook formula, in torch's layout (rows are
samples, ``torch.nn.functional.linear`` as ``nn.Linear`` computes it), so that a gradient chainrule derives
is compared with autograd through code that shares nothing with it but the names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch.nn import functional

# a ↦ f(z), element-wise, or over the units of each sample (softmax); z is [B, n] (rows are samples)
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": lambda z: 1 / (1 + torch.exp(-z)),
    "tanh": torch.tanh,
    "relu": lambda z: torch.where(z > 0, z, torch.zeros_like(z)),
    "softplus": lambda z: torch.log1p(torch.exp(z)),
    "identity": lambda z: z,
    "silu": lambda z: z / (1 + torch.exp(-z)),
    "elu": lambda z: torch.where(z > 0, z, torch.expm1(z)),
    "leaky_relu": lambda z: torch.where(z > 0, z, 0.01 * z),
    "gelu": lambda z: z * (1 + torch.erf(z / math.sqrt(2))) / 2,
    "softmax": lambda z: torch.exp(z - z.logsumexp(dim=1, keepdim=True)),
}


def _bce(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p))


def _bce_on_logits(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # −[t log σ(z) + (1 − t) log(1 − σ(z))], with log(1 − σ(z)) = log σ(−z)
    return -(t * functional.logsigmoid(z) + (1 - t) * functional.logsigmoid(-z))


# per-sample loss of predictions p and targets t, both [B, n]: a [B] tensor
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "half_sse": lambda p, t: ((p - t) ** 2 / 2).sum(1),
    "sse": lambda p, t: ((p - t) ** 2).sum(1),
    "mse": lambda p, t: ((p - t) ** 2).mean(1),
    "bce": lambda p, t: _bce(p, t).sum(1),
    "mean_bce": lambda p, t: _bce(p, t).mean(1),
    "cross_entropy": lambda p, t: -(t * torch.log(p)).sum(1),
    "softmax_cross_entropy": lambda z, t: -(t * torch.log_softmax(z, dim=1)).sum(1),
    "bce_with_logits": lambda z, t: _bce_on_logits(z, t).sum(1),
    "mean_bce_with_logits": lambda z, t: _bce_on_logits(z, t).mean(1),
}

# What each loss's target is: any real number, a probability per unit, or a distribution per sample.
TARGETS = {
    "half_sse": "real",
    "sse": "real",
    "mse": "real",
    "bce": "probability",
    "mean_bce": "probability",
    "cross_entropy": "distribution",
    "softmax_cross_entropy": "distribution",
    "bce_with_logits": "probability",
    "mean_bce_with_logits": "probability",
}

# The last-layer activations each loss is defined after (None: any). bce needs outputs in (0, 1), which
# sigmoid and softmax give; cross-entropy −Σ y log ŷ needs a distribution, which only softmax gives; the
# losses "on logits" take the raw pre-activation, so the last layer must be the identity.
OUTPUT_ACTIVATIONS: dict[str, frozenset[str] | None] = {
    "half_sse": None,
    "sse": None,
    "mse": None,
    "bce": frozenset({"sigmoid", "softmax"}),
    "mean_bce": frozenset({"sigmoid", "softmax"}),
    "cross_entropy": frozenset({"softmax"}),
    "softmax_cross_entropy": frozenset({"identity"}),
    "bce_with_logits": frozenset({"identity"}),
    "mean_bce_with_logits": frozenset({"identity"}),
}


def reference_loss(
    activations: tuple[str, ...],
    loss: str,
    reduction: str,
    x: torch.Tensor,
    y: torch.Tensor,
    params: Mapping[str, torch.Tensor],
) -> torch.Tensor:
    """The batch loss of the network, in chainrule's column layout at the boundary (x [n_in, B], y [n_out, B],
    W [n_l, n_{l-1}], b [n_l, 1]) and torch's row layout inside (nn.Linear: a Wᵀ + b)."""
    a = x.T
    for layer, name in enumerate(activations, start=1):
        bias = params.get(f"b{layer}")
        a = ACTIVATIONS[name](functional.linear(a, params[f"W{layer}"], None if bias is None else bias[:, 0]))
    per_sample = LOSSES[loss](a, y.T)
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def draw_values(
    sizes: tuple[int, ...], loss: str, bias: bool, batch: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """x, y and the parameters in float64, drawn with ``seed``; y suits the loss's targets."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    x = normal(sizes[0], batch)
    targets = TARGETS[loss]
    if targets == "real":
        y = normal(sizes[-1], batch)
    elif targets == "probability":
        y = torch.rand(sizes[-1], batch, generator=generator, dtype=torch.float64)
    else:  # a distribution per sample (column)
        y = torch.softmax(normal(sizes[-1], batch), dim=0)
    params: dict[str, torch.Tensor] = {}
    for layer in range(1, len(sizes)):
        params[f"W{layer}"] = normal(sizes[layer], sizes[layer - 1]) / math.sqrt(sizes[layer - 1])
        if bias:
            params[f"b{layer}"] = normal(sizes[layer], 1) / 4
    return x, y, params
