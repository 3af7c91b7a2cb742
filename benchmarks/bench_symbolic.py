"""Deriving and compiling: cold wall times against network size, and against the naive SymPy path."""

from __future__ import annotations

import statistics
import time

import sympy
from bench_cases import Target

from numeric import compile_gradients
from symbolic import Network, derive
from symbolic._simplify import smallest


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
