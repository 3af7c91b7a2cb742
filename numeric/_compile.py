"""compile_gradients: a Derivation's program as a straight-line torch function.

The derivation's named intermediates become the lines of the generated function, printed by chainrule's
SymPy printers, so ``f.source`` reads like the derivation. Two forms:

* ``"matrix"`` (default): one line per layer quantity (z, a, δ, gradient) over whole tensors, with
  ``@`` for products; as fast as a hand-written recursion, at any batch size.
* ``"elementwise"``: one line per unit, as the derivation displays it; for small networks. Where the output
  layer couples its units (softmax, softmax cross-entropy) its lines are the matrix program's at unit level,
  each sum over the units one shared line: as finite as the matrix form, and linear in the width.

The function holds no more than it needs: each intermediate is deleted after its last use, and a dead
buffer of the right shape takes the next result in place (a = σ(z) overwrites z, δ overwrites a), so a
call's peak memory is that of autograd's saved tensors, not of every z, a and δ at once.
``backend="inductor"`` hands the same function to ``torch.compile``, which fuses its element-wise passes.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import linecache
import operator
from collections.abc import Callable, Mapping, Sequence

import sympy
import torch

from symbolic import Derivation, InputError, InputTypeError, batch_sum
from symbolic._elementwise import UnitProgram
from symbolic._matrix import BATCH_SIZE, Role, matrix_symbol, reduction_scale

from ._checks import check_inputs
from ._choices import BACKENDS, FORMS
from ._printer import ElementwiseTorchPrinter, MatrixTorchPrinter

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
        with_loss: Callable | None = None,
        backend: str | None = None,
        chunk: int | str | None = "auto",
    ):
        self.derivation = derivation
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
        self._with_loss_function = with_loss  # built on first use: most callers never ask for the loss
        self._run_gradients = _backend_function(gradients_only, backend)
        self._run_with_loss: Callable | None = None
        self.names = tuple(derivation.matrix_program.gradients)  # the parameters, then "x" when asked
        self._parameters = tuple(derivation.network.parameter_shapes)  # what params must hold, in order
        # Signatures (types, shapes, dtypes, devices) that check_inputs accepted: a repeat skips the check
        self._accepted: dict[tuple, bool] = {}  # signature -> whether any of its tensors requires grad

    @property
    def _with_loss(self) -> Callable:
        if self._with_loss_function is None:
            self._with_loss_function = _BUILDERS[self.form](self.derivation, with_loss=True)
        return self._with_loss_function

    @property
    def source(self) -> str:
        """The generated Python source of the gradient function, with the header binding its short names."""
        return _source_of(self._gradients_only)

    @property
    def value_and_grad_source(self) -> str:
        return _source_of(self._with_loss)

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
        if not recorded and x.shape[1] < self._chunk_from:  # the common small call, as short as it can be
            return dict(zip(self.names, self._run_gradients(x, y, *ordered)))
        return dict(zip(self.names, self._run(self._run_gradients, x, y, ordered, recorded)))

    def value_and_grad(
        self, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ordered, recorded = self._checked(x, y, params)
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
    if filename.startswith(_GENERATED):  # the whole generated text: header and function
        return "".join(linecache.getlines(filename))
    return inspect.getsource(function)


def _backend_function(function: Callable, backend: str | None) -> Callable:
    if backend is None:
        return function
    # torch.compile traces the function on its first call (seconds) and again for each new input shape
    return torch.compile(function, backend=backend, fullgraph=True)


_function_numbers = itertools.count()
_GENERATED = "<chainrule generated"


def _straight_line(
    arguments: Sequence[sympy.Symbol],
    outputs: Sequence[sympy.Expr],
    steps: Sequence[tuple[sympy.Symbol, sympy.Expr]],
    printer: MatrixTorchPrinter,
) -> Callable:
    """The function ``arguments -> outputs`` computing ``steps`` (target, expression) line by line.

    Written here, not by ``sympy.lambdify``: lambdify prints the same lines (through the same printer) but
    keeps every intermediate alive until it returns; here each one is deleted after its last use, and a
    line whose outermost operation torch can run in place writes into a buffer that dies on that line.
    """
    reads = [printer.reads(expression) for _, expression in steps]
    last_use: dict[sympy.Symbol, int] = {}
    for index, symbols in enumerate(reads):
        for symbol in symbols:
            last_use[symbol] = index
    for output in outputs:
        for symbol in printer.reads(output):
            last_use[symbol] = len(steps)  # returned: never freed
    targets = {target for target, _ in steps}
    # ``a = z`` (identity) makes two names for one tensor: neither is overwritten in place
    aliased = {name for target, expression in steps if expression.is_Symbol for name in (target, expression)}

    name = printer.doprint
    printer.used.clear()
    lines = [f"def gradients({', '.join(name(argument) for argument in arguments)}):"]
    for index, (target, expression) in enumerate(steps):
        dying = sorted((s for s in reads[index] if s in targets and last_use[s] == index), key=str)
        reusable = frozenset(dying) - aliased
        lines.append(f"    {name(target)} = {printer.print_into(expression, reusable)}")
        if dying:
            lines.append(f"    del {', '.join(name(symbol) for symbol in dying)}")
    lines.append(f"    return [{', '.join(name(output) for output in outputs)}]")
    header = printer.header()
    source = "\n".join([*header, "", *lines]) + "\n"

    # registered with linecache like lambdify's code, so inspect.getsource and tracebacks show it
    filename = f"{_GENERATED} {next(_function_numbers)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace = {"torch": torch}
    exec(compile(source, filename, "exec"), namespace)  # our own printed code; no user string is run
    return namespace["gradients"]


def _compile_matrix(derivation: Derivation, with_loss: bool) -> Callable:
    program = derivation.matrix_program
    steps = [(step.target, step.expression) for step in program.steps]
    gradients = list(program.gradients.values())
    if with_loss:
        return _straight_line(program.inputs, [program.loss, *gradients], steps, MatrixTorchPrinter())
    without_loss = [line for line in steps if line[0] != program.loss]
    return _straight_line(program.inputs, gradients, without_loss, MatrixTorchPrinter())


def _elementwise_names(derivation: Derivation, steps: Sequence[tuple[sympy.Symbol, sympy.Expr]]) -> dict:
    """Code names: inputs index their tensor (``W1[0, 1]``, ``x[0]``), intermediates get identifiers
    (``z1[2]`` is ``z1_2``; a per-sample or [n, B] intermediate keeps its name)."""
    names: dict[sympy.Symbol, str] = {}
    for name, matrix in derivation.symbols.items():
        for i in range(matrix.rows):
            for j in range(matrix.cols):
                vector = name in ("x", "y")  # one row of the batch: a [B] tensor
                names[matrix[i, j]] = f"{name}[{i}]" if vector else f"{name}[{i}, {j}]"
    for symbol, _ in steps:
        base, _, index = str(symbol).rstrip("]").partition("[")
        names[symbol] = f"{base}_{index}" if index else base
    return names


def _elementwise_steps(derivation: Derivation, with_loss: bool) -> tuple[list, sympy.Symbol | None]:
    """The element-wise program, line by line, and the loss's symbol (with_loss) or None.

    Every line is the element-wise derivation's (z, a, δ of each unit), except the loss and, where the output
    layer couples its units (a softmax, a coupled loss), the output's a and δ: those are the matrix program's
    lines at unit level (``UnitProgram``), which compute each sum over the units once (the loss's too) and
    take the matrix form's finite forms (torch.softmax of z; bce after a softmax without 1/(1 − a_k)).
    Written out per unit, the chain rule Σ_k g_k ∂a_k/∂z_i gives every unit's δ the whole sum over the
    layer, n² terms in all (5.4 s to compile bce at width 80); e^z / Σ e^z overflows above z = 88.7 in
    float32, and (a_k − y_k)/(1 − a_k) is inf · 0 once a softmax output rounds to 1.
    """
    program, layers, network = derivation.matrix_program, derivation.layers, derivation.network
    output, depth = layers[-1], len(layers)
    matrix = {step.target: step.expression for step in program.steps}
    y = matrix_symbol("y")
    unit = UnitProgram(
        {matrix_symbol(f"z{depth}"): output.z, matrix_symbol(f"a{depth}"): output.a, y: derivation.symbols["y"]},
        inputs=frozenset({y}),
    )
    steps: list[tuple[sympy.Symbol, sympy.Expr]] = []
    for layer in layers:
        steps += zip(layer.z, layer.z_definition)
        if layer.activation.elementwise:
            steps += zip(layer.a, layer.a_definition)
        else:  # softmax, on the output layer only: the matrix program's softmax(z), one [n, B] line every unit reads
            steps += unit.define(matrix_symbol(f"a{depth}"), matrix[matrix_symbol(f"a{depth}")], output.a)
    loss = program.loss if with_loss else None
    if with_loss:
        steps += unit.value(program.loss, matrix[program.loss])
    if not output.activation.elementwise or network.loss_rule.coupled is not None:
        for step in program.steps:  # δ_L, after the intermediates it reads (the largest unit, ...)
            if step.role in (Role.DELTA, Role.DELTA_PART) and step.layer == depth:
                into = output.delta if step.role is Role.DELTA else None
                steps += unit.define(step.target, step.expression, into)
    else:
        steps += zip(output.delta, output.delta_definition)
    for layer in reversed(layers[:-1]):
        steps += zip(layer.delta, layer.delta_definition)
    return steps, loss


def _compile_elementwise(derivation: Derivation, with_loss: bool) -> Callable:
    steps, loss = _elementwise_steps(derivation, with_loss)
    printer = ElementwiseTorchPrinter(_elementwise_names(derivation, steps))
    arguments = derivation.matrix_program.inputs  # the plain names x, y, W1, ...
    outputs = [derivation.gradient_definitions[name].applyfunc(batch_sum) for name in derivation.parameters]
    if with_loss:
        outputs.insert(0, loss)
    return _straight_line(arguments, outputs, steps, printer)


_BUILDERS = {"matrix": _compile_matrix, "elementwise": _compile_elementwise}


def compile_gradients(
    derivation: Derivation, form: str = "matrix", backend: str | None = None, *, chunk: int | str | None = "auto"
) -> CompiledGradients:
    """Compile ``derivation`` into a torch function ``f(x, y, params) -> {name: gradient}``.

    ``backend=None`` runs the generated Python as is. ``backend="c"`` prints the whole program as one C
    function (``numeric._c``), compiled once per network and kept on disk; without a C compiler it says so and
    runs the torch backend. ``backend="inductor"`` wraps it in
    ``torch.compile(..., backend="inductor", fullgraph=True)``, which fuses its element-wise passes into
    generated C++ (or Triton) kernels: the first call, and the first with each new shape, pays the
    compilation (seconds; see the README's benchmark table), later calls run faster at large batches.
    ``chunk`` splits a batch into chunks of samples whose gradients are added up: ``"auto"`` (default) does
    so for large batches on the CPU, where a chunk's intermediates stay in cache; an int gives the samples
    per chunk; None runs every batch in one pass.
    """
    if not isinstance(derivation, Derivation):
        raise InputTypeError(
            f"compile_gradients takes a Derivation (from symbolic.derive); got {type(derivation).__name__}"
        )
    if form not in FORMS:
        raise InputError(f"unknown form {form!r}; allowed: {', '.join(FORMS)}")
    if derivation.wrt and form != "matrix":
        raise InputError(f"gradients with respect to {', '.join(derivation.wrt)} are compiled in the matrix form only")
    if backend not in BACKENDS:
        raise InputError(
            f"unknown backend {backend!r}; allowed: None (plain Python), 'inductor' (torch.compile), 'c' (C kernel)"
        )
    if backend == "c" and form != "matrix":
        raise InputError("backend='c' compiles the matrix program: form='matrix' only")
    if chunk is not None and not (isinstance(chunk, str) and chunk == "auto"):
        try:
            samples = None if isinstance(chunk, bool) else operator.index(chunk)  # numpy integers too
        except TypeError:
            samples = None
        if samples is None or samples < 1:
            raise InputError(f"chunk must be 'auto', None or a positive number of samples; got {chunk!r}")
        chunk = samples
    if backend == "c":
        from ._c import compile_c  # imported here: the C backend is built on first use

        compiled = compile_c(derivation, chunk)
        if compiled is not None:
            return compiled
        backend = None  # no C compiler (compile_c said so in one line): the torch backend runs instead
    return CompiledGradients(
        derivation, form, _BUILDERS[form](derivation, with_loss=False), backend=backend, chunk=chunk
    )
