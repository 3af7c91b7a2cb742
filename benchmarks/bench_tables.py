"""The tables: every measurement written as Markdown lines, and the targets each is checked against."""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_cases import CASES, COMPUTE_BOUND, LARGE, Target
from bench_contestants import COMPILING, LOOP_CALLS, implementations
from bench_measure import ROOT, Timing, check_overhead, hardware, lower_bound, measure_loop, measure_memory, time_case


def machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        model = names[0] if names else model
    return f"{model}, {os.cpu_count()} cores (shared), {platform.system()}"


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:.3f} ms" if seconds < 1 else f"{seconds:.2f} s"


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
