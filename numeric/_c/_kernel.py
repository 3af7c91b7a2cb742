"""The matrix program as one C function: forward, δ recursion, gradient sums, loss and ∂L/∂x, tile by tile.

The function walks the batch in tiles of ``T`` samples (``T`` sized by the caller so that a tile's
intermediates stay in cache). Inside a tile every intermediate is a buffer with the samples as rows
(``z1[t*n + i]``: unit i of sample t), so each dense product runs along contiguous memory without a reduction
in its innermost loop, which the compiler vectorises without reassociating sums. Sums over the batch (the
gradients, the loss) go into ``double`` accumulators, written out once after the last tile.

Each line of ``derive(net).matrix_program`` is lowered here, in its order: its operations that are not
element-wise (products, sums over units or samples, softmax and its masks) become loops of their own writing
into a fresh buffer, and what remains is element-wise, printed by ``KernelPrinter`` from the program's own
SymPy tree. One exception (``fused_backward``): in a line δ = (Wᵀ δ') ⊙ f'(z) the element-wise rest is applied
to each sum of Wᵀ δ' as it leaves the product's accumulators. The loops themselves are C text: a tile loop
with a run-time bound and flattened indices reads more plainly as C than as ``sympy.codegen.ast`` For/Range
nodes, and SymPy has no node for a running maximum.
Dense products of narrow layers are plain loops (``_sum_of_rows``); a wide layer's (``WIDE``) are GEMM calls
(``_gemm``: a BLAS's sgemm/dgemm when one was found, else a packed GEMM printed there), which read x where it
lies (no tile copy of it), read W where it lies (no Wᵀ copy), and add a weight's gradient straight into the
output tensor, tile after tile (no double total of it). The buffers live in a work area the caller may keep
from call to call (``chainrule_work_<suffix>`` says its size).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import sympy

from symbolic import Network
from symbolic._functions import (
    batch_size,
    batch_sum,
    matmul,
    max_mask,
    softmax,
    softmax_without_max,
    transpose,
    unit_logsumexp,
    unit_sum,
)
from symbolic._matrix import MatrixProgram

from . import _gemm
from ._printer import KernelPrinter

SUFFIXES = {"float32": "f32", "float64": "f64"}  # one C function per floating type, named by its suffix
BLOCK = 4  # sums a dense product keeps in flight (samples of the tile, or rows of a weight's gradient)
ROW_BYTES = 256  # columns of a product summed at once: 4 rows of them fill 16 AVX-512 registers
ALIGN = 16  # buffers start on a multiple of this many reals (64 bytes for float32): whole cache lines
# A product whose weight has this many entries or more runs as a GEMM call (a BLAS's, or _gemm's own); narrower
# ones as _sum_of_rows's loops, which need no packing and no call: 16-16-16-16 sigmoid B=1e5 took 7.2 ms so and
# 10.5 ms with every product a GEMM call; 784-256-10's 10 × 256 W2 either way alike (10.0 and 10.1 ms at B=1024).
WIDE = 64 * 64


@dataclass(frozen=True)
class Place:
    """Where a matrix symbol of the program lives in the kernel.

    ``tile``: [T][width] reals, one row per sample of the tile; ``row``: [T], one value per sample (a sum over
    units); ``column``: [width], the same for every sample (a bias); ``weights``: [rows][cols], an input;
    ``total``: [width] doubles summed over the whole batch (``rows`` x ``cols`` for a weight's gradient);
    ``output``: [rows][cols] reals, a wide weight's gradient summed by GEMM calls in its output tensor itself;
    ``scalar``: a number (the batch size).
    """

    kind: str
    name: str
    width: int = 1
    rows: int = 0
    cols: int = 0


@dataclass(frozen=True)
class Kernel:
    """The C source and what the caller needs to run it."""

    source: str
    function: dict[str, str]  # torch dtype name ("float64") -> the C function's name
    inputs: tuple[str, ...]  # x, y, then the parameters, in the order the C function takes their pointers
    outputs: dict[str, tuple[int, int | None]]  # gradient name -> shape (None: the batch) in the order it writes
    reals_per_sample: int  # the tile buffers' reals per sample: T × this × the real's size is a tile's memory
    work: dict[str, str]  # torch dtype name -> the C function saying how many reals of work area a call needs
    wide: bool  # whether any product runs as a GEMM call (then a BLAS's address is worth passing)


@dataclass
class _Writer:
    """Lowers one program for one floating type (``printer``) into the lines of one C function."""

    network: Network
    program: MatrixProgram
    printer: KernelPrinter
    places: dict[sympy.Symbol, Place] = field(default_factory=dict)
    tile_buffers: list[tuple[str, int]] = field(default_factory=list)  # name, reals per sample
    totals: list[tuple[str, int]] = field(default_factory=list)  # name, doubles
    transposed: list[str] = field(default_factory=list)  # weights whose transposed copy the forward products read
    tile: list[str] = field(default_factory=list)  # the body of the tile loop
    after: list[str] = field(default_factory=list)  # after the last tile: the batch-level lines, the outputs
    counter: Iterator[int] = field(default_factory=lambda: iter(range(10**9)))
    # the lines after the last tile read double totals: printed in double whatever the tile's type
    epilogue_printer: KernelPrinter = field(default_factory=lambda: KernelPrinter("float64"))
    batch: sympy.Symbol = field(default_factory=lambda: sympy.Symbol("batch", positive=True))
    reals_per_sample: int = 0
    gemms: int = 0  # GEMM calls printed (wide products)
    slots: list[tuple[str, int]] = field(default_factory=list)  # the tile buffers' memory: name, reals per sample
    sharing: dict[str, str] = field(default_factory=dict)  # buffer -> the slot it lives in (another buffer's)
    x_tile: bool = False  # whether anything reads x from a tile (GEMM calls read it where it lies)

    # -- places --------------------------------------------------------------------------------------------

    def fresh(self, prefix: str, target: sympy.Symbol | None = None) -> sympy.Symbol:
        """``target`` (the program's name for a whole line's result), else a name no program symbol has (the
        program's are x, y, W1, z1, delta1, grad_W1, mask_z2, ...): a buffer for part of a line."""
        return target if target is not None else sympy.Symbol(f"{prefix}{next(self.counter)}", real=True)

    def new_tile(self, symbol: sympy.Symbol, width: int) -> Place:
        place = Place("tile", symbol.name, width)
        self.tile_buffers.append((symbol.name, width))
        self.places[symbol] = place
        return place

    def new_row(self, symbol: sympy.Symbol) -> Place:
        place = Place("row", symbol.name)
        self.tile_buffers.append((symbol.name, 1))
        self.places[symbol] = place
        return place

    def new_total(self, symbol: sympy.Symbol, width: int, rows: int = 0, cols: int = 0) -> Place:
        place = Place("total", symbol.name, width, rows, cols)
        self.totals.append((symbol.name, width))
        self.places[symbol] = place
        return place

    def access(self, symbols, index: str = "i", batch: str = "batch") -> dict[sympy.Symbol, str]:
        """How each symbol is read inside a loop over samples ``t`` and units ``index``."""
        result = {}
        for symbol in symbols:
            place = self.places[symbol]
            self.x_tile |= symbol == self.program.inputs[0]
            if place.kind == "tile":
                result[symbol] = f"{place.name}[t*{place.width} + {index}]" if place.width > 1 else f"{place.name}[t]"
            elif place.kind == "row":
                result[symbol] = f"{place.name}[t]"
            elif place.kind == "column":
                result[symbol] = f"{place.name}[{index}]"
            elif place.kind == "total":
                result[symbol] = f"{place.name}[{index}]" if place.width > 1 else f"{place.name}[0]"
            elif place.kind == "scalar":
                result[symbol] = batch
            else:
                raise NotImplementedError(f"{symbol} ({place.kind}) cannot be read element-wise")
        return result

    # -- lowering ------------------------------------------------------------------------------------------

    def lower(self, expression: sympy.Expr, out: list[str], target: sympy.Symbol | None = None) -> sympy.Expr:
        """``expression`` with every operation that is not element-wise computed by loops appended to ``out``
        and replaced by the symbol of its buffer (``target``, when that operation is the whole line)."""
        if isinstance(expression, sympy.Symbol):
            return expression
        if isinstance(expression, batch_size):
            return self.batch
        if not expression.args:
            return expression
        if isinstance(expression, matmul):
            return self.product(*expression.args, out, target=target)
        if isinstance(expression, unit_sum):
            return self.unit_sum(self.lower(expression.args[0], out), out, target)
        if isinstance(expression, batch_sum):
            return self.batch_sum(self.lower(expression.args[0], out), out, target)
        if isinstance(expression, (softmax, max_mask, unit_logsumexp)):
            z = self.materialised(self.lower(expression.args[0], out), out)
            return self.per_sample(type(expression), z, out, target)
        if isinstance(expression, softmax_without_max):
            z, mask = (self.materialised(self.lower(argument, out), out) for argument in expression.args)
            return self.softmax_without_max(z, mask, out, target)
        if isinstance(expression, transpose):
            raise NotImplementedError(f"a transpose outside a product: {expression}")
        return expression.func(*(self.lower(argument, out) for argument in expression.args))

    def kind_of(self, expression: sympy.Expr) -> tuple[str, int]:
        """("tile", width), ("row", 1) or ("total", width): the loop an element-wise expression needs."""
        places = [self.places[symbol] for symbol in expression.free_symbols]
        totals = [place.width for place in places if place.kind == "total"]
        tiles = {place.width for place in places if place.kind == "tile"}
        if totals:
            if tiles or any(place.kind in ("row", "column") for place in places):
                raise NotImplementedError(f"{expression} mixes batch totals with per-sample values")
            return "total", max(totals)
        tiles |= {place.width for place in places if place.kind == "column"}
        if len(tiles) > 1:
            raise NotImplementedError(f"{expression} mixes layers of widths {sorted(tiles)}")
        if tiles:
            return "tile", tiles.pop()
        if any(place.kind == "row" for place in places):
            return "row", 1
        raise NotImplementedError(f"{expression} reads no per-sample value")

    def materialised(self, expression: sympy.Expr, out: list[str]) -> sympy.Symbol:
        """A symbol whose tile buffer holds ``expression``: the symbol itself when it has one."""
        if isinstance(expression, sympy.Symbol) and self.places[expression].kind == "tile":
            self.x_tile |= expression == self.program.inputs[0]
            return expression
        kind, width = self.kind_of(expression)
        if kind != "tile":
            raise NotImplementedError(f"{expression} is not a per-unit value")
        symbol = self.fresh("u")
        self.new_tile(symbol, width)
        self.elementwise(symbol, expression, width, out)
        return symbol

    def statement(self, target: str, operator: str, expression: sympy.Expr, indent: str, access) -> list[str]:
        """``target operator expression;`` with its common subexpressions declared first (``access``: symbol ->
        C text for this loop)."""
        self.printer.access = access
        lines, text = self.printer.expression(expression, indent)
        return [*lines, f"{indent}{target} {operator} {text};"]

    def elementwise(self, target: sympy.Symbol, expression: sympy.Expr, width: int, out: list[str]) -> None:
        """target[t][i] = expression, for every sample and unit of the tile."""
        access = self.access(expression.free_symbols)
        place = self.places[target]
        lhs = self.access([target])[target]
        if place.kind == "row":
            out += ["for (int64_t t = 0; t < T; ++t) {", *self.statement(lhs, "=", expression, "    ", access), "}"]
            return
        out += [
            "for (int64_t t = 0; t < T; ++t) {",
            f"    for (int64_t i = 0; i < {width}; ++i) {{",
            *self.statement(lhs, "=", expression, "        ", access),
            "    }",
            "}",
        ]

    def unit_sum(self, expression: sympy.Expr, out: list[str], target=None) -> sympy.Symbol:
        """A row holding Σ_i expression for each sample of the tile."""
        kind, width = self.kind_of(expression)
        symbol = self.fresh("r", target)
        self.new_row(symbol)
        if kind != "tile":
            raise NotImplementedError(f"a sum over units of {expression}, which has none")
        real = self.printer.type_name
        out += [
            "for (int64_t t = 0; t < T; ++t) {",
            f"    {real} total = 0;",
            f"    for (int64_t i = 0; i < {width}; ++i) {{",
            *self.statement("total", "+=", expression, "        ", self.access(expression.free_symbols)),
            "    }",
            f"    {symbol.name}[t] = total;",
            "}",
        ]
        return symbol

    def batch_sum(self, expression: sympy.Expr, out: list[str], target=None) -> sympy.Symbol:
        """A total (doubles, over the whole batch) of expression: one per unit, or one for a row."""
        kind, width = self.kind_of(expression)
        symbol = self.fresh("total", target)
        self.new_total(symbol, width)
        access = self.access(expression.free_symbols)
        if kind == "row":
            sum_up = self.statement(f"{symbol}[0]", "+=", expression, "    ", access)
            out += ["for (int64_t t = 0; t < T; ++t) {", *sum_up, "}"]
            return symbol
        out += [
            "for (int64_t t = 0; t < T; ++t) {",
            f"    for (int64_t i = 0; i < {width}; ++i) {{",
            *self.statement(f"{symbol}[i]", "+=", expression, "        ", access),
            "    }",
            "}",
        ]
        return symbol

    def gemm(self, ta: int, tb: int, m, n, k, a, lda, b, ldb, beta: str, c, ldc) -> str:
        """One call C = β C + op(A) op(B) (row-major; ``_gemm``), through the BLAS the caller passed, if any."""
        self.gemms += 1
        suffix = SUFFIXES[self.printer.dtype]
        arguments = ", ".join(map(str, (ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc)))
        return f"chainrule_gemm_{suffix}(blas, {arguments}, pack);"

    def gemm_operand(self, symbol: sympy.Symbol) -> tuple[str, int, int]:
        """A GEMM's per-sample operand as (pointer, leading dimension, transposed): x where it lies (a row of B
        samples per unit: the tile is the transposed block from column ``start``), any other in its tile."""
        if symbol == self.program.inputs[0]:
            return "x + start", "B", 1  # type: ignore[return-value]
        place = self.places[symbol]
        return place.name, place.width, 0

    def wide_product(self, left: sympy.Expr, right: sympy.Expr, out: list[str], bias, target) -> sympy.Symbol | None:
        """``product`` as one GEMM call where the weight (or the gradient) has WIDE entries or more and the
        operands are whole symbols; None (nothing written) otherwise."""
        gradients = {symbol: name for name, symbol in self.program.gradients.items()}
        if isinstance(right, transpose):  # δ aᵀ, added to the gradient's output tensor itself
            (a,) = right.args
            if not (target in gradients and isinstance(left, sympy.Symbol) and isinstance(a, sympy.Symbol)):
                return None
            d, cols = self.places[left], self.places[a].width
            if d.kind != "tile" or self.places[a].kind != "tile" or d.width * cols < WIDE:
                return None
            output = f"out_{gradients[target]}"
            self.places[target] = Place("output", output, d.width * cols, d.width, cols)
            pointer, lead, transposed = self.gemm_operand(a)
            first = "start == 0 ? 0 : 1"  # the first tile's sum overwrites the (uninitialised) output
            out.append(
                self.gemm(1, transposed, d.width, cols, "T", d.name, d.width, pointer, lead, first, output, cols)
            )
            return target
        if isinstance(left, transpose):  # Wᵀ δ: [T][cols] = δ [T][rows] · W [rows][cols]
            weights, d = self.places.get(left.args[0]), self.places.get(right)
            if weights is None or weights.kind != "weights" or d is None or d.kind != "tile":
                return None
            if weights.rows * weights.cols < WIDE:
                return None
            rows, cols = weights.rows, weights.cols
            symbol = self.fresh("u", target)
            self.new_tile(symbol, cols)
            out.append(self.gemm(0, 0, "T", cols, rows, d.name, rows, weights.name, cols, "0", symbol.name, cols))
            return symbol
        weights, a = self.places.get(left), self.places.get(right)  # W a: [T][rows] = a [T][cols] · Wᵀ
        if weights is None or weights.kind != "weights" or a is None or a.kind != "tile":
            return None
        if weights.rows * weights.cols < WIDE:
            return None
        rows, cols = weights.rows, weights.cols
        symbol = self.fresh("u", target)
        self.new_tile(symbol, rows)
        if bias is not None:  # the sums start at the bias
            fill = f"{symbol.name}[t*{rows} + l] = {self.places[bias].name}[l];"
            out += ["for (int64_t t = 0; t < T; ++t)", f"    for (int64_t l = 0; l < {rows}; ++l) {fill}"]
        pointer, lead, transposed = self.gemm_operand(right)  # type: ignore[arg-type]
        beta = "0" if bias is None else "1"
        out.append(
            self.gemm(transposed, 1, "T", rows, cols, pointer, lead, weights.name, cols, beta, symbol.name, rows)
        )
        return symbol

    def product(self, left: sympy.Expr, right: sympy.Expr, out: list[str], bias=None, target=None) -> sympy.Symbol:
        """W a (forward), Wᵀ δ (backward) into a tile buffer, or δ aᵀ (a weight's gradient) into a total.

        Wide ones are GEMM calls (``wide_product``). The others are each a sum of rows scaled by numbers
        (``_sum_of_rows``), BLOCK results at a time: BLOCK independent sums in flight rather than one chain of
        dependent additions, whose latency would bound a narrow layer.
        """
        wide = self.wide_product(left, right, out, bias, target)
        if wide is not None:
            return wide
        if isinstance(right, transpose):  # δ aᵀ: Σ_t δ[t][i] a[t][:], added to the weight's total, BLOCK rows at once
            u = self.places[self.materialised(self.lower(left, out), out)]
            v = self.places[self.materialised(self.lower(right.args[0], out), out)]
            rows, cols = u.width, v.width
            symbol = self.fresh("total", target)
            self.new_total(symbol, rows * cols, rows, cols)
            full, rest = divmod(rows, BLOCK)

            def rows_from(count: int) -> list[str]:
                return self._sum_of_rows(
                    count, cols, "0", "t", "T", f"{v.name} + t*{cols}", f"{u.name}[t*{rows} + i + k]",
                    f"{symbol.name}[(i + k)*{cols} + l] += acc[k][l];",
                )  # fmt: skip

            if full:
                out += [f"for (int64_t i = 0; i < {full * BLOCK}; i += {BLOCK}) {{", *_indent(rows_from(BLOCK)), "}"]
            if rest:
                out += ["{", f"    const int64_t i = {full * BLOCK};", *_indent(rows_from(rest)), "}"]
            return symbol
        if isinstance(left, transpose):  # Wᵀ δ: up[t][:] = Σ_i δ[t][i] W[i][:], along W's rows
            weights = self.places[left.args[0]]
            d = self.places[self.materialised(self.lower(right, out), out)]
            rows, cols = weights.rows, weights.cols
            symbol = self.fresh("u", target)
            self.new_tile(symbol, cols)
            out += self._per_samples(
                lambda count: self._sum_of_rows(
                    count, cols, "0", "i", str(rows), f"{weights.name} + i*{cols}", f"{d.name}[(t + k)*{rows} + i]",
                    f"{symbol.name}[(t + k)*{cols} + l] = acc[k][l];",
                )
            )  # fmt: skip
            return symbol
        # W a (+ b): z[t][:] = b + Σ_j a[t][j] Wᵀ[j][:], along the rows of Wᵀ (copied once per call)
        weights = self.places[left]
        a = self.places[self.materialised(self.lower(right, out), out)]
        rows, cols = weights.rows, weights.cols
        if weights.name not in self.transposed:
            self.transposed.append(weights.name)
        symbol = self.fresh("u", target)
        self.new_tile(symbol, rows)
        start = f"{self.places[bias].name}[l]" if bias is not None else "0"
        out += self._per_samples(
            lambda count: self._sum_of_rows(
                count, rows, start, "j", str(cols), f"{weights.name}_T + j*{rows}", f"{a.name}[(t + k)*{cols} + j]",
                f"{symbol.name}[(t + k)*{rows} + l] = acc[k][l];",
            )
        )  # fmt: skip
        return symbol

    @staticmethod
    def _per_samples(block) -> list[str]:
        """``block(count)``'s lines for samples t … t + count − 1: BLOCK at a time, then one at a time."""
        return [
            "{",
            "    int64_t t = 0;",
            f"    for (; t + {BLOCK} <= T; t += {BLOCK}) {{",
            *_indent(_indent(block(BLOCK))),
            "    }",
            "    for (; t < T; ++t) {",
            *_indent(_indent(block(1))),
            "    }",
            "}",
        ]

    def _sum_of_rows(
        self, count: int, length: int, start: str, index: str, end: str, row: str, scale: str, store: str | list[str]
    ) -> list[str]:
        """acc[k][:] = start + Σ_{index < end} scale(k) · row(index), for k < count, then ``store`` for each k, l.

        The accumulators are a local array the compiler keeps in vector registers when they fit; ``omp simd``
        asks it to vectorise along the row (-fopenmp-simd: no threads, no OpenMP runtime). A row longer than
        ROW_BYTES is summed a block of columns at a time, each block's sums in registers: with acc[4][256] in
        memory every multiply-add loaded and stored its sum (784-256-10 relu/softmax B=1024 24.7 -> 14.0 ms when
        its W1 still ran here; wide weights are GEMM calls now, ``wide_product``)."""
        real = self.printer.type_name
        columns = ROW_BYTES // (4 if real == "float" else 8)
        if length <= columns:
            return self._sum_of_columns(count, length, "0", start, index, end, row, scale, store)
        full, rest = divmod(length, columns)
        lines = [
            f"for (int64_t l0 = 0; l0 < {full * columns}; l0 += {columns}) {{",
            *_indent(self._sum_of_columns(count, columns, "l0", start, index, end, row, scale, store)),
            "}",
        ]
        if rest:
            block = self._sum_of_columns(count, rest, "l0", start, index, end, row, scale, store)
            lines += ["{", f"    const int64_t l0 = {full * columns};", *_indent(block), "}"]
        return lines

    def _sum_of_columns(
        self, count: int, width: int, first: str, start: str, index: str, end: str, row: str, scale: str, store
    ) -> list[str]:
        """``_sum_of_rows`` for the columns l = first … first + width − 1 (acc[k][l − first] holds column l)."""
        real = self.printer.type_name
        columns = (
            f"int64_t l = 0; l < {width}; ++l" if first == "0" else f"int64_t l = {first}; l < {first} + {width}; ++l"
        )
        acc = "acc[k][l]" if first == "0" else f"acc[k][l - {first}]"
        # the callers' stores name the sum acc[k][l], column l: here it sits at l − first
        stores = [store] if isinstance(store, str) else store
        stores = [line.replace("acc[k][l]", acc) for line in stores]
        return [
            "{",
            f"    {real} acc[{count}][{width}];",
            f"    for (int64_t k = 0; k < {count}; ++k) {{",
            "        #pragma omp simd",
            f"        for ({columns}) {acc} = {start};",
            "    }",
            f"    for (int64_t {index} = 0; {index} < {end}; ++{index}) {{",
            f"        const {real} *restrict row = {row};",
            f"        for (int64_t k = 0; k < {count}; ++k) {{",
            f"            const {real} scale = {scale};",
            "            #pragma omp simd",
            f"            for ({columns}) {acc} += scale*row[l];",
            "        }",
            "    }",
            f"    for (int64_t k = 0; k < {count}; ++k) {{",
            "        #pragma omp simd",
            *(
                [f"        for ({columns}) {stores[0]}"]
                if isinstance(store, str)
                else [f"        for ({columns}) {{", *(f"            {line}" for line in stores), "        }"]
            ),
            "    }",
            "}",
        ]

    def exp_shifted(self) -> str:
        """e^(z_i − top) in C, for the unit ``zt[i]`` of a sample and its largest unit ``top``."""
        unit, largest = sympy.Symbol("unit", real=True), sympy.Symbol("top", real=True)
        self.printer.access = {unit: "zt[i]", largest: "top"}
        return self.printer.doprint(sympy.exp(unit - largest))

    def per_sample(self, operation: type, z: sympy.Symbol, out: list[str], target=None) -> sympy.Symbol:
        """softmax(z) and max_mask(z) (tiles), logsumexp(z) (a row), over the units of each sample.

        softmax and logsumexp subtract the sample's largest z first, as torch does: e^z never overflows."""
        width, printer = self.places[z].width, self.printer
        real = printer.type_name
        exp = self.exp_shifted()
        row = [
            f"    const {real} *restrict zt = {self.places[z].name} + t*{width};",
            f"    {real} top = zt[0];",
            f"    for (int64_t i = 1; i < {width}; ++i) if (zt[i] > top) top = zt[i];",
        ]
        if operation is max_mask:  # 1 at the first largest unit (torch's argmax), 0 elsewhere
            symbol = self.fresh("u", target)
            self.new_tile(symbol, width)
            out += [
                "for (int64_t t = 0; t < T; ++t) {",
                f"    const {real} *restrict zt = {self.places[z].name} + t*{width};",
                "    int64_t best = 0;",
                f"    for (int64_t i = 1; i < {width}; ++i) if (zt[i] > zt[best]) best = i;",
                f"    for (int64_t i = 0; i < {width}; ++i) {symbol.name}[t*{width} + i] = (i == best);",
                "}",
            ]
            return symbol
        if operation is unit_logsumexp:
            symbol = self.fresh("r", target)
            self.new_row(symbol)
            total = sympy.Symbol("total", positive=True)
            printer.access = {total: "total"}
            log = printer.doprint(sympy.log(total))
            out += [
                "for (int64_t t = 0; t < T; ++t) {",
                *row,
                f"    {real} total = 0;",
                f"    for (int64_t i = 0; i < {width}; ++i) total += {exp};",
                f"    {symbol.name}[t] = top + {log};",
                "}",
            ]
            return symbol
        symbol = self.fresh("u", target)
        self.new_tile(symbol, width)
        out += [
            "for (int64_t t = 0; t < T; ++t) {",
            *row,
            f"    {real} *restrict st = {symbol.name} + t*{width};",
            f"    {real} total = 0;",
            f"    for (int64_t i = 0; i < {width}; ++i) total += st[i] = {exp};",
            f"    for (int64_t i = 0; i < {width}; ++i) st[i] /= total;",
            "}",
        ]
        return symbol

    def softmax_without_max(self, z: sympy.Symbol, mask: sympy.Symbol, out: list[str], target=None) -> sympy.Symbol:
        """The softmax of each sample's units with the masked unit left out (0 there), as torch.softmax of z
        with the mask filled by −∞ (the torch backend's line)."""
        width, printer = self.places[z].width, self.printer
        real = printer.type_name
        exp = self.exp_shifted()
        symbol = self.fresh("u", target)
        self.new_tile(symbol, width)
        out += [
            "for (int64_t t = 0; t < T; ++t) {",
            f"    const {real} *restrict zt = {self.places[z].name} + t*{width};",
            f"    const {real} *restrict mt = {self.places[mask].name} + t*{width};",
            f"    {real} *restrict st = {symbol.name} + t*{width};",
            f"    {real} top = -INFINITY;",
            f"    for (int64_t i = 0; i < {width}; ++i) if (mt[i] == 0 && zt[i] > top) top = zt[i];",
            f"    {real} total = 0;",
            f"    for (int64_t i = 0; i < {width}; ++i) total += st[i] = mt[i] != 0 ? 0 : {exp};",
            f"    for (int64_t i = 0; i < {width}; ++i) st[i] /= total;",
            "}",
        ]
        return symbol

    # -- the program ---------------------------------------------------------------------------------------

    def fused_backward(self, target: sympy.Symbol, expression: sympy.Expr, out: list[str]) -> bool:
        """δ = (Wᵀ δ') ⊙ f'(z) and the like, a line whose one product Wᵀ δ' is wrapped in element-wise work on tiles
        of its width: that work is done on each sum as it leaves the product's accumulators, with no buffer for
        Wᵀ δ' and no second sweep over the tile (16-16-16-16 sigmoid B=1e5: 6.8 -> 6.6 ms). False, and nothing
        written, for any other line."""
        products = [node for node in sympy.preorder_traversal(expression) if isinstance(node, matmul)]
        if len(products) != 1 or products[0] == expression:
            return False
        (product,) = products
        left, right = product.args
        if not (isinstance(left, transpose) and isinstance(left.args[0], sympy.Symbol)):
            return False
        weights, d = self.places.get(left.args[0]), self.places.get(right)
        if weights is None or weights.kind != "weights" or d is None or d.kind != "tile":
            return False
        rows, cols = weights.rows, weights.cols
        sums = sympy.Symbol("product_sum", real=True)  # the product in the rest of the line (no program name)
        rest = expression.xreplace({product: sums})
        not_elementwise = (matmul, transpose, unit_sum, batch_sum, batch_size, softmax, max_mask, unit_logsumexp)
        if any(isinstance(node, (*not_elementwise, softmax_without_max)) for node in sympy.preorder_traversal(rest)):
            return False
        others = [self.places[symbol] for symbol in rest.free_symbols - {sums}]
        if any(place.kind != "tile" or place.width != cols for place in others):
            return False
        self.new_tile(target, cols)
        if rows * cols >= WIDE:  # the GEMM's sums into target's buffer, then the rest of the line in place
            out.append(self.gemm(0, 0, "T", cols, rows, d.name, rows, weights.name, cols, "0", target.name, cols))
            access = {s: f"{self.places[s].name}[t*{cols} + l]" for s in rest.free_symbols - {sums}}
            access[sums] = f"{target.name}[t*{cols} + l]"
            store = self.statement(f"{target.name}[t*{cols} + l]", "=", rest, "        ", access)
            out += ["for (int64_t t = 0; t < T; ++t) {", f"    for (int64_t l = 0; l < {cols}; ++l) {{", *store]
            out += ["    }", "}"]
            return True
        access = {sums: "acc[k][l]"}
        access.update(
            {symbol: f"{self.places[symbol].name}[(t + k)*{cols} + l]" for symbol in rest.free_symbols - {sums}}
        )
        store = self.statement(f"{target.name}[(t + k)*{cols} + l]", "=", rest, "", access)
        out += self._per_samples(
            lambda count: self._sum_of_rows(
                count, cols, "0", "i", str(rows), f"{weights.name} + i*{cols}", f"{d.name}[(t + k)*{rows} + i]", store
            )
        )
        return True

    def step(self, target: sympy.Symbol, expression: sympy.Expr, out: list[str], after: list[str]) -> None:
        """One line of the program: its loops into ``out`` (the tile loop) or ``after`` (batch totals)."""
        out.append(f"/* {target} = {sympy.sstr(expression)} */")
        if self.fused_backward(target, expression, out):
            return
        products = [term for term in sympy.Add.make_args(expression) if isinstance(term, matmul)]
        others = [term for term in sympy.Add.make_args(expression) if not isinstance(term, matmul)]
        if (
            len(products) == 1
            and not isinstance(products[0].args[0], transpose)
            and not isinstance(products[0].args[1], transpose)
            and all(isinstance(t, sympy.Symbol) and self.places[t].kind == "column" for t in others)
            and len(others) <= 1
        ):  # z = W a (+ b): the bias is where the sum starts
            self.product(*products[0].args, out, bias=others[0] if others else None, target=target)
            return
        if len(products) == 1 and not others and isinstance(products[0].args[1], transpose):
            self.product(*products[0].args, out, target=target)  # a weight's gradient, straight into its total
            return
        lowered = self.lower(expression, out, target)
        if isinstance(lowered, sympy.Symbol):  # a = z (identity), or a product that made its own buffer
            self.places[target] = self.places[lowered]
            return
        kind, width = self.kind_of(lowered)
        if kind == "total":  # after the last tile, in double: the loss, a bias's gradient, ...
            self.new_total(target, width)
            access = self.access(lowered.free_symbols, "k", "((double)B)")
            saved, self.printer = self.printer, self.epilogue_printer
            try:
                after += [
                    f"for (int64_t k = 0; k < {width}; ++k) {{",
                    *self.statement(f"{target.name}[k]", "=", lowered, "    ", access),
                    "}",
                ]
            finally:
                self.printer = saved
            return
        if kind == "row":
            self.new_row(target)
        else:
            self.new_tile(target, width)
        self.elementwise(target, lowered, width, out)

    def write(self, name: str, work_name: str) -> str:
        """The C function ``name``: the work area, Wᵀ copies, the tile loop, the batch-level lines, the outputs;
        and before it ``work_name``, the work area's reals for tiles of T_max samples."""
        network, program = self.network, self.program
        x, y, *parameters = program.inputs
        self.places[self.batch] = Place("scalar", "batch")
        for symbol in parameters:
            rows, cols = network.parameter_shapes[symbol.name]
            kind = "column" if symbol.name.startswith("b") else "weights"
            self.places[symbol] = Place(kind, symbol.name, rows, rows, cols)
        for symbol, width in ((x, network.sizes[0]), (y, network.sizes[-1])):  # copied in, samples as rows
            self.places[symbol] = Place("tile", f"tile_{symbol.name}", width)
        self.tile_buffers.append(("tile_y", network.sizes[-1]))
        body, loss_body, loss_after = [], [], []
        for step in program.steps:  # the loss's lines run only when the caller asks for it
            if step.target == program.loss:
                self.step(step.target, step.expression, loss_body, loss_after)
            else:
                self.step(step.target, step.expression, body, self.after)
        if self.x_tile:  # something reads x element-wise or in a narrow product: copied in like y
            self.tile_buffers.append(("tile_x", network.sizes[0]))
        body, after_loss = self.split_for_loss(body, loss_body)
        self.share_slots(body, loss_body, after_loss)
        self.reals_per_sample = sum(width for _, width in self.slots)
        real = self.printer.type_name
        pointers = [f"const {real} *restrict {symbol.name}" for symbol in program.inputs]
        pointers += [f"{real} *restrict out_{gradient}" for gradient in program.gradients] + [
            f"{real} *restrict out_loss"
        ]
        lengths = self.work_lengths()
        size = " + ".join(f"_align({length})" for _, length in lengths)
        pack = f" + (packing ? {_gemm.pack_reals()} : 0)" if self.gemms else ""
        outputs = [place for place in self.places.values() if place.kind == "output"]
        lines = [
            "/* the reals of work area a call with tiles of T_max samples needs (packing: no BLAS is passed) */",
            f"int64_t {work_name}(int64_t T_max, int packing) {{",
            "    (void)packing;" if not self.gemms else "",
            f"    return {size or '0'}{pack};",
            "}",
            "",
            "/* work: the caller's work area of chainrule_work_<suffix>(T_max, blas == NULL) reals, or NULL (allocated",
            "   here); blas: the address of a Fortran gemm for the wide products, or NULL (the kernel's own GEMM) */",
            f"int {name}(int64_t B, int64_t T_max, {real} *given_work, const void *blas, {', '.join(pointers)}) {{",
            f"    const {real} batch = ({real})B;",
            *(f"    {line}" for line in self.allocation(work_name, lengths)),
            *(f"    if (B == 0) memset({place.name}, 0, sizeof({real})*{place.width});" for place in outputs),
            *(f"    {line}" for line in self.tile_loop(body, loss_body, after_loss)),
            *(f"    {line}" for line in self.after),
            "    if (out_loss != NULL) {",
            *(f"        {line}" for line in loss_after),
            f"        out_loss[0] = ({real}){self.places[program.loss].name}[0];",
            "    }",
        ]
        for gradient, symbol in program.gradients.items():  # the totals, in the tensors' type
            place = self.places[symbol]
            if place.kind == "total":
                write = f"out_{gradient}[k] = ({real}){place.name}[k];"
                lines.append(f"    for (int64_t k = 0; k < {place.width}; ++k) {write}")
        lines += ["    if (given_work == NULL) free(work);", "    free(totals);", "    return 0;", "}"]
        return "\n".join(line for line in lines if line)

    def split_for_loss(self, body: list[str], loss_body: list[str]) -> tuple[list[str], list[str]]:
        """The tile's lines before and after the loss's: the loss runs right after the last line it reads (its
        targets named by the ``/* target = … */`` comment starting each line's group), not at the tile's end,
        so that what it reads (the output layer, y's tile) is free for the backward lines' buffers: in
        1024-1024-1024 tanh δ1 then lives in a2's slot, 4 rows of 1024 a sample where it was 5, and a tile
        within the caller's memory budget (1 MiB at B=256) holds 64 samples, not 51."""
        read = set(re.findall(r"[A-Za-z_]\w*", re.sub(r"/\*.*?\*/", "", "\n".join(loss_body))))
        split = 0
        for index, line in enumerate(body):
            if line.startswith("/* ") and line[3:].split(" = ")[0] in read:
                split = index + 1
                while split < len(body) and not body[split].startswith("/* "):  # to the end of that line's group
                    split += 1
        return body[:split], body[split:]

    def share_slots(self, body: list[str], loss_body: list[str], after_loss: list[str]) -> None:
        """Give each tile buffer a slot of the work area, one slot to buffers whose lives do not overlap.

        A buffer lives from the first to the last line of the program (or the tile's copy in or out) that
        names it, and each tile computes its own, so a buffer whose last reader comes before another's first
        writer can lend it its memory: 1024-1024-1024 tanh: z2 and δ2 in z1's slot, δ1 in a2's (7 rows of 1024 a
        sample down to 4); 784-256-10: δ1 in a1's. Lines are grouped by the program's line they lower (the
        ``/* target = … */`` comment starting each), so a buffer never shares with one of the same line."""
        groups: list[set[str]] = [{"tile_y", "tile_x"}]
        for lines in (body, loss_body, after_loss):
            for line in lines:
                if line.startswith("/* ") or len(groups) == 1:
                    groups.append(set())
                groups[-1] |= set(re.findall(r"[A-Za-z_]\w*", re.sub(r"/\*.*?\*/", "", line)))
        groups.append({self.places[s].name for s in self.program.gradients.values() if self.places[s].kind == "tile"})
        names = {name for name, _ in self.tile_buffers}
        lives = {name: [i for i, group in enumerate(groups) if name in group] or [0] for name in names}
        slots: list[list] = []  # name, width, the last group of its latest buffer
        for name, width in sorted(self.tile_buffers, key=lambda buffer: lives[buffer[0]][0]):
            first, last = lives[name][0], lives[name][-1]
            free = [slot for slot in slots if slot[2] < first]
            if free:  # the closest in width, a wider one first: the fewest reals added
                slot = min(free, key=lambda slot: (slot[1] < width, abs(slot[1] - width)))
                slot[1], slot[2] = max(slot[1], width), last
                self.sharing[name] = slot[0]
            else:
                slots.append([name, width, last])
        self.slots = [(name, width) for name, width, _ in slots]

    def work_lengths(self) -> list[tuple[str, str]]:
        """The work area's buffers, as (name, C length in reals): the tile buffers' slots, then the transposed
        weights."""
        lengths = [(slot, f"T_max*{width}") for slot, width in self.slots]
        weights = {place.name: place for place in self.places.values() if place.kind == "weights"}
        lengths += [(f"{name}_T", str(weights[name].rows * weights[name].cols)) for name in self.transposed]
        return lengths

    def allocation(self, work_name: str, lengths: list[tuple[str, str]]) -> list[str]:
        """The work area (the caller's, else allocated), one block of double totals (zeroed), every buffer a
        pointer into them (the GEMM's packing space after the last); then Wᵀ copied for each narrow forward
        product."""
        real = self.printer.type_name
        lines = [
            f"{real} *const work = given_work != NULL",
            f"    ? given_work : malloc(sizeof({real})*{work_name}(T_max, blas == NULL));",
            f"double *const totals = calloc({max(1, sum(width for _, width in self.totals))}, sizeof(double));",
            "if (work == NULL || totals == NULL) {",
            "    if (given_work == NULL) free(work);",
            "    free(totals);",
            "    return 1;",
            "}",
        ]
        position = "work"
        for buffer, length in lengths:
            lines.append(f"{real} *const {buffer} = {position};")
            position = f"{buffer} + _align({length})"
        if self.gemms:
            lines.append(f"{real} *const pack = {position};")
        for buffer, slot in self.sharing.items():
            lines.append(f"{real} *const {buffer} = {slot};  /* {slot}'s slot: its last reader comes first */")
        weights = {place.name: place for place in self.places.values() if place.kind == "weights"}
        offset = 0
        for total, width in self.totals:
            lines.append(f"double *const {total} = totals + {offset};")
            offset += width
        for name in self.transposed:  # Wᵀ, so that the forward product reads along its rows
            rows, cols = weights[name].rows, weights[name].cols
            lines += [
                f"for (int64_t i = 0; i < {rows}; ++i)",
                f"    for (int64_t j = 0; j < {cols}; ++j) {name}_T[j*{rows} + i] = {name}[i*{cols} + j];",
            ]
        return lines

    def tile_loop(self, body: list[str], loss_body: list[str], after_loss: list[str]) -> list[str]:
        """The loop over tiles of T samples: x and y copied in with samples as rows, the program's lines, the
        loss's when asked, and ∂L/∂x copied out in x's layout (one column per sample)."""
        x, y = (self.places[symbol] for symbol in self.program.inputs[:2])
        lines = [
            "for (int64_t start = 0; start < B; start += T_max) {",
            "    const int64_t T = B - start < T_max ? B - start : T_max;",
            "    /* x and y, read along their rows of B samples, into tiles with the samples as rows */",
        ]
        # Sample by sample (writing the tile in order, reading the rows as parallel streams): unit by unit,
        # each store strides a whole sample's row and the copy took a quarter of the kernel (16-16-16-16
        # sigmoid, B=1e5: 9.3 -> 7.8 ms, benchmarks/c_backend.py's case)
        for place, pointer in ((x, "x"), (y, "y")) if self.x_tile else ((y, "y"),):
            copy = f"{place.name}[t*{place.width} + i] = {pointer}[i*B + start + t];"
            lines += [
                "    for (int64_t t = 0; t < T; ++t)",
                f"        for (int64_t i = 0; i < {place.width}; ++i) {copy}",
            ]
        lines += [f"    {line}" for line in body]
        lines += ["    if (out_loss != NULL) {", *(f"        {line}" for line in loss_body), "    }"]
        lines += [f"    {line}" for line in after_loss]
        for gradient, symbol in self.program.gradients.items():
            place = self.places[symbol]
            if place.kind == "tile":
                copy = f"out_{gradient}[i*B + start + t] = {place.name}[t*{place.width} + i];"
                lines += [
                    f"    for (int64_t i = 0; i < {place.width}; ++i)",
                    f"        for (int64_t t = 0; t < T; ++t) {copy}",
                ]
        return [*lines, "}"]


PRELUDE = f"""\
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(CHAINRULE_MVEC) && defined(__GLIBC__)
/* glibc's vector math library (libmvec, linked with -lmvec): e^x and log x a whole vector register at a
   time, within 4 ulp, where the compiler vectorises a loop calling them (what glibc's own math.h declares
   under -ffast-math, which the kernel is not built with: it would drop IEEE infinities and reorder sums) */
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) double log(double);
__attribute__((simd("notinbranch"))) float logf(float);
#if __GLIBC_PREREQ(2, 35)
/* and, from glibc 2.35, tanh: a 1024-1024-1024 tanh layer's 2.6e5 values a tile took 2.4 ms as libm's calls,
   0.4 ms as libmvec's (B=256: 43 -> 34 ms) */
__attribute__((simd("notinbranch"))) double tanh(double);
__attribute__((simd("notinbranch"))) float tanhf(float);
#endif
#endif

/* e^x in float, inline, for every libc: Cephes' expf (S. L. Moshier; public domain), x = n ln2 + r with
   |r| <= ln2/2 and e^r a degree-7 polynomial, within 1.4 ulp of e^x for every normal result (1 ulp for
   libm's expf here). Written out because libm's expf is a call in every loop: glibc's vector one (libmvec)
   took 0.51 ns an element of the sigmoid loop, this one 0.39 (16-16-16-16 sigmoid B=1e5: 7.9 -> 7.4 ms),
   and elsewhere the loop is not vectorised at all. n is rounded by adding and subtracting 1.5 * 2^23 (a
   float has no bits below 1 there; floorf would keep the loop scalar: it may not raise "inexact"); 2^n is
   two factors, each a normal float, so that e^x overflows to inf past 88.72, goes through the subnormals
   below -87.34 and reaches 0 below -103.97 as libm's does; NaN is clamped too (a NaN converted to int would be
   undefined behaviour) and given back at the end. */
static inline float chainrule_expf(float x) {{
    const float clamped = x > 89.0F ? 89.0F : (x >= -104.0F ? x : -104.0F);
    const float n = (clamped*1.44269504088896341F + 12582912.0F) - 12582912.0F;
    const float r = (clamped - n*0.693359375F) + n*2.12194440e-4F;  /* ln 2 in two parts: n*0.693359375 is exact */
    float p = 1.9875691500e-4F;
    p = p*r + 1.3981999507e-3F;
    p = p*r + 8.3334519073e-3F;
    p = p*r + 4.1665795894e-2F;
    p = p*r + 1.6666665459e-1F;
    p = p*r + 5.0000001201e-1F;
    p = p*r*r + r + 1.0F;
    const int32_t k = (int32_t)n, half = k >> 1;
    const int32_t high = (half + 127) << 23, low = (k - half + 127) << 23;  /* the bits of 2^half, 2^(k - half) */
    float scale_high, scale_low;
    memcpy(&scale_high, &high, sizeof scale_high);
    memcpy(&scale_low, &low, sizeof scale_low);
    return x == x ? p*scale_high*scale_low : x;
}}

/* a buffer's length rounded up to whole cache lines, so that every buffer starts on one */
static inline int64_t _align(int64_t n) {{ return (n + {ALIGN - 1}) / {ALIGN} * {ALIGN}; }}
"""


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def write_kernel(network: Network, program: MatrixProgram) -> Kernel:
    """The C source of ``program`` (``derive(network).matrix_program``), one function per floating type."""
    functions, names, works, per_sample, wide = [], {}, {}, 0, False
    gemms = []
    for dtype, suffix in SUFFIXES.items():
        writer = _Writer(network, program, KernelPrinter(dtype))
        names[dtype], works[dtype] = f"chainrule_gradients_{suffix}", f"chainrule_work_{suffix}"
        functions.append(writer.write(names[dtype], works[dtype]))
        per_sample, wide = writer.reals_per_sample, writer.gemms > 0
        gemms.append(_gemm.source(writer.printer.type_name, suffix) if wide else "")
    header = f"/* chainrule: the gradients of {network.describe()}, from derive(network).matrix_program */\n"
    prelude = PRELUDE + (_gemm.PRELUDE + "".join(gemms) if wide else "")
    source = header + prelude + "\n" + "\n\n".join(functions) + "\n"
    outputs: dict[str, tuple[int, int | None]] = {}
    for gradient in program.gradients:
        outputs[gradient] = (network.sizes[0], None) if gradient == "x" else network.parameter_shapes[gradient]
    inputs = tuple(symbol.name for symbol in program.inputs)
    return Kernel(source, names, inputs, outputs, per_sample, works, wide)
