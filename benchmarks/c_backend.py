"""backend="c" beside autograd and chainrule's torch backend: CPU time per gradient call.

    python benchmarks/c_backend.py              # about a minute
    python benchmarks/c_backend.py --rounds 15  # more rounds, steadier medians

One torch thread (the C kernel runs on one), float32, ``time.process_time`` (what the work costs, not how long a
shared machine made it wait), interleaved rounds: each round times every contender once, so drift and load
fall on all alike; median and min over the rounds. The load average is printed before and after: on a busy
machine the medians move, their ratios much less. For the large batch, the hardware lower bound of bench.py
(the bytes that must move ÷ copy bandwidth, the products' FLOPs ÷ a 1024³ matmul's rate), its probes timed in
the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not another install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench.py beside this file

from bench import Case, hardware, hardware_probes, lower_bound

from numeric import REFERENCE_LOSSES, compile_gradients, to_torch
from symbolic import TUTORIAL, Network, derive

CASES = (
    ("tutorial 1-2-2 sigmoid", TUTORIAL, 1),
    ("16-16-16-16 sigmoid", Network([16] * 4, "sigmoid"), 100_000),
)


def data(network: Network, batch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(network.sizes[0], batch, generator=generator)
    y = torch.rand(network.sizes[-1], batch, generator=generator)
    params = {
        name: torch.randn(*shape, generator=generator) / shape[1] ** 0.5
        for name, shape in network.parameter_shapes.items()
    }
    return x, y, params


def contenders(network: Network, x, y, params) -> dict[str, Callable[[], dict[str, torch.Tensor]]]:
    model = to_torch(network, params)  # nn.Sequential of nn.Linear and activation modules
    loss = REFERENCE_LOSSES[network.loss]
    parameters = list(model.parameters())
    x_rows, y_rows = x.T.contiguous(), y.T.contiguous()  # samples as rows, as torch users hold them

    def autograd() -> dict[str, torch.Tensor]:
        gradients = torch.autograd.grad(loss(model(x_rows), y_rows), parameters)
        return {name: g.reshape(shape) for (name, shape), g in zip(network.parameter_shapes.items(), gradients)}

    derivation = derive(network)
    torch_backend = compile_gradients(derivation)
    c_backend = compile_gradients(derivation, backend="c")
    return {
        "autograd": autograd,
        "chainrule torch": lambda: torch_backend(x, y, params),
        "chainrule c": lambda: c_backend(x, y, params),
    }


def time_case(steps: dict[str, Callable], rounds: int, sample_seconds: float) -> dict[str, list[float]]:
    repeats = {}
    for name, step in steps.items():
        step()
        start = time.process_time()
        step()
        repeats[name] = max(1, int(sample_seconds / max(time.process_time() - start, 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):  # round-robin: each round times every contender once
        for name, step in steps.items():
            start = time.process_time()
            for _ in range(repeats[name]):
                step()
            samples[name].append((time.process_time() - start) / repeats[name])
    return samples


class _Median:
    """What bench.hardware reads of a probe's timing."""

    def __init__(self, median: float):
        self.median = median


def show(seconds: float) -> str:
    return f"{seconds * 1e6:9.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:9.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sample-seconds", type=float, default=0.15, help="CPU time per contender per round")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, float32; load average before: {os.getloadavg()}")
    for label, network, batch in CASES:
        x, y, params = data(network, batch)
        steps = contenders(network, x, y, params)
        reference = steps["autograd"]()
        for name, step in steps.items():  # every contender computes the same gradients
            for key, value in step().items():
                torch.testing.assert_close(value, reference[key], rtol=2e-3, atol=1e-5, msg=f"{name} {key}")
        probes = hardware_probes() if batch >= 64 else {}
        samples = time_case({**steps, **probes}, arguments.rounds, arguments.sample_seconds)
        timings = {name: samples.pop(name) for name in probes}
        print(f"\n{label}, B={batch} ({arguments.rounds} interleaved rounds; load now {os.getloadavg()[0]:.2f})")
        print(f"  {'':16} {'median':>12} {'min':>12}  {'median / autograd':>18}")
        base = statistics.median(samples["autograd"])
        for name, values in samples.items():
            median = statistics.median(values)
            print(f"  {name:16} {show(median)} {show(min(values))}  {median / base:17.3f}×")
        if timings:
            measured = hardware({name: _Median(statistics.median(values)) for name, values in timings.items()})
            bound = lower_bound(Case(label, network, batch), measured)
            c = statistics.median(samples["chainrule c"])
            print(
                f"  hardware bound {show(bound)} (copy {measured.bandwidth / 1e9:.1f} GB/s, 1024³ matmul "
                f"{measured.matmul_rate / 1e9:.0f} GFLOP/s): chainrule c at {c / bound:.2f}× the bound"
            )
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
