"""The benchmark's cases: the networks, batch sizes and values every contestant is timed on."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from symbolic import TUTORIAL, Network


@dataclass(frozen=True)
class Case:
    label: str
    network: Network
    batch: int

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
)
LARGE = 64  # from this batch on, a case is "large": the hardware bound and memory are reported
COMPUTE_BOUND = ("784-256-10 relu/softmax CE, bias, B=1024", "1024-1024-1024 tanh, B=256")


@dataclass(frozen=True)
class Data:
    """One case's values: columns (x [n0, B]) for chainrule, rows (x [B, n0]) as torch users hold them."""

    x: torch.Tensor
    y: torch.Tensor
    params: dict[str, torch.Tensor]
    x_rows: torch.Tensor
    y_rows: torch.Tensor


def make_data(case: Case) -> Data:
    generator = torch.Generator().manual_seed(0)
    network, batch = case.network, case.batch
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
