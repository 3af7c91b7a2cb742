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
from bench_measure import (
    CHUNK,
    ROOT,
    Timing,
    check_overhead,
    hardware,
    lower_bound,
    measure_loop,
    measure_memory,
    time_case,
)


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


def load_average() -> str:
    """The 1-minute load average now (the machine is shared: what else ran during a measurement)."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"


UNSUPPORTED = "unsupported"  # a contestant's cell where a case has no timing of it: it could not run the case


def gradient_tables(
    lines: list[str], targets: list[Target], quick: bool, cases=CASES, rounds: int | None = None
) -> None:
    rounds, sample = (rounds or 5, 0.005) if quick else (rounds or 21, 0.02)
    names = implementations()
    if "JAX jit(grad)" not in names:
        lines += ["JAX is not installed (`pip install -e '.[bench]'`): its column is left out.", ""]
    if "chainrule c" not in names:
        lines += ["No C compiler here (CC, or cc, gcc, clang on PATH): the chainrule c column is left out.", ""]
    results: dict[str, dict[str, Timing]] = {}
    loads: dict[str, str] = {}  # the load average as each case's rounds began
    for case in cases:
        loads[case.key] = load_average()
        print(f"timing {case.key} (load average {loads[case.key]}) ...", file=sys.stderr)
        results[case.key] = time_case(case, names, rounds, sample)
    loads["end"] = load_average()

    header = "| case | " + " | ".join(names) + " |"
    rule = "|---|" + "---:|" * len(names)
    machines = [hardware(results[case.key]) for case in cases]
    lines += [
        "Hardware measured here (one thread, in the same rounds as each case; lowest and highest of the cases' "
        f"medians): copy bandwidth {min(m.bandwidth for m in machines) / 1e9:.1f}–"
        f"{max(m.bandwidth for m in machines) / 1e9:.1f} GB/s, float32 1024³ matmul "
        f"{min(m.matmul_rate for m in machines) / 1e9:.0f}–{max(m.matmul_rate for m in machines) / 1e9:.0f} GFLOP/s.",
        "Load average (1 minute) as each case's rounds began: "
        + ", ".join(f"{loads[case.key]} ({case.key})" for case in cases)
        + f"; {loads['end']} after the last.",
        "",
        "At B=1 on the tutorial's network `chainrule` runs the scalar path (Python floats, chosen for networks of",
        "at most 64 parameters a layer); the torch modules (the residual MLP, the CNN) are read by `from_torch`,",
        'and a contestant that cannot run a case says "unsupported".',
        "",
        f"### Gradients: median CPU time per call, and ÷ autograd ({rounds} interleaved rounds)",
        "",
        header,
        rule,
    ]
    for case in cases:
        timings = results[case.key]
        base = timings["autograd"].median
        cells = [ms(base)] + [
            f"{ms(timings[n].median)} ({timings[n].median / base:.2f}×)" if n in timings else UNSUPPORTED
            for n in names[1:]
        ]
        lines.append(f"| {case.key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Gradients: fastest round (min) ÷ autograd's fastest, and the first call (compilation) in wall time",
        "",
        header,
        rule,
    ]
    for case in cases:
        timings = results[case.key]
        base = timings["autograd"].minimum
        cells = [
            f"{timings[n].minimum / base:.2f}×" + (f", first {ms(timings[n].first_call)}" if n in COMPILING else "")
            if n in timings
            else UNSUPPORTED
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
        'for any implementation that runs them through torch\'s matmul kernels. "Products, chunked" times the',
        f"same products on {CHUNK} samples at a time (the whole batch, chunk after chunk), whose operands stay in",
        "cache, as chainrule's chunked calls run them. The torch modules have no bound here.",
        "",
        "| case | bound | products | products, chunked | " + " | ".join(names) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(names),
    ]
    for case in cases:
        if case.batch < LARGE or case.network is None:
            continue
        bound = lower_bound(case, hardware(results[case.key]))
        timings = results[case.key]
        cells = [
            f"{timings[n].median / bound:.2f}×" if n in timings else UNSUPPORTED
            for n in ["products", "products, chunked", *names]
        ]
        lines.append(f"| {case.key} | {ms(bound)} | " + " | ".join(cells) + " |")
        multiple = timings["chainrule"].median / bound
        limit = 1.1 if case.key in COMPUTE_BOUND else 3.0
        targets.append((f"{case.key}: chainrule ÷ hardware bound (≤ {limit})", f"{multiple:.3f}×", multiple <= limit))

    def ratio(key: str, name: str) -> float | None:  # name ÷ autograd at the case, None where not measured
        timings = results.get(key, {})
        return timings[name].median / timings["autograd"].median if name in timings else None

    for key, name, limit in (
        ("tutorial 1-2-2 sigmoid, B=1", "chainrule", 0.15),
        ("tutorial 1-2-2 sigmoid, B=1", "chainrule", 0.1),  # issue 19: the scalar path
        ("16-16-16-16 sigmoid, B=1", "chainrule", 0.2),
        ("tutorial 1-2-2 sigmoid, B=1", "chainrule c", 0.1),
        ("16-16-16-16 sigmoid, B=100000", "chainrule c", 0.25),
        ("16-16-16-16 sigmoid, B=100000", "chainrule", 0.6),
        ("16-16-16-16 sigmoid, B=100000", "chainrule inductor", 0.45),
    ):
        value = ratio(key, name)
        if value is not None:
            targets.append((f"{key}: {name} ÷ autograd (≤ {limit})", f"{value:.3f}×", value <= limit))
    big = next((case for case in cases if case.key == "16-16-16-16 sigmoid, B=100000"), None)
    if big is not None and "chainrule c" in results[big.key]:
        multiple = results[big.key]["chainrule c"].median / lower_bound(big, hardware(results[big.key]))
        label = "16-16-16-16 sigmoid, B=100000: chainrule c ÷ hardware bound (≤ 2.5)"
        targets.append((label, f"{multiple:.3f}×", multiple <= 2.5))
    check = check_overhead(rounds)
    targets.append(("input check when shapes, dtypes, devices repeat (≤ 3 µs)", f"{1e6 * check:.1f} µs", check <= 3e-6))

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
    for case in cases:
        if case.batch < LARGE:
            continue
        print(f"memory {case.key} ...", file=sys.stderr)
        peaks = {name: measure_memory(case, name) for name in names}
        base = peaks["autograd"]

        def cell(name: str, peaks=peaks, base=base) -> str:
            peak = peaks[name]
            if peak is None or isinstance(peak, str):
                return peak or "failed"
            return f"{peak / 1e6:.1f} MB" + (f" ({peak / base:.2f}×)" if name != "autograd" and base else "")

        lines.append(f"| {case.key} | " + " | ".join(cell(n) for n in names) + " |")
        ours = peaks["chainrule"]
        if case.key in ("16-16-16-16 sigmoid, B=100000", "1024-1024-1024 tanh, B=256") and base and ours:
            ratio_ = ours / base
            targets.append((f"{case.key}: chainrule peak memory ÷ autograd (≤ 1.0)", f"{ratio_:.3f}×", ratio_ <= 1.0))
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
