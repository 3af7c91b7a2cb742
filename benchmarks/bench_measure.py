"""Measurement: the hardware bound, the interleaved timing rounds, and the one-process memory and loop runs."""

from __future__ import annotations

import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from bench_cases import CASES, Case, Data, make_data
from bench_contestants import LOOP_CALLS, Unsupported, as_torch, make_step

from numeric import compile_gradients
from symbolic import TUTORIAL, Network, derive

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().with_name("bench.py")  # the children run the command line's own script

# --- the hardware bound -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    bandwidth: float  # bytes per second, a large copy (read + write)
    matmul_rate: float  # float32 FLOPs per second, a 1024³ torch.mm


# The two hardware probes run in the same round-robin as the implementations, so the bound is measured
# under the same load as the times divided by it (on a shared machine the load changes during a run).
COPY_ELEMENTS, MATMUL_SIZE = 16 * 2**20, 1024  # 64 MiB: far beyond the caches


def hardware_probes() -> dict[str, Callable[[], object]]:
    source, target = torch.rand(COPY_ELEMENTS), torch.empty(COPY_ELEMENTS)
    a, b = torch.rand(MATMUL_SIZE, MATMUL_SIZE), torch.rand(MATMUL_SIZE, MATMUL_SIZE)
    return {"copy": lambda: target.copy_(source), "matmul": lambda: torch.mm(a, b)}


def hardware(timings: dict[str, Timing]) -> Hardware:
    return Hardware(2 * 4 * COPY_ELEMENTS / timings["copy"].median, 2 * MATMUL_SIZE**3 / timings["matmul"].median)


def matmul_flops(network: Network, batch: int) -> int:
    """FLOPs of the products backpropagation cannot skip: W·a forward and δ·aᵀ for every layer, Wᵀ·δ for
    every layer but the first (tests/test_bench.py counts them with torch's FlopCounterMode)."""
    products = [2 * network.sizes[layer] * network.sizes[layer - 1] * batch for layer in range(1, network.depth + 1)]
    return 2 * sum(products) + sum(products[1:])


CHUNK = 4096  # samples per chunk of the "products, chunked" floor: a chunk's operands stay in cache


def products_probe(case: Case, data: Data, chunk: int | None = None) -> Callable[[], None]:
    """The matrix products of one gradient call alone (W a, δ aᵀ, Wᵀ δ but the first layer's), on
    tensors of their shapes: what the matmul kernels take at these shapes, a floor tighter than the
    1024³ rate, since small inner sizes run below it. ``chunk``: the same products on that many samples at a
    time (the batch in chunks, as chainrule's chunked calls run them), whose operands stay in cache."""
    network, batch = case.network, case.batch
    columns = batch if chunk is None else min(chunk, batch)
    weights = [data.params[f"W{layer}"] for layer in range(1, network.depth + 1)]
    inputs = [data.x[:, :columns], *(torch.randn(width, columns) for width in network.sizes[1:-1])]
    errors = [torch.randn(width, columns) for width in network.sizes[1:]]
    widths = [columns] * (batch // columns) + ([batch % columns] if batch % columns else [])

    def run() -> None:
        for width in widths:  # the whole batch, or its chunks (the last one shorter)
            for layer, weight in enumerate(weights):
                torch.mm(weight, inputs[layer][:, :width])
                torch.nn.functional.linear(errors[layer][:, :width], inputs[layer][:, :width])
                if layer:
                    torch.mm(weight.T, errors[layer][:, :width])

    return run


def lower_bound(case: Case, measured: Hardware) -> float:
    """Seconds no implementation can beat: the larger of
    * the bytes that must move (read x, y and the parameters, write the gradients) ÷ measured bandwidth;
    * the matmul FLOPs ÷ the measured 1024³ matmul rate. Element-wise work is left out: it only makes the
      bound lower."""
    network, batch = case.network, case.batch
    moved = 4 * (batch * (network.sizes[0] + network.sizes[-1]) + 2 * network.parameter_count)
    return max(moved / measured.bandwidth, matmul_flops(network, batch) / measured.matmul_rate)


# --- timing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    median: float
    minimum: float
    first_call: float  # wall seconds of the first call (compilation, for the compiling ones)


def time_case(case: Case, names: list[str], rounds: int, sample_seconds: float) -> dict[str, Timing]:
    data = make_data(case)
    steps, first, repeats = {}, {}, {}
    reference = None
    for name in names:
        try:
            step = make_step(name, case, data)
        except Unsupported:
            continue  # left out of the results: the tables say "unsupported"
        start = time.perf_counter()
        result = as_torch(step())
        first[name] = time.perf_counter() - start
        reference = reference or result
        for key, value in reference.items():  # every contestant computes the same gradients
            torch.testing.assert_close(result[key], value, rtol=2e-3, atol=1e-4, msg=f"{name} {key}")
        step()
        start = time.process_time()
        step()
        once = max(time.process_time() - start, 1e-6)
        steps[name], repeats[name] = step, max(1, int(sample_seconds / once))
    for name, probe in hardware_probes().items():
        probe()
        steps[name], repeats[name] = probe, 1
    if case.network is not None:  # a module case has no bound: its products are not W a, δ aᵀ, Wᵀ δ
        steps["products"], repeats["products"] = products_probe(case, data), repeats.get("chainrule", 1)
        chunked = products_probe(case, data, CHUNK)
        steps["products, chunked"], repeats["products, chunked"] = chunked, repeats.get("chainrule", 1)
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):  # round-robin: each round times every implementation (and probe) once
        for name in steps:
            step, count = steps[name], repeats[name]
            start = time.process_time()
            for _ in range(count):
                step()
            samples[name].append((time.process_time() - start) / count)
    return {
        name: Timing(statistics.median(values), min(values), first.get(name, 0.0))  # probes: no first call
        for name, values in samples.items()
    }


def check_overhead(rounds: int) -> float:
    """Seconds of CompiledGradients' input check when the signature repeats (tutorial, B=1)."""
    data = make_data(CASES[0])
    compiled = compile_gradients(derive(TUTORIAL))
    compiled(data.x, data.y, data.params)
    count, times = 20_000, []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(count):
            compiled._checked(data.x, data.y, data.params)
        times.append((time.process_time() - start) / count)
    return statistics.median(times)


# --- memory: one process per implementation ------------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def memory_child(case_key: str, name: str) -> None:
    """Print the peak RSS growth (bytes) of one call, after two warm-up calls, in this fresh process."""
    torch.set_num_threads(1)
    (case,) = [case for case in CASES if case.key == case_key]
    try:
        step = make_step(name, case, make_data(case))
    except Unsupported:
        print(json.dumps({"bytes": None}))
        return
    step(), step()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    before = _rss_kib("VmRSS")
    result = step()
    peak = _rss_kib("VmHWM")
    del result
    print(json.dumps({"bytes": 1024 * (peak - before)}))


def loop_child(case_key: str, name: str) -> None:
    """Print the median CPU time and minor page faults of a call repeated alone in this fresh process, as a
    training loop calls it: the allocator's state is the implementation's own, not its neighbours'."""
    torch.set_num_threads(1)
    (case,) = [case for case in CASES if case.key == case_key]
    step = make_step(name, case, make_data(case))
    step(), step()
    times, faults = [], []
    for _ in range(LOOP_CALLS):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(json.dumps({"seconds": statistics.median(times), "faults": statistics.median(faults)}))


def measure_loop(case: Case, name: str) -> dict | None:
    command = [sys.executable, str(BENCH), "--loop-child", case.key, name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode:
        print(f"loop of {name} at {case.key} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_memory(case: Case, name: str) -> float | str | None:
    command = [sys.executable, str(BENCH), "--memory-child", case.key, name]
    # glibc keeps freed blocks in its heap, so a warm process's RSS would not grow at all; with a fixed mmap
    # threshold every block of 64 KiB or more is mapped and unmapped, and RSS follows the live tensors
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    for _ in range(3):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT, env=environment)
        if done.returncode:
            print(f"memory of {name} at {case.key} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        peak = json.loads(done.stdout.strip().splitlines()[-1])["bytes"]
        if peak is None:
            return "unsupported"
        # a call allocates at least its gradients, so a peak of 0 is usually a failed reading (seen twice in one
        # run on this shared machine, never when the same child ran alone): measure again. Three zeros in a row
        # are a reading: an implementation whose every block is under the mmap threshold (chainrule c on a
        # narrow network: 1 KiB gradients, its tile buffers from the heap) leaves RSS where it was
        if peak > 0:
            return peak
    return 0.0
