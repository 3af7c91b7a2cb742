"""The benchmark's cases: the networks, batch sizes and values every contestant is timed on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from bench_models import CLASSES, IMAGE, WIDTH, residual_mlp, small_cnn
from torch import nn

from symbolic import TUTORIAL, Network


@dataclass(frozen=True)
class Case:
    """A chainrule Network at a batch size, or (``network`` None) a torch module with its loss and one sample's
    input shape: a model as torch users write it, which chainrule reads through from_torch."""

    label: str
    network: Network | None
    batch: int
    module: Callable[[], nn.Module] | None = None  # makes the model (seeded)
    loss: Callable[[], nn.Module] | None = None  # makes the loss module
    sample: tuple[int, ...] = ()  # one sample's input shape
    targets: str = "values"  # "values" (a tensor like the output) or "classes" (class indices)

    @property
    def key(self) -> str:
        return f"{self.label}, B={self.batch}"


CASES = (
    Case("tutorial 1-2-2 sigmoid", TUTORIAL, 1),
    Case("16-16-16-16 sigmoid", Network([16] * 4, "sigmoid"), 1),
    Case("16-16-16-16 sigmoid", Network([16] * 4, "sigmoid"), 100_000),
    Case("784-256-10 relu/softmax CE, bias", Network([784, 256, 10], ["relu", "softmax"], "cross_entropy", True), 64),
    Case("784-256-10 relu/softmax CE, bias", Network([784, 256, 10], ["relu", "softmax"], "cross_entropy", True), 1024),
    Case("1024-1024-1024 tanh", Network([1024] * 3, "tanh"), 256),
    Case("residual MLP 256 wide, 4 blocks, LayerNorm, MSE", None, 512, residual_mlp, nn.MSELoss, (WIDTH,)),
    Case("CNN 2×conv3×3, maxpool, 28×28, CE", None, 256, small_cnn, nn.CrossEntropyLoss, (1, IMAGE, IMAGE), "classes"),
)
LARGE = 64  # from this batch on, a case is "large": the hardware bound and memory are reported
COMPUTE_BOUND = ("784-256-10 relu/softmax CE, bias, B=1024", "1024-1024-1024 tanh, B=256")


@dataclass(frozen=True)
class Data:
    """One case's values: columns (x [n0, B]) for chainrule, rows (x [B, n0]) as torch users hold them; a module
    case has its rows only (x, y None, no params: the module holds them)."""

    x: torch.Tensor | None
    y: torch.Tensor | None
    params: dict[str, torch.Tensor]
    x_rows: torch.Tensor
    y_rows: torch.Tensor


def make_data(case: Case) -> Data:
    generator = torch.Generator().manual_seed(0)
    network, batch = case.network, case.batch
    if network is None:
        x_rows = torch.randn(batch, *case.sample, generator=generator)
        if case.targets == "classes":
            y_rows = torch.randint(0, CLASSES, (batch,), generator=generator)
        else:
            with torch.no_grad():
                shape = case.module()(x_rows[:1]).shape[1:]  # one sample's output
            y_rows = torch.randn(batch, *shape, generator=generator)
        return Data(None, None, {}, x_rows, y_rows)
    x = torch.randn(network.sizes[0], batch, generator=generator)
    if network.loss == "cross_entropy":  # target distributions, one per sample
        y = torch.softmax(torch.randn(network.sizes[-1], batch, generator=generator), dim=0)
    else:
        y = torch.rand(network.sizes[-1], batch, generator=generator)
    params = {
        name: torch.randn(*shape, generator=generator) / (network.sizes[int(name[1:]) - 1] ** 0.5)
        for name, shape in network.parameter_shapes.items()
    }
    return Data(x, y, params, x.T.contiguous(), y.T.contiguous())


Target = tuple[str, str, bool]  # a target's name, what was measured, whether it is met
