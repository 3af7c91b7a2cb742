"""backend="c" beside autograd and chainrule's torch backend: CPU time per gradient call.

    python benchmarks/c_backend.py                      # every case, about three minutes
    python benchmarks/c_backend.py --cases 784 1024-    # the cases whose label has one of these in it
    python benchmarks/c_backend.py --against HEAD~3     # also the kernel of another git revision, same rounds
    python benchmarks/c_backend.py --memory             # also the peak memory of one call, as bench.py reads it

One torch thread (the C kernel runs on one), float32, ``time.process_time`` (what the work costs, not how long a
shared machine made it wait), interleaved rounds: each round times every contender once, so drift and load
fall on all alike; median and min over the rounds. The load average is printed before and after: on a busy
machine the medians move, their ratios much less. For the large batch, the hardware lower bound of bench.py
(the bytes that must move ÷ copy bandwidth, the products' FLOPs ÷ a 1024³ matmul's rate), its probes timed in
the same rounds.

``--against REV`` adds that revision's kernel as a contender: its checkout (``git archive``, in a temporary folder)
prints the C source and tile it would run, and this process compiles and calls it by ctypes in the same rounds, so
a change to the kernel is measured side by side with the kernel before it. ``--memory`` runs bench.py's memory
child (peak RSS growth of one call, one process each) for autograd and chainrule c here, and there for REV.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not another install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench.py and its modules beside this file

from bench_cases import Case, make_data
from bench_measure import hardware, hardware_probes, lower_bound

from numeric import REFERENCE_LOSSES, compile_gradients, to_torch
from numeric._c._blas import find_blas
from numeric._c._build import find_compiler, load
from symbolic import TUTORIAL, Network, derive

ROOT = Path(__file__).resolve().parent.parent
_WIDE = Network([784, 256, 10], ["relu", "softmax"], "cross_entropy", True)
CASES = (  # bench.py's cases, under bench.py's labels (its memory child finds them by label and batch)
    ("tutorial 1-2-2 sigmoid", TUTORIAL, 1),
    ("16-16-16-16 sigmoid", Network([16] * 4, "sigmoid"), 100_000),
    ("784-256-10 relu/softmax CE, bias", _WIDE, 64),
    ("784-256-10 relu/softmax CE, bias", _WIDE, 1024),
    ("1024-1024-1024 tanh", Network([1024] * 3, "tanh"), 256),
)


def data(network: Network, batch: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """bench.py's draw for the case (``make_data``): both benchmarks time the same tensors."""
    drawn = make_data(Case("", network, batch))
    return drawn.x, drawn.y, drawn.params


def contenders(network: Network, x, y, params) -> tuple[dict[str, Callable[[], dict[str, torch.Tensor]]], object]:
    """The timed calls by name, and chainrule c's compiled function (whose work area is reported)."""
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
    steps = {
        "autograd": autograd,
        "chainrule torch": lambda: torch_backend(x, y, params),
        "chainrule c": lambda: c_backend(x, y, params),
    }
    if getattr(c_backend, "kernel", None) is not None and c_backend.kernel.wide and any(c_backend.blas.values()):
        own = compile_gradients(derivation, backend="c")  # the same kernel, its wide products by its own GEMM
        own.blas = dict.fromkeys(own.blas)
        steps["c, own GEMM"] = lambda: own(x, y, params)
    return steps, c_backend


# --- another revision's kernel -----------------------------------------------------------------------------

_DUMP = """
import json, sys
import torch
from numeric import compile_gradients
from symbolic import Network, TUTORIAL, derive
cases = json.loads(sys.argv[1])
out = []
for sizes, activations, loss, bias, batch in cases:
    network = TUTORIAL if sizes is None else Network(sizes, activations, loss, bias)
    f = compile_gradients(derive(network), backend="c")
    tile = f._tile(batch, 4)
    out.append({"source": f.source, "name": f.kernel.function["float32"], "tile": tile})
print(json.dumps(out))
"""


def revision_kernels(revision: str, cases) -> list[dict]:
    """The float32 C source, function name and tile of each case's kernel at ``revision`` of this repository."""
    with tempfile.TemporaryDirectory(prefix="chainrule-against-") as folder:
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        described = [
            (None, None, None, None, batch)
            if network is TUTORIAL
            else (list(network.sizes), list(network.activations), network.loss, network.bias, batch)
            for _, network, batch in cases
        ]
        done = subprocess.run(
            [sys.executable, "-c", _DUMP, json.dumps(described)], cwd=folder, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"the kernels of {revision} did not build:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def revision_step(dumped: dict, network: Network, x, y, params) -> Callable[[], dict[str, torch.Tensor]]:
    """A call of another revision's kernel: its parameters bound by name from its C signature (B, T_max, the
    inputs, out_<gradient>, out_loss, blas: the BLAS found here; any other pointer, such as a work area, NULL).
    Called by ctypes alone, without the wrapper's checks: at B=1 it times less than chainrule c does."""
    function = getattr(load(dumped["source"], find_compiler()), dumped["name"])
    header = re.search(rf"int {dumped['name']}\(([^)]*)\)", dumped["source"]).group(1)
    names = [re.split(r"[ *]", part.strip())[-1] for part in header.split(",")]
    function.argtypes = [ctypes.c_int64 if name in ("B", "T_max") else ctypes.c_void_p for name in names]
    function.restype = ctypes.c_int
    batch = x.shape[1]
    tensors = {"x": x, "y": y, **params}

    def step() -> dict[str, torch.Tensor]:
        outputs = {name: torch.empty(*shape) for name, shape in network.parameter_shapes.items()}
        arguments = []
        for name in names:
            if name == "B":
                arguments.append(batch)
            elif name == "T_max":
                arguments.append(dumped["tile"])
            elif name in tensors:
                arguments.append(tensors[name].data_ptr())
            elif name.startswith("out_") and name[4:] in outputs:
                arguments.append(outputs[name[4:]].data_ptr())
            elif name == "blas":
                arguments.append(find_blas()["float32"])
            else:
                arguments.append(None)
        if function(*arguments) != 0:
            raise MemoryError(dumped["name"])
        return outputs

    return step


def memory(label: str, batch: int, name: str, folder: Path) -> float:
    """bench.py's reading of one call's peak memory (its memory child, in the checkout at ``folder``)."""
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    command = [sys.executable, "benchmarks/bench.py", "--memory-child", f"{label}, B={batch}", name]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=environment, timeout=900)
    if done.returncode:
        return float("nan")
    return json.loads(done.stdout.strip().splitlines()[-1])["bytes"]


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
    parser.add_argument("--cases", nargs="*", default=[], help="only the cases whose 'label, B=batch' has one of these")
    parser.add_argument("--against", metavar="REV", help="also time the kernel of this git revision, same rounds")
    parser.add_argument("--memory", action="store_true", help="also the peak memory of one call (bench.py's way)")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, float32; load average before: {os.getloadavg()}")
    cases = [c for c in CASES if not arguments.cases or any(part in f"{c[0]}, B={c[2]}" for part in arguments.cases)]
    against = revision_kernels(arguments.against, cases) if arguments.against else [None] * len(cases)
    for (label, network, batch), dumped in zip(cases, against):
        x, y, params = data(network, batch)
        steps, c_compiled = contenders(network, x, y, params)
        if dumped is not None:
            steps[f"c at {arguments.against}"] = revision_step(dumped, network, x, y, params)
        reference = steps["autograd"]()
        for name, step in steps.items():  # every contender computes the same gradients
            for key, value in step().items():
                torch.testing.assert_close(value, reference[key], rtol=2e-3, atol=1e-4, msg=f"{name} {key}")
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
            if dumped is not None:
                before = statistics.median(samples[f"c at {arguments.against}"])
                print(f"  {'':16} c at {arguments.against} at {before / bound:.2f}× the bound")
        if arguments.memory:
            peaks = {name: memory(label, batch, name, ROOT) for name in ("autograd", "chainrule c")}
            if dumped is not None:
                with tempfile.TemporaryDirectory(prefix="chainrule-against-") as folder:
                    archive = subprocess.run(["git", "archive", arguments.against], cwd=ROOT, capture_output=True)
                    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
                    peaks[f"c at {arguments.against}"] = memory(label, batch, "chainrule c", Path(folder))
            base = peaks["autograd"]
            shown = ", ".join(
                f"{name} {peak / 1e6:.3f} MB" + (f" ({peak / base:.2f}×)" if base and name != "autograd" else "")
                for name, peak in peaks.items()
            )
            print(f"  peak memory of one call (RSS growth): {shown}")
            held = getattr(getattr(c_compiled, "_work", None), "areas", {})  # this thread's, by dtype
            kept = sum(area.numel() * area.element_size() for area in held.values())
            tile = c_compiled._tile(batch, 4)
            area = 4 * c_compiled._work_reals["float32"](tile, int(c_compiled.blas["float32"] is None))
            total = peaks["chainrule c"] + kept
            print(
                f"  chainrule c keeps its work area between calls (not in the peak above): {kept / 1e6:.3f} MB "
                f"(tiles of {tile} samples, {area / 1e6:.3f} MB of area; under 64 KiB allocated by each call): "
                f"one call + kept {total / 1e6:.3f} MB" + (f", {total / base:.4f}× autograd" if base else "")
            )
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
