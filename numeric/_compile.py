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

import functools
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import sympy

from symbolic import Derivation, InputError, InputTypeError, batch_sum
from symbolic._elementwise import UnitProgram
from symbolic._matrix import Role, matrix_symbol
from symbolic._model import Model
from symbolic._model_program import ModelProgram

from ._choices import BACKENDS, FORMS
from ._compiled import CompiledGradients
from ._printer import ElementwiseTorchPrinter, MatrixTorchPrinter
from ._scalar import ScalarGradients, scalar_path_applies
from ._straight_line import _straight_line

if TYPE_CHECKING:
    from ._model_compile import CompiledModelGradients


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
    derivation: Derivation | Model | ModelProgram,
    form: str = "matrix",
    backend: str | None = None,
    *,
    chunk: int | str | None = "auto",
    scalar: bool = True,
) -> CompiledGradients | CompiledModelGradients:
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

    A ``Model`` (or ``derive_model_program(model, wrt=("x",))``) compiles to a ``CompiledModelGradients``:
    ``f(x, y, params, masks=None)`` with samples as rows (numeric/_model_compile.py).
    ``scalar`` (default True): a tiny network's B=1 calls on CPU tensors run the same program over Python
    floats (``numeric._scalar``: weights and biases at most 64 a layer, the plain backend), computed in
    doubles and rounded once to the dtype; False runs them as torch code in the dtype's own arithmetic.
    """
    if isinstance(derivation, (Model, ModelProgram)):  # a model beyond dense stacks (numeric/_model_compile.py)
        from ._model_compile import compile_model

        return compile_model(derivation, form, backend)
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
    build = _BUILDERS[form]
    # a tiny network's B=1 calls run over Python floats (numeric._scalar), built on the first such call
    scalar_path = scalar and backend is None and scalar_path_applies(derivation)
    return CompiledGradients(
        derivation,
        form,
        build(derivation, with_loss=False),
        functools.partial(build, derivation, with_loss=True),  # built on first use: most callers never ask
        backend=backend,
        chunk=chunk,
        scalar=ScalarGradients(derivation) if scalar_path else None,
    )
