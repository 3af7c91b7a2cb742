"""Build a kernel's C source into a shared library once, keep it on disk by the source's hash, load it with ctypes.

Why the system C compiler and ctypes, not the alternatives: the kernel is plain C99 with no Python or torch
in it, so it needs no headers beyond libm's; ``torch.utils.cpp_extension.load_inline`` would compile it as
C++ against torch's headers (tens of seconds a network) and needs the ``ninja`` executable, which pyproject
would have to declare; cffi is another dependency, and SymPy's ``autowrap`` builds through Cython or f2py and
NumPy arrays. ctypes is in the standard library, and a tensor's ``data_ptr()`` hands it the memory itself.

The library is named by the SHA-256 of the source, the compiler's path and version, its flags and the
machine, in a cache folder of the user's (``CHAINRULE_CACHE_DIR``, else ``$XDG_CACHE_HOME/chainrule`` or
``~/.cache/chainrule``, under ``c/``): a second process, or the same network compiled again, loads it without
compiling. It is written atomically (``symbolic._atomic``), so a process that reads it while another writes
it sees the whole old file or the whole new one.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from symbolic._atomic import write_atomically
from symbolic._errors import ChainruleError

# -O3 and the machine's own vector instructions (the library is built on the machine that runs it, and the
# machine is in its hash); -fno-math-errno lets sqrt and friends inline (no errno is read); -fopenmp-simd
# honours the kernel's "omp simd" loops (vectorised, no threads, no OpenMP runtime linked); -ffp-contract=fast
# fuses a*b + c into one fused multiply-add where the machine has one (-std=c99 alone turns that off: the
# products then ran as a multiply and an add, 16-16-16-16 sigmoid B=1e5 7.8 -> 7.5 ms): one rounding instead
# of two, the same or closer to the exact sum. Nothing else bends IEEE arithmetic: no -ffast-math, so
# e^-z = inf still gives σ(z) = 0, and the sums keep their order.
FLAGS = (
    "-O3",
    "-march=native",
    "-fno-math-errno",
    "-fopenmp-simd",
    "-ffp-contract=fast",
    "-std=c99",
    "-fPIC",
    "-shared",
)
# libmvec (glibc on x86-64 and AArch64) vectorises the loops that call exp (double) and log: sigmoid, softmax, the
# logs of the losses (float's e^x is the kernel's own inline one: _kernel.PRELUDE). Elsewhere (macOS, musl) the
# link fails and the kernel is built again with the scalar functions.
VECTOR_MATH = (("-DCHAINRULE_MVEC", "-lmvec"), ())
COMPILERS = ("cc", "gcc", "clang")  # looked for on PATH when CC is not set
SUFFIX = {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")
_TIMEOUT_S = 300

compilations = 0  # how many libraries this process compiled (tests: a second process compiles none)


class CCompileError(ChainruleError, RuntimeError):
    """The C compiler refused a generated kernel (a bug in chainrule: the message holds its complaint)."""


def find_compiler() -> list[str] | None:
    """The C compiler's command: ``CC`` when set (split as a shell would: ``ccache gcc``), else the first of
    cc, gcc, clang on PATH; None when there is none (``CC`` naming a program that is not there included)."""
    chosen = os.environ.get("CC", "").strip()
    if chosen:
        command = shlex.split(chosen)
        path = shutil.which(command[0])
        return [path, *command[1:]] if path else None
    for name in COMPILERS:
        path = shutil.which(name)
        if path:
            return [path]
    return None


@functools.lru_cache(maxsize=8)
def _version(command: tuple[str, ...]) -> str:
    """The compiler's first line of ``--version`` (part of the cache key: an upgraded compiler rebuilds)."""
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return "unknown"
    return (done.stdout.splitlines() or ["unknown"])[0]


def cache_folder() -> Path:
    """Where compiled kernels are kept (created on first use)."""
    chosen = os.environ.get("CHAINRULE_CACHE_DIR")
    if chosen:
        return Path(chosen) / "c"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "chainrule" / "c"


def key(source: str, command: list[str]) -> str:
    """The library's name: the hash of everything that makes its bytes."""
    parts = [source, *command, _version(tuple(command)), *FLAGS, *map(" ".join, VECTOR_MATH), _machine()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    """The processor, as -march=native sees it: a cache folder shared by machines (a network home) must not
    hand one machine's vector instructions to another. Linux says which instruction sets it has; elsewhere
    the processor's name stands in."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            flags = next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags.strip()}"


_loaded: dict[str, ctypes.CDLL] = {}  # key -> library, for this process


def load(source: str, command: list[str]) -> ctypes.CDLL:
    """The library built from ``source``: from this process's memory, else from the disk cache, else compiled
    (and then cached). A cached file that does not load (truncated by a full disk, say) is compiled again."""
    name = key(source, command)
    if name in _loaded:
        return _loaded[name]
    folder = cache_folder()
    library = folder / f"{name}{SUFFIX}"
    loaded = None
    if library.is_file():
        try:
            loaded = ctypes.CDLL(str(library))
        except OSError:
            loaded = None
    if loaded is None:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomically(folder / f"{name}.c", source)  # beside it, to read or rebuild by hand
        write_atomically(library, _compile(source, command))
        loaded = ctypes.CDLL(str(library))
    _loaded[name] = loaded
    return loaded


def _compile(source: str, command: list[str]) -> bytes:
    """The shared library's bytes, compiled in a temporary folder (never half-written in the cache)."""
    global compilations
    with tempfile.TemporaryDirectory(prefix="chainrule-c-") as folder:
        path, output = os.path.join(folder, "kernel.c"), os.path.join(folder, f"kernel{SUFFIX}")
        Path(path).write_text(source, encoding="utf-8")
        for extra in VECTOR_MATH:  # glibc's vector exp and log where they link, else the plain ones
            try:
                done = subprocess.run(
                    [*command, *FLAGS, "-o", output, path, *extra, "-lm"],
                    capture_output=True,
                    text=True,
                    timeout=_TIMEOUT_S,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise CCompileError(f"the C compiler {command[0]} did not run: {error}") from None
            if done.returncode == 0:
                break
        if done.returncode != 0:
            complaint = (done.stderr or done.stdout).strip()[-2000:]
            raise CCompileError(
                f"the C compiler {command[0]} refused chainrule's kernel (a bug in chainrule): {complaint}"
            )
        compilations += 1
        return Path(output).read_bytes()
