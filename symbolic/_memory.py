"""How much memory this machine can still give, and the one-line refusal of a run that would need more.

Plain Python (no torch): ``sample_arrays`` refuses a draw that cannot fit, and ``numeric`` refuses a verify run.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._errors import ResourceError

GIB = 2**30


def _meminfo_available() -> int | None:
    """MemAvailable of /proc/meminfo (free memory plus the caches the kernel can drop), in bytes."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_available() -> int | None:
    """Free physical pages times the page size (os.sysconf; the caches not counted): where /proc is missing."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """What the cgroup (v2) of this process may still take: a container's limit is often far below the host's
    MemAvailable, and exceeding it gets the process killed, not a MemoryError."""
    folder = Path("/sys/fs/cgroup")
    try:
        limit = (folder / "memory.max").read_text(encoding="ascii").strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((folder / "memory.current").read_text(encoding="ascii").strip()))
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes this process can still allocate: the least of what /proc/meminfo (or os.sysconf) and the cgroup
    say; None when the machine says nothing (then nothing is refused)."""
    system = _meminfo_available()
    known = [value for value in (system if system is not None else _sysconf_available(), _cgroup_available())]
    known = [value for value in known if value is not None]
    return min(known) if known else None


def gib(size: float) -> str:
    """Bytes as GiB with two decimals: ``'2.10 GiB'``."""
    return f"{size / GIB:.2f} GiB"


def require_memory(needed: float, what: str, parts: str = "") -> None:
    """Raise ResourceError (one line: the estimate, what it is made of, what is available) when ``needed``
    bytes exceed the available memory."""
    available = available_memory()
    if available is None or needed <= available:
        return
    detail = f" ({parts})" if parts else ""
    raise ResourceError(
        f"{what} needs about {gib(needed)}{detail}, but only {gib(available)} of memory is available; "
        "use smaller --sizes or --batch",
        needed=int(needed),
        available=int(available),
    )
