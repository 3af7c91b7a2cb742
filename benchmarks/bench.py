"""chainrule benchmarks: every ratio is measured side by side, interleaved, in one run.

    python benchmarks/bench.py                  # print the tables (about 15 minutes on 2 cores)
    python benchmarks/bench.py --quick          # a fast pass: fewer rounds, no memory column, no naive path
    python benchmarks/bench.py --update-readme  # also paste them into README.md
    python benchmarks/bench.py --quick --rounds 3 --case tutorial  # a smoke run: one case's gradient tables

The parts live beside this file: bench_cases (the networks and torch models timed, their values),
bench_models (the torch models), bench_contestants (what is timed), bench_measure (the hardware bound, the
interleaved rounds, the one-process memory and loop runs), bench_symbolic (derive + compile), bench_tables.

Gradient timings: one torch thread, float32, CPU time of the process (``time.process_time``: what the
work costs, not how long a shared machine made it wait), round-robin over the implementations so drift
and noise fall on all of them alike; min and median over the rounds. Memory: one fresh process per
implementation, the growth of peak RSS over one call after two warm-up calls (Linux: /proc/self/clear_refs
resets the peak; glibc maps every block of 64 KiB or more, so freed tensors leave RSS at once).
Symbolic timings are cold: SymPy's cache and chainrule's simplification cache are cleared first.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

# JAX reads this when imported: one thread, like torch below (an unknown flag would abort JAX, not us)
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, not another install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench_* modules beside this file

import sympy
import torch
import torch._inductor.config
from bench_cases import CASES, COMPUTE_BOUND, LARGE, Case, Data, Target, make_data  # noqa: F401
from bench_contestants import (  # noqa: F401
    IMPLEMENTATIONS,
    Unsupported,
    as_torch,
    autograd_step,
    c_compiler_available,
    implementations,
    jax_available,
    make_step,
)
from bench_measure import ROOT, loop_child, matmul_flops, memory_child, products_probe  # noqa: F401
from bench_symbolic import symbolic_scaling
from bench_tables import cli_time, gradient_tables, load_average, loop_table, machine, verify_time, width_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds, no memory column, no naive path")
    parser.add_argument("--update-readme", action="store_true")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per case (default 21; 5 with --quick)")
    parser.add_argument(
        "--case", metavar="TEXT", help="a smoke run: only the gradient tables, of the cases whose name contains TEXT"
    )
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
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1; got {args.rounds}")
    cases = [case for case in CASES if args.case is None or args.case in case.key]
    if not cases:
        parser.error(f"no case's name contains {args.case!r}; the cases: {'; '.join(case.key for case in CASES)}")
    if args.case is not None and args.update_readme:
        parser.error("--case runs a part of the benchmark: it does not update the README")
    jax_note = ""
    if jax_available():
        import jax

        jax_note = f", jax {jax.__version__} (XLA_FLAGS={os.environ['XLA_FLAGS']})"
    lines: list[str] = [
        f"Measured by `python benchmarks/bench.py{' '.join(['', *sys.argv[1:]])}` on {machine()}: torch "
        f"{torch.__version__}, one torch thread, sympy {sympy.__version__}{jax_note}; load average (1 minute) "
        f"{load_average()} at the start. The machine is shared with other work, so single numbers move by "
        "±10–20% between runs; the ratios, measured side by side in interleaved rounds, move less.",
        "",
    ]
    targets: list[Target] = []
    if args.case is None:
        symbolic_scaling(lines, targets, args.quick)
    gradient_tables(lines, targets, args.quick, cases, args.rounds)
    if args.case is None:
        loop_table(lines)
        width_time(lines, targets)
        cli_time(lines, targets)
        verify_time(lines, targets)
    lines += [f"Load average (1 minute) at the end: {load_average()}.", ""]
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
