"""The compiled gradient function, whatever made it: ``CompiledGradients`` checks its inputs, runs large
batches in chunks, and returns the gradients by name.

``_compile`` makes it from the torch code it prints, ``_c`` from a C kernel (its subclass); both import this
module, which imports neither.
"""

from __future__ import annotations

import contextlib
import inspect
import linecache
from collections.abc import Callable, Mapping

import sympy
import torch

from symbolic import Derivation
from symbolic._matrix import BATCH_SIZE, reduction_scale

from ._checks import check_inputs

GENERATED = "<chainrule generated"  # the file name of generated code, as linecache knows it
_ACCEPTED_LIMIT = 64  # input signatures remembered as checked, per compiled function
# Large CPU batches run in chunks of samples whose intermediates (about three per unit: z, a, δ) fit in
# this many bytes: every pass after the first reads them from cache, a call holds one chunk's intermediates
# rather than the batch's, and a loop of calls never faults fresh pages in (README, benchmarks/bench.py).
CHUNK_BYTES = 4 * 2**20
MIN_CHUNK = 1024  # below this the per-operation overhead (about 1 µs a torch call) outweighs the cache


class CompiledGradients:
    """``f(x, y, params) -> {name: gradient}``; ``f.value_and_grad`` also returns the loss.

    ``x`` is [n_in, B] and ``y`` [n_out, B] (samples are columns, as in the tutorial's ``torch.mm``);
    every gradient is of the batch loss (summed over the B samples, or their mean with
    ``reduction="mean"``), with its parameter's shape, dtype and device. A derivation made with
    ``wrt=("x",)`` adds ``"x"``: ∂L/∂x, [n_in, B], one column per sample.
    The gradients are plain values (computed without autograd recording), whatever ``requires_grad`` says.
    """

    def __init__(
        self,
        derivation: Derivation,
        form: str,
        gradients_only: Callable,
        build_with_loss: Callable[[], Callable],
        backend: str | None = None,
        chunk: int | str | None = "auto",
        scalar: Callable | None = None,
    ):
        self.derivation = derivation
        # a tiny network's B=1 calls over Python floats (numeric._scalar), or None; it returns None where it
        # does not run (a GPU tensor, a float that overflowed) and the torch function runs instead
        self._scalar = scalar
        self.form = form
        self.backend = backend
        self.chunk = chunk
        # the smallest batch that may run in chunks: smaller ones skip _chunk_size (a B=1 call is 20 µs)
        if chunk is None or chunk == "auto":
            self._chunk_from: float = float("inf") if chunk is None else 2 * MIN_CHUNK
        else:
            self._chunk_from = chunk + 1  # type: ignore[operator]
        self._gradients_only = gradients_only
        # each sample's share of the loss at a batch size (1/B for the mean), read from the derivation's definition
        self._share = sympy.lambdify(BATCH_SIZE, reduction_scale(derivation.network))
        self._build_with_loss = build_with_loss  # called on first use: most callers never ask for the loss
        self._with_loss_function: Callable | None = None
        self._run_gradients = _backend_function(gradients_only, backend)
        self._run_with_loss: Callable | None = None
        self.names = tuple(derivation.matrix_program.gradients)  # the parameters, then "x" when asked
        self._parameters = tuple(derivation.network.parameter_shapes)  # what params must hold, in order
        # Signatures (types, shapes, dtypes, devices) that check_inputs accepted: a repeat skips the check
        self._accepted: dict[tuple, bool] = {}  # signature -> whether any of its tensors requires grad

    @property
    def _with_loss(self) -> Callable:
        if self._with_loss_function is None:
            self._with_loss_function = self._build_with_loss()
        return self._with_loss_function

    @property
    def source(self) -> str:
        """The generated Python source of the gradient function, with the header binding its short names."""
        return _source_of(self._gradients_only)

    @property
    def value_and_grad_source(self) -> str:
        return _source_of(self._with_loss)

    @property
    def scalar_source(self) -> str | None:
        """The Python-float function that B=1 calls run (``numeric._scalar``), or None where none does."""
        return None if self._scalar is None else self._scalar.source()

    def _checked(self, x: object, y: object, params: object) -> tuple[list[torch.Tensor], bool]:
        """The parameters in network order, after check_inputs, or after a cheap look-up when a call with
        the same types, shapes, dtypes and devices passed check_inputs before (the full check costs
        about 7 µs, a third of a small network's call); and whether any tensor requires grad."""
        try:
            ordered = [params[name] for name in self._parameters]  # type: ignore[index]
            tensors = ((type(t), t.shape, t.dtype, t.device, t.requires_grad) for t in (x, y, *ordered))
            signature = (type(params), len(params), *tensors)  # type: ignore[arg-type]
        except (KeyError, TypeError, AttributeError, IndexError):
            signature = None  # not even tensors in a mapping: check_inputs says what is wrong
        if signature is not None:
            recorded = self._accepted.get(signature)
            if recorded is not None:
                return ordered, recorded
        ordered = check_inputs(self.derivation.network, x, y, params)
        recorded = any(t.requires_grad for t in (x, y, *ordered))  # type: ignore[union-attr]
        if signature is not None and len(self._accepted) < _ACCEPTED_LIMIT:
            self._accepted[signature] = recorded
        return ordered, recorded

    def __call__(self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ordered, recorded = self._checked(x, y, params)
        if self._scalar is not None and x.shape[1] == 1:
            outputs = self._scalar(x, y, ordered)
            if outputs is not None:
                return dict(zip(self.names, outputs))
        if not recorded and x.shape[1] < self._chunk_from:  # the common small call, as short as it can be
            return dict(zip(self.names, self._run_gradients(x, y, *ordered)))
        return dict(zip(self.names, self._run(self._run_gradients, x, y, ordered, recorded)))

    def value_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ordered, recorded = self._checked(x, y, params)
        if self._scalar is not None and x.shape[1] == 1:
            outputs = self._scalar(x, y, ordered, with_loss=True)
            if outputs is not None:
                return outputs[0], dict(zip(self.names, outputs[1:]))
        if self._run_with_loss is None:
            self._run_with_loss = _backend_function(self._with_loss, self.backend)
        loss, *gradients = self._run(self._run_with_loss, x, y, ordered, recorded)
        return loss.reshape(()), dict(zip(self.names, gradients))

    def _run(self, function: Callable, x, y, ordered, recorded: bool) -> list[torch.Tensor]:
        """``function`` on the batch, in chunks when ``_chunk_size`` says so. When a tensor requires grad,
        autograd would record the code and forbid its in-place writes: it is switched off."""
        size = self._chunk_size(x)
        with torch.no_grad() if recorded else contextlib.nullcontext():
            return self._in_chunks(function, size, x, y, ordered) if size else function(x, y, *ordered)

    def _chunk_size(self, x: torch.Tensor) -> int:
        """Samples per chunk for this batch, or 0: the whole batch in one pass.

        ``chunk="auto"`` chunks large batches on the CPU (matrix form, plain backend), sized so one chunk's
        intermediates take about ``CHUNK_BYTES``; an int is that many samples per chunk; None never chunks.
        """
        batch = x.shape[1]
        if self.chunk is None:
            return 0
        if self.chunk != "auto":
            return self.chunk if batch > self.chunk else 0
        if self.form != "matrix" or self.backend is not None or x.device.type != "cpu" or batch < 2 * MIN_CHUNK:
            return 0
        per_sample = 3 * sum(self.derivation.network.sizes) * x.element_size()
        size = max(MIN_CHUNK, 1 << max(1, CHUNK_BYTES // per_sample).bit_length() - 1)  # a power of two
        return size if batch >= 2 * size else 0

    def _in_chunks(self, function: Callable, size: int, x, y, ordered) -> list[torch.Tensor]:
        """``function`` over the batch in chunks of ``size`` samples: every output is a sum over the samples
        (added up), except ∂L/∂x, one column per sample (put together). Each chunk's outputs carry the
        reduction's share at the chunk's size (1/size for the mean): they are weighted to the batch's share."""
        batch = x.shape[1]
        share = self._share
        totals: list[torch.Tensor] = []
        per_sample = "x" in self.names  # ∂L/∂x, always the last output
        for start in range(0, batch, size):
            stop = min(start + size, batch)
            outputs = function(x[:, start:stop], y[:, start:stop], *ordered)
            weight = share(batch) / share(stop - start)  # size / batch for the mean, 1 for the sum
            if weight != 1:
                outputs = [output * weight for output in outputs]
            if not totals:
                totals = [output.clone() for output in outputs]  # the results of one chunk may share storage
                if per_sample:
                    totals[-1] = outputs[-1].new_empty((outputs[-1].shape[0], batch))
                    totals[-1][:, start:stop] = outputs[-1]
                continue
            for total, output in zip(totals[: len(totals) - per_sample], outputs):
                total.add_(output)
            if per_sample:
                totals[-1][:, start:stop] = outputs[-1]
        return totals

    def __repr__(self) -> str:
        backend = "" if self.backend is None else f", backend={self.backend!r}"
        chunk = "" if self.chunk == "auto" else f", chunk={self.chunk!r}"
        return f"CompiledGradients({self.derivation.network.describe()}, form={self.form!r}{backend}{chunk})"


def _source_of(function: Callable) -> str:
    filename = function.__code__.co_filename
    if filename.startswith(GENERATED):  # the whole generated text: header and function
        return "".join(linecache.getlines(filename))
    return inspect.getsource(function)


def _backend_function(function: Callable, backend: str | None) -> Callable:
    if backend is None:
        return function
    # torch.compile traces the function on its first call (seconds) and again for each new input shape
    return torch.compile(function, backend=backend, fullgraph=True)
