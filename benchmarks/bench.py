"""chainrule benchmarks: every ratio is measured side by side in one run.

    python benchmarks/bench.py                  # print the tables
    python benchmarks/bench.py --update-readme  # also paste them into README.md

Timings use ``torch.utils.benchmark.Timer`` (median of blocked runs) with one torch thread, float32.
Symbolic timings are cold: SymPy's cache and chainrule's simplification cache are cleared first.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sympy
import torch
from torch.utils.benchmark import Timer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not another install

from numeric import compile_gradients
from symbolic import TUTORIAL, Network, derive
from symbolic._simplify import smallest

ROOT = Path(__file__).resolve().parent.parent
MIN_RUN_TIME = 0.4  # seconds per timed measurement


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


# --- the baselines ----------------------------------------------------------------------------------


def naive_gradients(network: Network):
    """The naive path: the loss written out in x, y, W with σ = 1/(1+e^{-z}), ``sympy.diff`` per
    weight, then ``sympy.cse`` and a torch function, as one would do by hand with SymPy."""
    d = derive(network)  # only for its symbols
    s = d.symbols
    a = s["x"]
    for layer in range(1, network.depth + 1):
        a = (s[f"W{layer}"] * a).applyfunc(lambda z: 1 / (1 + sympy.exp(-z)))
    loss = sum((a[k] - s["y"][k]) ** 2 for k in range(a.rows)) / 2
    weights = [w for layer in range(1, network.depth + 1) for w in s[f"W{layer}"]]
    gradients = [sympy.diff(loss, w) for w in weights]
    replacements, reduced = sympy.cse(gradients)
    arguments = [*s["x"], *s["y"], *weights]
    function = sympy.lambdify(arguments, reduced, modules="torch", cse=lambda e: (replacements, e))
    shapes = network.parameter_shapes

    def call(x, y, params):
        flat = [*x, *y, *(v for name in shapes for v in params[name].reshape(-1))]
        values = function(*flat)
        out, start = {}, 0
        for name, (rows, cols) in shapes.items():
            out[name] = torch.stack([v.sum() for v in values[start : start + rows * cols]]).reshape(rows, cols)
            start += rows * cols
        return out

    return call


def autograd_function(network: Network):
    """The reference users would write: the forward pass in torch, then ``torch.autograd.grad``."""
    depth = network.depth

    def call(x, y, params):
        weights = [params[f"W{layer}"].detach().requires_grad_(True) for layer in range(1, depth + 1)]
        a = x
        for weight in weights:
            a = torch.sigmoid(weight @ a)
        loss = 0.5 * ((a - y) ** 2).sum()
        return dict(zip(params, torch.autograd.grad(loss, weights)))

    return call


def hand_written_recursion(network: Network):
    """The δ recursion written by hand with matmuls: the speed to match."""
    depth = network.depth

    def call(x, y, params):
        weights = [params[f"W{layer}"] for layer in range(1, depth + 1)]
        activations = [x]
        for weight in weights:
            activations.append(torch.sigmoid(weight @ activations[-1]))
        a = activations[-1]
        delta = (a - y) * a * (1 - a)
        gradients = [None] * depth
        for layer in reversed(range(depth)):
            gradients[layer] = delta @ activations[layer].T
            if layer:
                a = activations[layer]
                delta = (weights[layer].T @ delta) * a * (1 - a)
        return {f"W{layer + 1}": g for layer, g in enumerate(gradients)}

    return call


def run_time(function, x, y, params) -> float:
    timer = Timer(stmt="f(x, y, p)", globals={"f": function, "x": x, "y": y, "p": params}, num_threads=1)
    return timer.blocked_autorange(min_run_time=MIN_RUN_TIME).median


# --- the measurements -------------------------------------------------------------------------------


def symbolic_scaling(lines: list[str], targets: list[tuple[str, str, bool]]) -> None:
    lines += [
        "### Deriving and compiling",
        "",
        "| network | weights | derive + compile | + element-wise derivation | gradient ops / forward ops |",
        "|---|---:|---:|---:|---:|",
    ]
    results = {}
    for sizes in ([4] * 4, [4] * 17, [4] * 65, [16] * 4, [32] * 33):
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
    growth = results[(4,) * 65][0] / results[(4,) * 17][0]
    targets.append(("derive + compile, width 4: depth 64 / depth 16 (linear is 4)", f"{growth:.1f}×", growth <= 5))
    big_time = results[(32,) * 33][1]
    targets.append(
        ("32,768 weights, derive + compile including the element-wise derivation", f"{big_time:.1f} s", big_time <= 10)
    )
    worst = max(r[2] for r in results.values())
    targets.append(("gradient program ops / forward pass ops, worst size above", f"{worst:.2f}", worst <= 2.5))

    naive_lines = []
    for depth in (3, 4):
        network = Network([4] * (depth + 1), "sigmoid")
        cold()
        start = time.perf_counter()
        naive_gradients(network)
        naive = time.perf_counter() - start
        ours = results[(4,) * 4][0] if depth == 3 else seconds(lambda network=network: derive_and_compile(network))
        naive_lines.append(f"| width 4, depth {depth} | {naive:.2f} s | {1e3 * ours:.1f} ms | {naive / ours:,.0f}× |")
        if depth == 3:
            targets.append(
                ("derive + compile vs the naive path, width 4, depth 3", f"{naive / ours:,.0f}×", naive / ours >= 1000)
            )
    lines += [
        "",
        "The naive path: the loss written out with σ = 1/(1+e^(−z)), `sympy.diff` per weight, `sympy.cse`, "
        "lambdify to torch. Both sides start from a cleared SymPy cache.",
        "",
        "| network | naive path | chainrule derive + compile | ratio |",
        "|---|---:|---:|---:|",
        *naive_lines,
        "",
    ]


def evaluation(lines: list[str], targets: list[tuple[str, str, bool]]) -> None:
    lines += [
        "### Evaluating the gradients (float32, one thread; time per call, and ÷ autograd)",
        "",
        "| network | batch | autograd | hand-written δ recursion | chainrule (matrix) "
        "| chainrule (element-wise) | naive sympy.diff |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    generator = torch.Generator().manual_seed(0)
    for sizes in ([1, 2, 2], [4] * 4, [16] * 4):
        network = Network(sizes, "sigmoid")
        derivation = derive(network)
        functions = {
            "autograd": autograd_function(network),
            "hand": hand_written_recursion(network),
            "matrix": compile_gradients(derivation),
            "elementwise": compile_gradients(derivation, "elementwise"),
        }
        if network.parameter_count <= 64:
            functions["naive"] = naive_gradients(network)
        for batch in (1, 100_000):
            x = torch.randn(sizes[0], batch, generator=generator)
            y = torch.rand(sizes[-1], batch, generator=generator)
            params = {
                name: torch.randn(*shape, generator=generator) / shape[1] ** 0.5
                for name, shape in network.parameter_shapes.items()
            }
            reference = functions["autograd"](x, y, params)
            times = {}
            for key, function in functions.items():
                if key == "elementwise" and batch > 1 and network.parameter_count > 64:
                    continue  # per-scalar code at this size takes seconds per call; see design notes
                result = function(x, y, params)
                for name in params:  # every contestant computes the same gradients
                    torch.testing.assert_close(result[name], reference[name], rtol=2e-3, atol=1e-4)
                times[key] = run_time(function, x, y, params)
            base = times["autograd"]

            def cell(key, times=times, base=base):
                return f"{1e3 * times[key]:.3f} ms ({times[key] / base:.2f})" if key in times else "—"

            label = "tutorial 1-2-2" if network == TUTORIAL else "-".join(map(str, sizes))
            lines.append(
                f"| {label} | {batch:,} | {1e3 * base:.3f} ms | {cell('hand')} | {cell('matrix')} | "
                f"{cell('elementwise')} | {cell('naive')} |"
            )
            if sizes == [16] * 4:
                ratio = times["matrix"] / base
                limit = 0.5 if batch == 1 else 1.0
                targets.append((f"16-16-16-16, batch {batch:,}: chainrule / autograd", f"{ratio:.2f}", ratio <= limit))
                versus = times["matrix"] / times["hand"]
                targets.append(
                    (
                        f"16-16-16-16, batch {batch:,}: chainrule / hand-written recursion",
                        f"{versus:.2f}",
                        versus <= 1.1,
                    )
                )
    lines.append("")


def cli_time(lines: list[str], targets: list[tuple[str, str, bool]]) -> None:
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
    targets.append(("`chainrule derive` (LaTeX) for the tutorial, wall", f"{wall:.2f} s", wall <= 0.8))


def verify_time(lines: list[str], targets: list[tuple[str, str, bool]]) -> None:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lines: list[str] = [
        f"Measured by `python benchmarks/bench.py` (torch {torch.__version__}, sympy "
        f"{sympy.__version__}, one torch thread).",
        "",
    ]
    targets: list[tuple[str, str, bool]] = []
    symbolic_scaling(lines, targets)
    evaluation(lines, targets)
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
