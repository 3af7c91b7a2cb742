"""Models as torch users write them (issue 18): ordinary nn.Modules, not chainrule Networks.

Each case's contestants take the module as it is; chainrule reads it through ``numeric.from_torch``, and the
tables say "unsupported" where from_torch does not read it yet.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTH, BLOCKS = 256, 4
IMAGE, CLASSES = 28, 10


class ResidualBlock(nn.Module):
    """x + Linear(ReLU(LayerNorm(x))): a pre-norm residual block."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(torch.relu(self.norm(x)))


def residual_mlp() -> nn.Module:
    """256 wide, 4 residual blocks with LayerNorm; inputs [B, 256], outputs [B, 256] (MSE)."""
    torch.manual_seed(0)
    return nn.Sequential(*(ResidualBlock(WIDTH) for _ in range(BLOCKS)))


def small_cnn() -> nn.Module:
    """Two 3×3 convolutions (padding 1) with ReLU and 2×2 max pooling, a linear head to 10 classes; inputs
    [B, 1, 28, 28] (cross entropy on class indices)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (IMAGE // 4) ** 2, CLASSES),
    )
