"""The BLAS the kernel's wide products call: ``sgemm_``/``dgemm_`` found in this process, or None.

The kernel takes the routine's address as an argument rather than linking a BLAS: the library is then
built the same way on every machine, and the products run on whatever BLAS torch itself runs its matmuls
on (its wheels for x86-64 Linux carry Intel MKL inside libtorch_cpu, with the Fortran symbols exported),
so they follow ``torch.set_num_threads`` as torch's do. Where none is found (another build of torch, macOS,
or ``CHAINRULE_C_BLAS=0``) the kernel runs its own packed GEMM (``_gemm``), a one-line notice says so once,
and the gradients are the same to rounding.

Looked for, in order: the process's global symbols (a BLAS loaded with RTLD_GLOBAL), torch's own
libraries, then OpenBLAS or the reference BLAS by their sonames (``apt install libopenblas0``). The Fortran
interface (every argument a pointer, column-major) is the one every BLAS has under the same names.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import warnings
from pathlib import Path

import torch

ROUTINES = {"float32": "sgemm_", "float64": "dgemm_"}
DISABLE = "CHAINRULE_C_BLAS"  # "0": never call a BLAS (the kernel's own GEMM), to compare or to rule one out


class NoBlasWarning(UserWarning):
    """No BLAS was found for the C backend's wide products: its own GEMM runs them (slower, same results)."""


def _libraries() -> list[str | None]:
    """Where to look, in order (None: the symbols already global in this process)."""
    torch_lib = Path(torch.__file__).resolve().parent / "lib"
    named = [ctypes.util.find_library(name) for name in ("openblas", "blas")]
    return [None, *(str(path) for path in sorted(torch_lib.glob("libtorch_cpu.*"))), *filter(None, named)]


@functools.lru_cache(maxsize=1)
def _found() -> tuple[dict[str, int], str] | None:
    for name in _libraries():
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            routines = {dtype: getattr(library, routine) for dtype, routine in ROUTINES.items()}
        except AttributeError:
            continue
        return {dtype: ctypes.cast(f, ctypes.c_void_p).value for dtype, f in routines.items()}, name or "this process"
    return None


def find_blas() -> dict[str, int | None]:
    """{dtype name: the address of its gemm routine, or None}; None everywhere when ``CHAINRULE_C_BLAS=0`` or no
    BLAS is found (then warned once)."""
    if os.environ.get(DISABLE, "").strip() == "0":
        return dict.fromkeys(ROUTINES)
    found = _found()
    if found is None:
        _warn_once()
        return dict.fromkeys(ROUTINES)
    return dict(found[0])


def blas_name() -> str | None:
    """Where the gemm routines were found (a library's path), or None."""
    found = _found()
    return None if found is None else found[1]


@functools.lru_cache(maxsize=1)
def _warn_once() -> None:
    warnings.warn(
        "chainrule: no BLAS (sgemm_/dgemm_) found; backend='c' runs its wide products with its own GEMM",
        NoBlasWarning,
        stacklevel=4,
    )
