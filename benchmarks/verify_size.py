"""`chainrule verify` at size: wall time and peak memory of the whole command, on one core.

python benchmarks/verify_size.py            # both cases
python benchmarks/verify_size.py wide       # 4096-4096-10 (target: 15 s, 1 GB peak)
python benchmarks/verify_size.py deep       # width 100, 200 layers (target: 20 s)

Each case runs `python -m numeric.cli verify ...` in a child pinned to CPU 0 (`taskset -c 0` where it
exists; torch's threads set to 1 by OMP_NUM_THREADS either way), and reads the child's peak resident memory
from the kernel (os.wait4's ru_maxrss: the child alone, imports included). Timings are printed, never asserted:
tests/ count, they do not time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = {  # name: (command-line arguments, target seconds, target peak bytes or None)
    "wide": (["--sizes", "4096,4096,10", "--activation", "relu,softmax", "--loss", "cross_entropy"], 15, 2**30),
    "deep": (["--sizes", ",".join(["100"] * 201), "--activation", "tanh"], 20, None),
}


def run(arguments: list[str]) -> tuple[float, int, int, str]:
    """Seconds, peak RSS in bytes, exit code and the last line of output of one verify run."""
    command = [sys.executable, "-m", "numeric.cli", "verify", *arguments]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = child.stdout.read().decode() if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    lines = output.strip().splitlines()
    return elapsed, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), lines[-1] if lines else ""


def main(names: list[str]) -> int:
    for name in names or list(CASES):
        arguments, target_seconds, target_bytes = CASES[name]
        elapsed, peak, code, last = run(arguments)
        memory = f"peak {peak / 2**30:.2f} GiB" + (f" (target {target_bytes / 2**30:.0f} GiB)" if target_bytes else "")
        shown = " ".join(a if len(a) < 40 else a[:20] + "..." for a in arguments)
        print(f"{name}: verify {shown}: {elapsed:.1f} s (target {target_seconds} s), {memory}; exit {code}; {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
