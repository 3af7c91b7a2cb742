"""chainrule benchmarks: every ratio is measured side by side, interleaved, in one run.

    python benchmarks/bench.py                  # print the tables (about 15 minutes on 2 cores)
    python benchmarks/bench.py --quick          # a fast pass: fewer rounds, no memory column, no naive path
    python benchmarks/bench.py --update-readme  # also paste them into README.md

Gradient timings: one torch thread, float32, CPU time of the process (``time.process_time``: what the
work costs, not how long a shared machine made it wait), round-robin over the implementations so drift
and noise fall on all of them alike; min and median over the rounds. Memory: one fresh process per
implementation, the growth of peak RSS over one call after two warm-up calls (Linux: /proc/self/clear_refs
resets the peak; glibc maps every block of 64 KiB or more, so freed tensors leave RSS at once).
Symbolic timings are cold: SymPy's cache and chainrule's simplification cache are cleared first.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# JAX reads this when imported: one thread, like torch below (an unknown flag would abort JAX, not us)
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy
import sympy
import torch
import torch._inductor.config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not another install

from numeric import REFERENCE_LOSSES, compile_gradients, to_torch
from numeric._c._build import find_compiler
from symbolic import TUTORIAL, Network, derive
from symbolic._simplify import smallest

ROOT = Path(__file__).resolve().parent.parent


# --- the cases ----------------------------------------------------------------------------------------


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


# --- the implementations: each makes a step() computing {name: gradient} in its own layout -------------


def autograd_step(network: Network, data: Data) -> Callable[[], dict]:
    """What PyTorch users run: nn.Sequential, a loss, samples as rows, torch.autograd.grad."""
    model = to_torch(network, data.params)
    loss = REFERENCE_LOSSES[network.loss]
    parameters = list(model.parameters())
    return lambda: _rename(torch.autograd.grad(loss(model(data.x_rows), data.y_rows), parameters), network)


def func_grad_step(network: Network, data: Data) -> Callable[[], dict]:
    """torch.func.grad of the same module, called functionally."""
    model = to_torch(network, data.params)
    loss = REFERENCE_LOSSES[network.loss]
    params = dict(model.named_parameters())

    def batch_loss(p):
        return loss(torch.func.functional_call(model, p, (data.x_rows,)), data.y_rows)

    gradient = torch.func.grad(batch_loss)
    return lambda: _rename(tuple(gradient(params).values()), network)


def compiled_autograd_step(network: Network, data: Data) -> Callable[[], dict]:
    """torch.compile of the model and loss; autograd's backward through AOTAutograd's compiled graph."""
    model = to_torch(network, data.params)
    loss = REFERENCE_LOSSES[network.loss]
    parameters = list(model.parameters())
    forward = torch.compile(lambda x, y: loss(model(x), y))
    return lambda: _rename(torch.autograd.grad(forward(data.x_rows, data.y_rows), parameters), network)


def _rename(gradients, network: Network) -> dict:
    """Module gradients (rows layout: bias [n]) under chainrule's names and shapes (bias [n, 1])."""
    out = {}
    for name, gradient in zip(network.parameter_shapes, gradients):
        out[name] = gradient.reshape(network.parameter_shapes[name])
    return out


def chainrule_step(network: Network, data: Data) -> Callable[[], dict]:
    compiled = compile_gradients(derive(network))
    return lambda: compiled(data.x, data.y, data.params)


def chainrule_one_pass_step(network: Network, data: Data) -> Callable[[], dict]:
    """chainrule without chunking: the whole batch in one pass (what chunk="auto" saves at large batches)."""
    compiled = compile_gradients(derive(network), chunk=None)
    return lambda: compiled(data.x, data.y, data.params)


def chainrule_inductor_step(network: Network, data: Data) -> Callable[[], dict]:
    compiled = compile_gradients(derive(network), backend="inductor")
    return lambda: compiled(data.x, data.y, data.params)


def chainrule_c_step(network: Network, data: Data) -> Callable[[], dict]:
    """backend="c": one generated C function, compiled by the system's cc (or loaded from chainrule's disk
    cache) when the step is made, so its first call compiles nothing."""
    compiled = compile_gradients(derive(network), backend="c")
    if compiled.backend != "c":  # no C compiler: the torch backend ran instead, which is not this contestant
        raise RuntimeError("backend='c' needs a C compiler (CC, or cc, gcc, clang on PATH)")
    return lambda: compiled(data.x, data.y, data.params)


# The fused hand-written recursion: columns, torch's fused backward kernels, results in dead buffers.
_FORWARD_IN_PLACE = {"sigmoid": torch.sigmoid_, "tanh": torch.tanh_, "relu": torch.relu_}
_BACKWARD_OUT = {  # g ⊙ f'(z) from a = f(z), written into a
    "sigmoid": lambda g, a: torch.ops.aten.sigmoid_backward.grad_input(g, a, grad_input=a),
    "tanh": lambda g, a: torch.ops.aten.tanh_backward.grad_input(g, a, grad_input=a),
    "relu": lambda g, a: torch.ops.aten.threshold_backward.grad_input(g, a, 0, grad_input=a),
}


def fused_hand_step(network: Network, data: Data) -> Callable[[], dict]:
    """The δ recursion as a person who knows torch's kernels would write it for these cases."""
    if network.loss not in ("half_sse", "cross_entropy"):
        raise NotImplementedError(network.loss)
    depth, bias, activations = network.depth, network.bias, network.activations
    weights = [data.params[f"W{layer}"] for layer in range(1, depth + 1)]
    biases = [data.params[f"b{layer}"] for layer in range(1, depth + 1)] if bias else []

    def step():
        x, y = data.x, data.y
        outputs = [x]
        for layer in range(depth):
            z = torch.addmm(biases[layer], weights[layer], outputs[-1]) if bias else weights[layer] @ outputs[-1]
            name = activations[layer]
            outputs.append(torch.softmax(z, dim=0) if name == "softmax" else _FORWARD_IN_PLACE[name](z))
        a = outputs.pop()
        if activations[-1] == "softmax":  # cross entropy: a·Σy − y, in a's buffer
            delta = a.mul_(y.sum(0, keepdim=True)).sub_(y)
        else:  # half the sum of squares: (a − y) ⊙ f'(z)
            delta = _BACKWARD_OUT[activations[-1]](a - y, a)
        gradients = {}
        for layer in reversed(range(depth)):
            previous = outputs.pop()
            gradients[f"W{layer + 1}"] = delta @ previous.T
            if bias:
                gradients[f"b{layer + 1}"] = delta.sum(1, keepdim=True)
            if layer:
                delta = _BACKWARD_OUT[activations[layer - 1]](weights[layer].T @ delta, previous)
        return {name: gradients[name] for name in network.parameter_shapes}

    return step


def jax_step(network: Network, data: Data) -> Callable[[], dict]:
    """JAX ``jit(grad)`` on the CPU: the same model written in jax.numpy, samples as rows."""
    import jax
    import jax.numpy as jnp

    functions = {
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "softmax": lambda z: jax.nn.softmax(z, axis=-1),
    }
    losses = {
        "half_sse": lambda out, target: 0.5 * jnp.sum((out - target) ** 2),
        "cross_entropy": lambda out, target: -jnp.sum(target * jnp.log(out)),
    }
    activations, loss = [functions[name] for name in network.activations], losses[network.loss]

    def batch_loss(params, x, y):
        a = x
        for layer, f in enumerate(activations, start=1):
            z = a @ params[f"W{layer}"].T
            a = f(z + params[f"b{layer}"].reshape(-1) if network.bias else z)
        return loss(a, y)

    gradient = jax.jit(jax.grad(batch_loss))
    params = {name: jnp.asarray(value.numpy()) for name, value in data.params.items()}
    x, y = jnp.asarray(data.x_rows.numpy()), jnp.asarray(data.y_rows.numpy())
    return lambda: jax.block_until_ready(gradient(params, x, y))


def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


IMPLEMENTATIONS: dict[str, Callable[[Network, Data], Callable[[], dict]]] = {
    "autograd": autograd_step,
    "torch.func.grad": func_grad_step,
    "torch.compile(autograd)": compiled_autograd_step,
    "JAX jit(grad)": jax_step,
    "fused hand-written": fused_hand_step,
    "chainrule": chainrule_step,
    "chainrule one pass": chainrule_one_pass_step,
    "chainrule inductor": chainrule_inductor_step,
    "chainrule c": chainrule_c_step,
}
LOOP_CALLS = 31  # loop_table's calls per implementation
COMPILING = ("torch.compile(autograd)", "JAX jit(grad)", "chainrule inductor")  # first call compiles


def c_compiler_available() -> bool:
    return find_compiler() is not None


OPTIONAL = {"JAX jit(grad)": jax_available, "chainrule c": c_compiler_available}  # left out where they cannot run


def implementations() -> list[str]:
    return [name for name in IMPLEMENTATIONS if name not in OPTIONAL or OPTIONAL[name]()]


def as_torch(gradients: dict) -> dict[str, torch.Tensor]:
    return {
        name: value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(numpy.array(value))
        for name, value in gradients.items()
    }


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


def products_probe(case: Case, data: Data) -> Callable[[], None]:
    """The matrix products of one gradient call alone (W a, δ aᵀ, Wᵀ δ but the first layer's), on
    tensors of their shapes: what the matmul kernels take at these shapes, a floor tighter than the
    1024³ rate, since small inner sizes run below it."""
    network, batch = case.network, case.batch
    weights = [data.params[f"W{layer}"] for layer in range(1, network.depth + 1)]
    inputs = [data.x, *(torch.randn(width, batch) for width in network.sizes[1:-1])]
    errors = [torch.randn(width, batch) for width in network.sizes[1:]]

    def run() -> None:
        for layer, weight in enumerate(weights):
            torch.mm(weight, inputs[layer])
            torch.nn.functional.linear(errors[layer], inputs[layer])
            if layer:
                torch.mm(weight.T, errors[layer])

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
        step = IMPLEMENTATIONS[name](case.network, data)
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
    steps["products"], repeats["products"] = products_probe(case, data), repeats.get("chainrule", 1)
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
    step = IMPLEMENTATIONS[name](case.network, make_data(case))
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
    step = IMPLEMENTATIONS[name](case.network, make_data(case))
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
    command = [sys.executable, __file__, "--loop-child", case.key, name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode:
        print(f"loop of {name} at {case.key} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def loop_table(lines: list[str]) -> None:
    """Chunks against one pass where the batch is large and the network narrow, each called alone in a loop."""
    (case,) = [case for case in CASES if case.key == "16-16-16-16 sigmoid, B=100000"]
    names = ["autograd", "chainrule", "chainrule one pass"]
    results = {name: measure_loop(case, name) for name in names}
    lines += [
        f"### A call repeated alone ({LOOP_CALLS} calls, one process each), {case.key}",
        "",
        "What a training loop sees: no other implementation runs between the calls. A pass over the whole batch",
        "allocates each z, a and δ afresh (6.4 MB each); when glibc's allocator hands such blocks back to the",
        "system after a call, the next call faults their pages in again, one fault per 4 KiB. Whether it does",
        "depends on the process's earlier allocations, so the one-pass row differs between runs. Chunks (256 KB",
        "blocks here) do not depend on it.",
        "",
        "| implementation | median CPU time per call | minor page faults per call |",
        "|---|---:|---:|",
    ]
    for name, result in results.items():
        if result is None:
            lines.append(f"| {name} | failed | failed |")
        else:
            lines.append(f"| {name} | {ms(result['seconds'])} | {result['faults']:,.0f} |")
    lines.append("")


def measure_memory(case: Case, name: str) -> float | None:
    command = [sys.executable, __file__, "--memory-child", case.key, name]
    # glibc keeps freed blocks in its heap, so a warm process's RSS would not grow at all; with a fixed mmap
    # threshold every block of 64 KiB or more is mapped and unmapped, and RSS follows the live tensors
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    for _ in range(3):
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT, env=environment)
        if done.returncode:
            print(f"memory of {name} at {case.key} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
            return None
        peak = json.loads(done.stdout.strip().splitlines()[-1])["bytes"]
        # a call allocates at least its gradients, so a peak of 0 is usually a failed reading (seen twice in one
        # run on this shared machine, never when the same child ran alone): measure again. Three zeros in a row
        # are a reading: an implementation whose every block is under the mmap threshold (chainrule c on a
        # narrow network: 1 KiB gradients, its tile buffers from the heap) leaves RSS where it was
        if peak > 0:
            return peak
    return 0.0


# --- derive + compile -----------------------------------------------------------------------------------


def cold() -> None:
    sympy.core.cache.clear_cache()
    smallest.cache_clear()


def seconds(function, repeat: int = 5) -> float:
    """Median wall time of ``function()`` over ``repeat`` cold runs."""
    times = []
    for _ in range(repeat):
        cold()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def derive_and_compile(network: Network):
    return compile_gradients(derive(network))


def naive_gradients(network: Network):
    """The naive path: the loss written out in x, y, W with σ = 1/(1+e^{-z}), ``sympy.diff`` per
    weight, then ``sympy.cse`` and a torch function, as one would do by hand with SymPy."""
    s = derive(network).symbols  # only for its symbols
    a = s["x"]
    for layer in range(1, network.depth + 1):
        a = (s[f"W{layer}"] * a).applyfunc(lambda z: 1 / (1 + sympy.exp(-z)))
    loss = sum((a[k] - s["y"][k]) ** 2 for k in range(a.rows)) / 2
    weights = [w for layer in range(1, network.depth + 1) for w in s[f"W{layer}"]]
    gradients = [sympy.diff(loss, w) for w in weights]
    replacements, reduced = sympy.cse(gradients)
    arguments = [*s["x"], *s["y"], *weights]
    return sympy.lambdify(arguments, reduced, modules="torch", cse=lambda e: (replacements, e))


Target = tuple[str, str, bool]


def symbolic_scaling(lines: list[str], targets: list[Target], quick: bool) -> None:
    lines += [
        "### Deriving and compiling (wall time, cold caches)",
        "",
        "| network | weights | derive + compile | + element-wise derivation | gradient ops / forward ops |",
        "|---|---:|---:|---:|---:|",
    ]
    results = {}
    for sizes in ([4] * 4, [4] * 17, [4] * 65, [16] * 4, [32] * 4, [32] * 33):
        network = Network(sizes, "sigmoid")
        repeat = 1 if network.parameter_count > 10_000 else 5
        both = seconds(lambda network=network: derive_and_compile(network), repeat)
        cold()
        start = time.perf_counter()
        derivation = derive(network)
        compile_gradients(derivation)
        derivation.program  # noqa: B018 - the element-wise derivation, built on first use
        elementwise = time.perf_counter() - start
        counts = derivation.operation_counts()
        ratio = counts["gradient"] / counts["forward"]
        results[tuple(sizes)] = (both, elementwise, ratio)
        lines.append(
            f"| width {sizes[0]}, depth {len(sizes) - 1} | {network.parameter_count:,} | "
            f"{1e3 * both:.1f} ms | {1e3 * elementwise:.0f} ms | {ratio:.2f} |"
        )
    deep = results[(4,) * 65][0]
    targets.append(("derive + compile, width 4, depth 64 (≤ 0.15 s)", f"{deep:.3f} s", deep <= 0.15))
    shallow = max(value[0] for sizes, value in results.items() if len(sizes) == 4)
    label = "derive + compile, depth 3, slowest of widths 4/16/32 (≤ 25 ms)"
    targets.append((label, f"{1e3 * shallow:.1f} ms", shallow <= 0.025))
    worst = max(r[2] for r in results.values())
    targets.append(("gradient program ops / forward pass ops, worst size above (≤ 2.5)", f"{worst:.2f}", worst <= 2.5))
    if quick:
        lines.append("")
        return
    network = Network([4] * 4, "sigmoid")
    cold()
    start = time.perf_counter()
    naive_gradients(network)
    naive = time.perf_counter() - start
    ours = results[(4,) * 4][0]
    lines += [
        "",
        "The naive path: the loss written out with σ = 1/(1+e^(−z)), `sympy.diff` per weight, `sympy.cse`, "
        "lambdify to torch. Both sides start from a cleared SymPy cache.",
        "",
        "| network | naive path | chainrule derive + compile | ratio |",
        "|---|---:|---:|---:|",
        f"| width 4, depth 3 | {naive:.2f} s | {1e3 * ours:.1f} ms | {naive / ours:,.0f}× |",
        "",
    ]


# --- the tables ---------------------------------------------------------------------------------------


def machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores (shared), {platform.system()}"


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


def gradient_tables(lines: list[str], targets: list[Target], quick: bool) -> None:
    rounds, sample = (5, 0.005) if quick else (21, 0.02)
    names = implementations()
    if "JAX jit(grad)" not in names:
        lines += ["JAX is not installed (`pip install -e '.[bench]'`): its column is left out.", ""]
    if "chainrule c" not in names:
        lines += ["No C compiler here (CC, or cc, gcc, clang on PATH): the chainrule c column is left out.", ""]
    results: dict[str, dict[str, Timing]] = {}
    for case in CASES:
        print(f"timing {case.key} ...", file=sys.stderr)
        results[case.key] = time_case(case, names, rounds, sample)

    header = "| case | " + " | ".join(names) + " |"
    rule = "|---|" + "---:|" * len(names)
    machines = [hardware(results[case.key]) for case in CASES]
    lines += [
        "Hardware measured here (one thread, in the same rounds as each case; lowest and highest of the cases' "
        f"medians): copy bandwidth {min(m.bandwidth for m in machines) / 1e9:.1f}–"
        f"{max(m.bandwidth for m in machines) / 1e9:.1f} GB/s, float32 1024³ matmul "
        f"{min(m.matmul_rate for m in machines) / 1e9:.0f}–{max(m.matmul_rate for m in machines) / 1e9:.0f} GFLOP/s.",
        "",
        f"### Gradients: median CPU time per call, and ÷ autograd ({rounds} interleaved rounds)",
        "",
        header,
        rule,
    ]
    for case in CASES:
        timings = results[case.key]
        base = timings["autograd"].median
        cells = [ms(base)] + [f"{ms(timings[n].median)} ({timings[n].median / base:.2f}×)" for n in names[1:]]
        lines.append(f"| {case.key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Gradients: fastest round (min) ÷ autograd's fastest, and the first call (compilation) in wall time",
        "",
        header,
        rule,
    ]
    for case in CASES:
        timings = results[case.key]
        base = timings["autograd"].minimum
        cells = [
            f"{timings[n].minimum / base:.2f}×" + (f", first {ms(timings[n].first_call)}" if n in COMPILING else "")
            for n in names
        ]
        lines.append(f"| {case.key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Large batches: median ÷ the measured hardware lower bound",
        "",
        "The bound is the larger of (x, y and the parameters read once, the gradients written once) ÷ the copy",
        "bandwidth and (the matmul FLOPs of forward and backward) ÷ the 1024³ matmul rate, both measured in the",
        "case's own rounds.",
        "",
        "The products column times the matrix products of one call alone, at the call's shapes: a floor",
        "for any implementation that runs them through torch's matmul kernels.",
        "",
        "| case | bound | products | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for case in CASES:
        if case.batch < LARGE:
            continue
        bound = lower_bound(case, hardware(results[case.key]))
        timings = results[case.key]
        cells = [f"{timings[n].median / bound:.2f}×" for n in ["products", *names]]
        lines.append(f"| {case.key} | {ms(bound)} | " + " | ".join(cells) + " |")
        multiple = timings["chainrule"].median / bound
        limit = 1.1 if case.key in COMPUTE_BOUND else 3.0
        targets.append((f"{case.key}: chainrule ÷ hardware bound (≤ {limit})", f"{multiple:.3f}×", multiple <= limit))

    small = {c.key: results[c.key]["chainrule"].median / results[c.key]["autograd"].median for c in CASES}
    for key, limit in (("tutorial 1-2-2 sigmoid, B=1", 0.15), ("16-16-16-16 sigmoid, B=1", 0.2)):
        targets.append((f"{key}: chainrule ÷ autograd (≤ {limit})", f"{small[key]:.3f}×", small[key] <= limit))
    if "chainrule c" in names:  # closer to the hardware: the generated C kernel
        tutorial, big = results["tutorial 1-2-2 sigmoid, B=1"], results["16-16-16-16 sigmoid, B=100000"]
        ratio = tutorial["chainrule c"].median / tutorial["autograd"].median
        targets.append(("tutorial 1-2-2 sigmoid, B=1: chainrule c ÷ autograd (≤ 0.1)", f"{ratio:.3f}×", ratio <= 0.1))
        ratio = big["chainrule c"].median / big["autograd"].median
        label = "16-16-16-16 sigmoid, B=100000: chainrule c ÷ autograd (≤ 0.25)"
        targets.append((label, f"{ratio:.3f}×", ratio <= 0.25))
        case = next(case for case in CASES if case.key == "16-16-16-16 sigmoid, B=100000")
        multiple = big["chainrule c"].median / lower_bound(case, hardware(big))
        label = "16-16-16-16 sigmoid, B=100000: chainrule c ÷ hardware bound (≤ 2.5)"
        targets.append((label, f"{multiple:.3f}×", multiple <= 2.5))
    check = check_overhead(rounds)
    targets.append(("input check when shapes, dtypes, devices repeat (≤ 3 µs)", f"{1e6 * check:.1f} µs", check <= 3e-6))
    big = results["16-16-16-16 sigmoid, B=100000"]
    for name, limit in (("chainrule", 0.6), ("chainrule inductor", 0.45)):
        ratio = big[name].median / big["autograd"].median
        targets.append((f"16-16-16-16, B=100000: {name} ÷ autograd (≤ {limit})", f"{ratio:.3f}×", ratio <= limit))

    if quick:
        lines += ["", "(memory: not measured with --quick)", ""]
        return
    lines += [
        "",
        "### Large batches: peak memory of one call (RSS growth, one process per implementation), and ÷ autograd",
        "",
        "After two warm-up calls; every block of 64 KiB or more mapped on its own (MALLOC_MMAP_THRESHOLD_), so RSS",
        "follows the live tensors. The gradients returned are part of each peak.",
        "",
        "| case | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for case in CASES:
        if case.batch < LARGE:
            continue
        print(f"memory {case.key} ...", file=sys.stderr)
        peaks = {name: measure_memory(case, name) for name in names}
        base = peaks["autograd"]
        cells = [
            "failed"
            if peaks[n] is None
            else f"{peaks[n] / 1e6:.1f} MB" + (f" ({peaks[n] / base:.2f}×)" if n != "autograd" and base else "")
            for n in names
        ]
        lines.append(f"| {case.key} | " + " | ".join(cells) + " |")
        if case.key in ("16-16-16-16 sigmoid, B=100000", "1024-1024-1024 tanh, B=256") and base and peaks["chainrule"]:
            ratio = peaks["chainrule"] / base
            targets.append((f"{case.key}: chainrule peak memory ÷ autograd (≤ 1.0)", f"{ratio:.3f}×", ratio <= 1.0))
    lines.append("")


def cli_time(lines: list[str], targets: list[Target]) -> None:
    executable = shutil.which("chainrule")
    command = [executable] if executable else [sys.executable, "-m", "numeric.cli"]
    with tempfile.TemporaryDirectory() as folder:
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(
                [*command, "derive", "--format", "latex", "-o", f"{folder}/d.tex"], check=True, capture_output=True
            )
            runs.append(time.perf_counter() - start)
    wall = statistics.median(runs)
    lines += [f"`chainrule derive --format latex` for the tutorial (torch never imported): {wall:.2f} s wall.", ""]
    targets.append(("`chainrule derive` (LaTeX) for the tutorial, wall (≤ 0.8 s)", f"{wall:.2f} s", wall <= 0.8))


def verify_time(lines: list[str], targets: list[Target]) -> None:
    """``chainrule verify`` end to end on an MNIST-sized network, pinned to one core."""
    executable = shutil.which("chainrule")
    command = [executable] if executable else [sys.executable, "-m", "numeric.cli"]
    one_core = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    network = ["--sizes", "784,128,10", "--activation", "relu,softmax", "--loss", "cross_entropy", "--bias"]
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(
            [*one_core, *command, "verify", *network],
            check=True,
            capture_output=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        runs.append(time.perf_counter() - start)
    wall = statistics.median(runs)
    lines += [
        f"`chainrule verify` 784-128-10 (relu/softmax, cross_entropy, bias; every entry against autograd, "
        f"sampled finite differences), one core: {wall:.2f} s wall.",
        "",
    ]
    targets.append(("`chainrule verify` 784-128-10, one core, wall", f"{wall:.2f} s", wall <= 10))


def width_time(lines: list[str], targets: list[Target]) -> None:
    """Width never costs: derive + text/LaTeX/Markdown of wide networks (``benchmarks/width.py``, own process)."""
    lines += ["### Deriving and rendering wide networks (after imports; peak RSS of the whole process)", ""]
    lines += ["| network | derive + text + LaTeX + Markdown | peak RSS |", "|---|---:|---:|"]
    for sizes in ("784,128,10", "5000,5000,5000"):
        runs = []
        for _ in range(3):
            done = subprocess.run(
                [sys.executable, str(ROOT / "benchmarks" / "width.py"), sizes],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            found = re.search(r"markdown ([\d.]+) s; peak RSS (\d+) MB", done.stdout)
            runs.append((float(found.group(1)), int(found.group(2))))
        wall, rss = statistics.median(r[0] for r in runs), max(r[1] for r in runs)
        name = sizes.replace(",", "-")
        lines.append(f"| {name} relu/softmax cross_entropy, bias | {wall:.2f} s | {rss} MB |")
        targets.append((f"derive + text/LaTeX/Markdown, {name} (≤ 1 s)", f"{wall:.2f} s", wall <= 1))
        if sizes.startswith("5000"):
            targets.append((f"peak memory of that, {name} (≤ 300 MB)", f"{rss} MB", rss <= 300))
    lines.append("")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds, no memory column, no naive path")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--memory-child", nargs=2, metavar=("CASE", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    parser.add_argument("--loop-child", nargs=2, metavar=("CASE", "IMPLEMENTATION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # compile from scratch: with inductor's on-disk caches a run after the first would report no compile time
    torch._inductor.config.force_disable_caches = True
    if args.memory_child:
        memory_child(*args.memory_child)
        return 0
    if args.loop_child:
        loop_child(*args.loop_child)
        return 0
    jax_note = ""
    if jax_available():
        import jax

        jax_note = f", jax {jax.__version__} (XLA_FLAGS={os.environ['XLA_FLAGS']})"
    lines: list[str] = [
        f"Measured by `python benchmarks/bench.py{' --quick' if args.quick else ''}` on {machine()}: torch "
        f"{torch.__version__}, one torch thread, sympy {sympy.__version__}{jax_note}. The machine is shared with "
        "other work, so single numbers move by ±10–20% between runs; the ratios, measured side by side in "
        "interleaved rounds, move less.",
        "",
    ]
    targets: list[Target] = []
    symbolic_scaling(lines, targets, args.quick)
    gradient_tables(lines, targets, args.quick)
    loop_table(lines)
    width_time(lines, targets)
    cli_time(lines, targets)
    verify_time(lines, targets)
    lines += ["### Targets", "", "| target | measured | met |", "|---|---:|:---:|"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in targets]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.update_readme:
        readme = ROOT / "README.md"
        text = readme.read_text(encoding="utf-8")
        block = re.compile(r"(<!-- benchmark: begin -->\n).*?(<!-- benchmark: end -->)", re.S)
        readme.write_text(block.sub(lambda m: m.group(1) + table + m.group(2), text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
