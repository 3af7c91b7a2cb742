"""``compile_gradients(d, backend="c")``: the whole gradient program as one C function, called on tensors.

``_printer`` prints the program's SymPy trees as C99, ``_kernel`` lowers the matrix program into one function
that walks the batch tile by tile, ``_build`` compiles it once (the disk cache) and loads it. Here the function
is wrapped as a ``CompiledGradients``: the same checks, results and ``value_and_grad`` as the torch backend.
"""

from __future__ import annotations

import ctypes
import threading
import warnings

import torch

from symbolic import Derivation, InputError, InputTypeError

from .._compiled import CompiledGradients
from . import _gemm
from ._blas import find_blas
from ._build import find_compiler, load
from ._kernel import Kernel, write_kernel

# A tile's buffers (every intermediate of T samples) are sized to stay in a core's L2 cache (1 MiB and more on
# current x86 and ARM cores), leaving room for the weights and the gradient totals. 16-16-16-16 sigmoid, B=1e5,
# float32: tiles of 64, 256, 627, 2048, 8192 samples took 10.3, 9.8, 10.9, 10.9, 11.2 ms (256 KiB: 292 samples).
TILE_BYTES = 256 * 2**10
# ... but never fewer samples than this: a tile reads every weight once and adds every weight's gradient into
# its sum once, so a wide network's few-sample tiles spent their time there. With the wide products as GEMM
# calls (one thread, float32): 1024-1024-1024 tanh B=256, tiles of 64, 128, 256 samples took 42.2, 36.9, 36.3 ms;
# 784-256-10 relu/softmax B=1024, tiles of 64, 128, 256, 1024: 10.5, 10.4, 10.2, 11.0 ms. 128 keeps the work area
# (kept from call to call: CCompiledGradients._work_address) at 2.6 MB for 1024-1024-1024 where 256 would double
# it for 1.5%. Unless the work area would then pass what autograd itself holds (_budgeted_tile): 1024-1024-1024
# tanh B=256 runs tiles of 63 samples (1.03 MB of area, 2.1 MB at 128), 41.6 ms where 128 took 36.3 (medians of 11
# interleaved rounds; 48, 56, 64: 42.5, 40.3, 40.1): the price of a call plus what it keeps within autograd's
# memory. A fixed smaller tile for wide layers (64) would not do it: 1 MiB + a page, autograd's 1 MiB saved.
MIN_TILE = 128
# A work area smaller than this is not kept: each call mallocs and frees it (the C function does, given NULL).
# glibc serves such a block from its heap (below its mmap threshold: 128 KiB by default, 64 KiB in bench.py's
# memory reading), reused call after call without a page fault, so keeping it saves nothing and would hold it
# between calls: 784-256-10 B=64 (a 62 KiB area, tiles of 24), kept 0.749 ms, by each call 0.759 ms (medians of
# 11 interleaved rounds, within their spread).
KEEP_BYTES = 64 * 2**10
_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


class NoCompilerWarning(UserWarning):
    """``backend="c"`` was asked for where no C compiler exists: the torch backend runs instead."""


class CCompiledGradients(CompiledGradients):
    """``f(x, y, params) -> {name: gradient}`` computed by one generated C function (``f.source``).

    Inputs are read where they lie (contiguous float32 or float64 CPU tensors; others are copied to be
    contiguous first), the gradients are new tensors. ``chunk``: the samples per tile, ``"auto"`` (sized by
    ``TILE_BYTES``) or None (the whole batch as one tile).
    """

    def __init__(self, derivation: Derivation, kernel: Kernel, library: ctypes.CDLL, chunk: int | str | None):
        self.kernel = kernel
        self._functions, self._work_reals = {}, {}
        for dtype, name in kernel.function.items():
            function = getattr(library, name)
            pointers = 2 + len(kernel.inputs) + len(kernel.outputs) + 1  # work, blas, ..., the loss last
            function.argtypes = [ctypes.c_int64, ctypes.c_int64] + [ctypes.c_void_p] * pointers
            function.restype = ctypes.c_int
            self._functions[dtype] = function
            work = getattr(library, kernel.work[dtype])
            work.argtypes, work.restype = [ctypes.c_int64, ctypes.c_int], ctypes.c_int64
            self._work_reals[dtype] = work
        # the gemm routine the wide products call, by dtype name (None: the kernel's own GEMM); tests set it
        self.blas: dict[str, int | None] = find_blas() if kernel.wide else {dtype: None for dtype in kernel.function}
        self._work = threading.local()  # each thread's work area, kept from call to call
        self._first_width = derivation.network.sizes[1]  # units of the first layer: _memory_budget
        self._auto_tiles: dict[tuple[int, int], int] = {}  # (batch, bytes a real) -> chunk="auto"'s tile
        super().__init__(derivation, "matrix", self._gradients, lambda: self._loss_and_gradients, chunk=None)
        self.backend = "c"
        self.chunk = chunk
        self._run_with_loss = self._loss_and_gradients

    @property
    def source(self) -> str:
        """The generated C: one function per floating type, each line of the matrix program a loop or two."""
        return self.kernel.source

    @property
    def value_and_grad_source(self) -> str:
        return self.kernel.source  # the same function: it computes the loss when given somewhere to put it

    def _chunk_size(self, x: torch.Tensor) -> int:
        return 0  # the C function tiles the batch itself

    def _tile(self, batch: int, item: int) -> int:
        if self.chunk is None:
            return max(batch, 1)
        if self.chunk == "auto":
            key = (batch, item)
            tile = self._auto_tiles.get(key)
            if tile is None:  # once per batch size: a B=1 call does not ask C for sizes every time
                tile = self._auto_tiles[key] = self._budgeted_tile(batch, item)
            return tile
        return self.chunk  # type: ignore[return-value]

    def _budgeted_tile(self, batch: int, item: int) -> int:
        """The cache-sized tile (``TILE_BYTES``, at least ``MIN_TILE``), shrunk until the work area it needs,
        which is kept from call to call, fits in ``_memory_budget``: the largest such tile (at least 1)."""
        tile = max(1, min(batch, max(MIN_TILE, TILE_BYTES // (self.kernel.reals_per_sample * item))))
        name = "float32" if item == 4 else "float64"
        packing = self.blas.get(name) is None
        work, budget = self._work_reals[name], self._memory_budget(batch, item)
        pack = _gemm.pack_reals() if packing and self.kernel.wide else 0
        if (work(tile, int(packing)) - pack) * item < budget:
            return tile
        low, high = 1, tile  # the area grows with the tile: the largest tile within the budget, by bisection
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if (work(middle, int(packing)) - pack) * item < budget else (low, middle - 1)
        return low

    def _memory_budget(self, batch: int, item: int) -> int:
        """Bytes the work area stays below: what torch autograd itself holds beyond the gradients at its peak.
        When autograd writes the first weight's gradient, every other gradient already exists and so does the
        first layer's ∂L/∂z for the whole batch (B × sizes[1] reals), read by that product. The kernel's
        gradients are the same tensors, so a work area under B × sizes[1] reals keeps a call's memory plus
        what it keeps under autograd's peak. Under, not at: a call allocates a few KB besides (the loss, ctypes'
        arguments), and bench.py's reading of 1024-1024-1024 tanh B=256 was autograd 9.445 MB, chainrule c
        8.397 MB with 1.049 MB kept at 64 samples (1.0001×), 1.032 MB at 63. The own GEMM's packing space (no
        BLAS found) is not counted: a fixed 1.2 MB (float32) that the fallback needs whatever the tile."""
        # at least KEEP_BYTES: an area under it is not kept but allocated by each call from the heap's free blocks,
        # as autograd's own blocks of that size are; held to B × sizes[1], 300-97-70-3 B=8 ran tiles of 1 sample
        return max(batch * self._first_width * item, KEEP_BYTES)

    def _work_address(self, dtype: torch.dtype, tile: int, packing: bool) -> int | None:
        """The address of this thread's work area for tiles of ``tile`` samples, kept for the next call (grown
        when a call needs more), or None below ``KEEP_BYTES`` (the C function then allocates it). Kept rather
        than allocated by each call: a fresh block of a megabyte or more is mapped anew by glibc at every call
        and its pages faulted in; kept, a call allocates its results alone (bench.py's peak memory of a call),
        and the area is what one tile needs (``_tile``, whose chunk="auto" size keeps it within autograd's own
        memory) plus, where no BLAS was found, the GEMM's packing space. Looked up by the call's (dtype, tile,
        packing): a B=1 call asks C for the size once, not every time."""
        local = self._work.__dict__
        addresses, areas = local.setdefault("addresses", {}), local.setdefault("areas", {})
        key = (dtype, tile, packing)
        address = addresses.get(key)
        if address is None:
            reals = int(self._work_reals[_DTYPES[dtype]](max(tile, 1), int(packing)))
            if reals * dtype.itemsize < KEEP_BYTES:
                addresses[key] = 0  # allocated by each call
                return None
            area = areas.get(dtype)
            if area is None or area.numel() < reals:
                area = areas[dtype] = torch.empty(reals, dtype=dtype)
                for other in [k for k in addresses if k[0] == dtype]:  # they pointed into the area let go
                    del addresses[other]
            address = addresses[key] = area.data_ptr()
        return address or None

    def _gradients(self, x: torch.Tensor, y: torch.Tensor, *params: torch.Tensor) -> list[torch.Tensor]:
        return self._call(x, y, params, with_loss=False)

    def _loss_and_gradients(self, x: torch.Tensor, y: torch.Tensor, *params: torch.Tensor) -> list[torch.Tensor]:
        return self._call(x, y, params, with_loss=True)

    def _call(self, x, y, params, with_loss: bool) -> list[torch.Tensor]:
        name = _DTYPES.get(x.dtype)
        function = self._functions.get(name)  # type: ignore[arg-type]
        if function is None:
            raise InputTypeError(f"backend='c' computes in float32 or float64; got {x.dtype}")
        if x.device.type != "cpu":
            raise InputError(f"backend='c' runs on the CPU; got tensors on {x.device} (use the torch backend there)")
        batch = x.shape[1]
        inputs = [t if t.is_contiguous() else t.contiguous() for t in (x, y, *params)]
        outputs = [
            torch.empty((rows, batch if cols is None else cols), dtype=x.dtype)
            for rows, cols in self.kernel.outputs.values()
        ]
        loss = torch.empty((), dtype=x.dtype) if with_loss else None
        tile = self._tile(batch, x.element_size())
        blas = self.blas[name]  # type: ignore[index]
        status = function(
            batch,
            tile,
            self._work_address(x.dtype, tile, blas is None),
            blas,
            *(t.data_ptr() for t in inputs),
            *(t.data_ptr() for t in outputs),
            None if loss is None else loss.data_ptr(),
        )
        if status != 0:
            raise MemoryError("backend='c': no memory for the kernel's tile buffers (try a smaller chunk)")
        return [loss, *outputs] if loss is not None else outputs


def compile_c(derivation: Derivation, chunk: int | str | None) -> CCompiledGradients | None:
    """The C backend's compiled function, or None (after one line saying so) where no C compiler exists."""
    command = find_compiler()
    if command is None:
        warnings.warn(
            "chainrule: no C compiler found (CC, or cc, gcc, clang on PATH); backend='c' runs the torch backend",
            NoCompilerWarning,
            stacklevel=3,
        )
        return None
    kernel = write_kernel(derivation.network, derivation.matrix_program)
    return CCompiledGradients(derivation, kernel, load(kernel.source, command), chunk)
