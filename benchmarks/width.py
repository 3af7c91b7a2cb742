"""Width never costs: derive + text/LaTeX/Markdown after imports, and peak memory (RSS, whole process).

python benchmarks/width.py 784,128,10 [relu,softmax [cross_entropy]]
"""

import resource
import sys
import time

from symbolic import Network, derive  # imports are not timed

sizes = [int(s) for s in sys.argv[1].split(",")]
acts = sys.argv[2].split(",") if len(sys.argv) > 2 else ["relu", "softmax"]
loss = sys.argv[3] if len(sys.argv) > 3 else "cross_entropy"
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
d = derive(Network(sizes, acts, loss, bias=True))
for form in ("text", "latex", "markdown"):
    getattr(d, form)()
elapsed = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(
    f"{'-'.join(map(str, sizes))} {'/'.join(acts)} {loss}: derive+text+latex+markdown {elapsed:.2f} s; "
    f"peak RSS {rss:.0f} MB (after imports {rss0:.0f} MB)"
)
