"""The straight-line function a printed program becomes (``compile_gradients``, a Model's, check_backward's).

Each step is one line ``target = expression`` printed by a ``MatrixTorchPrinter``; each intermediate is deleted
after its last use, and a line whose outermost operation torch can run in place writes into a buffer that
dies on that line. (Moved here from ``_compile`` so that ``_model_compile`` can use it without an import circle.)
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable, Sequence

import sympy
import torch

from ._compiled import GENERATED
from ._printer import MatrixTorchPrinter

_function_numbers = itertools.count()


def _straight_line(
    arguments: Sequence[sympy.Symbol],
    outputs: Sequence[sympy.Expr],
    steps: Sequence[tuple[sympy.Symbol, sympy.Expr]],
    printer: MatrixTorchPrinter,
    aliased_also: frozenset[sympy.Symbol] = frozenset(),
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
    aliased |= aliased_also  # views the caller knows of (a model's transposes and reshapes)

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
    filename = f"{GENERATED} {next(_function_numbers)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace = {"torch": torch}
    exec(compile(source, filename, "exec"), namespace)  # our own printed code; no user string is run
    return namespace["gradients"]
