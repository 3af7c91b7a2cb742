"""Width never costs: derive + text/LaTeX/Markdown after imports, and peak memory (RSS, whole process).

python benchmarks/width.py 784,128,10 [relu,softmax [cross_entropy]]
"""

import sys
import time

from symbolic import Network, derive  # imports are not timed


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from a parent across exec)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


sizes = [int(s) for s in sys.argv[1].split(",")]
acts = sys.argv[2].split(",") if len(sys.argv) > 2 else ["relu", "softmax"]
loss = sys.argv[3] if len(sys.argv) > 3 else "cross_entropy"
rss0 = peak_rss_mb()
t = time.perf_counter()
d = derive(Network(sizes, acts, loss, bias=True))
for form in ("text", "latex", "markdown"):
    getattr(d, form)()
elapsed = time.perf_counter() - t
rss = peak_rss_mb()
print(
    f"{'-'.join(map(str, sizes))} {'/'.join(acts)} {loss}: derive+text+latex+markdown {elapsed:.2f} s; "
    f"peak RSS {rss:.0f} MB (after imports {rss0:.0f} MB)"
)
