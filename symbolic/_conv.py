"""Convolution (Conv1d, Conv2d) in index form: its backward taken by ``sympy.diff`` and proved equal to the
form a textbook writes; and the machinery the facts of ``_pool.py`` (pooling, residual, dropout, flatten)
share: ``LayerFact``, ``summed``, ``Indicator``, ``WindowMax``.

Indices are 0-based, as torch's are, and the convolution is torch's cross-correlation. The input x (C
channels, length L) is zero-padded by P on each side into x̃, and with the kernel W (O × C × K), stride s and
T = ⌊(L + 2P − K)/s⌋ + 1 outputs per channel,

    y[o,t] = b[o] + Σ_c Σ_k W[o,c,k] x̃[c, s t + k],      x̃[c,u] = Σ_v x[c,v] δ(u, v + P)

(the padding is itself a Kronecker-delta sum: x̃[c,u] is x[c, u − P] where that exists and 0 elsewhere).
Conv2d is the same along two axes (k₁, k₂, t₁, t₂, with their own stride and padding). With g[o,t] = ∂L/∂y[o,t]
upstream, a textbook writes the backward as

    ∂L/∂x[c,i]   = Σ_o Σ_k ĝ[o, i + P + k] W[o, c, K − 1 − k],   ĝ[o,u] = Σ_t g[o,t] δ(u, s t + K − 1)
    ∂L/∂W[o,c,k] = Σ_t g[o,t] x̃[c, s t + k]
    ∂L/∂b[o]     = Σ_t g[o,t]

ĝ is g dilated by the stride (s − 1 zeros between its entries) and padded by K − 1: the input gradient is the
correlation of that with the FLIPPED kernel, i.e. the transposed convolution; the weight gradient is the
correlation of the padded input with g.

Each fact is asked of SymPy as ``diff`` of L = Σ_o Σ_t g[o,t] y[o,t] by one entry, at symbolic sizes, channel
counts, stride and padding. ``diff`` leaves sums of products of KroneckerDeltas, and ``summed`` does them:
each sum over an index that a delta fixes (with coefficient ±1: s t + k = u fixes k, not t) is replaced by
that value, the index's range kept as a condition 𝟙[...]; the conditions are written as e ≥ 0 with e
expanded, so two forms that sum to the same terms under the same conditions are the same expression. (SymPy's
own ``deltasummation`` gives a Piecewise per sum whose conditions are written differently for equal ranges,
and ``Sum.doit`` does not finish these nested sums; hence ``summed``.) ``LayerFact.proves`` shows the textbook
form equal to diff's at the symbolic sizes, and ``LayerFact.proves_at`` at concrete ones, independently of
``summed``: L written out in one plain symbol per entry, differentiated by each entry, against the textbook
form (and the derived one) written out.

This module is SymPy only; the facts do not depend on the sizes, so they are derived once, when first asked.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import sympy
from sympy import IndexedBase, KroneckerDelta, Sum
from sympy.concrete.expr_with_limits import ExprWithLimits

from ._norm import differentiated, written_out

Point = tuple[tuple[sympy.Symbol, int], ...]  # a concrete size: each size symbol and its number


def index(name: str) -> sympy.Symbol:
    """An index (0-based): every index of these facts is one, so that equal names are equal symbols."""
    return sympy.Symbol(name, integer=True, nonnegative=True)


def size(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


def primed(symbol: sympy.Symbol) -> sympy.Symbol:
    """The bound index the loss sums over where the fact's free index has the same name (diff by x[c,i] must
    not meet a Σ_c: SymPy would take that c for the free one)."""
    return index(f"{symbol.name}'")


# -- the two functions a printed form needs that SymPy lacks ----------------------------------------------


class Indicator(sympy.Function):
    """𝟙[condition]: 1 where it holds, 0 where it does not (SymPy's Piecewise would print as cases)."""

    @classmethod
    def eval(cls, condition):
        if condition is sympy.true:
            return sympy.S.One
        if condition is sympy.false:
            return sympy.S.Zero
        return None

    def _latex(self, printer) -> str:
        return rf"\mathbb{{1}}\left[{printer._print(self.args[0])}\right]"

    def _pythoncode(self, printer) -> str:
        return f"(1 if {printer._print(self.args[0])} else 0)"

    _numpycode = _pythoncode


class WindowMax(ExprWithLimits):
    """max over a window, max_{0 ≤ k ≤ K−1} x[c, s t + k], with the window's offsets as its limits as a Sum
    has them: SymPy's Max takes its arguments one by one, so it cannot stand at a symbolic kernel size.
    ``written_out`` combines the terms at a concrete size with ``combine``."""

    @staticmethod
    def combine(*terms: sympy.Expr) -> sympy.Expr:
        """The terms' Max left unevaluated: SymPy's Max of symbols compares them pairwise, which is slow and
        settles nothing here; the max is taken once numbers are put in (``xreplace`` evaluates it)."""
        return sympy.Max(*terms, evaluate=False)

    def _latex(self, printer) -> str:
        window = r",\ ".join(
            rf"{printer._print(low)} \le {printer._print(v)} \le {printer._print(high)}" for v, low, high in self.limits
        )
        return rf"\max_{{{window}}} {printer._print(self.function)}"

    def _pythoncode(self, printer) -> str:
        loops = " ".join(
            f"for {printer._print(v)} in range({printer._print(low)}, {printer._print(high)} + 1)"
            for v, low, high in reversed(self.limits)
        )
        return f"(builtins.max({printer._print(self.function)} {loops}))"

    _numpycode = _pythoncode


# -- names a printed form uses for what is defined in index form (x̃, ĝ, a window's max) -------------------


@dataclass(frozen=True)
class Name:
    """``base[placeholders]`` stands for ``definition`` (x̃[c,u] = Σ_v x[c,v] δ(u, v + P), ...)."""

    base: IndexedBase
    placeholders: tuple[sympy.Symbol, ...]
    definition: sympy.Expr

    def at(self, indices: tuple[sympy.Expr, ...]) -> sympy.Expr:
        bound = {variable for reduction in _reductions(self.definition) for variable in reduction.variables}
        if any(bound & sympy.sympify(u).free_symbols for u in indices):  # a bound index would be captured
            raise ValueError(f"{self.base}{list(indices)}: an index shares a name with {sorted(bound, key=str)}")
        return self.definition.xreplace(dict(zip(self.placeholders, indices, strict=True)))


def _reductions(expression: sympy.Expr) -> list[ExprWithLimits]:
    return [e for e in sympy.preorder_traversal(expression) if isinstance(e, ExprWithLimits)]


def expanded(expression: sympy.Expr, names: tuple[Name, ...]) -> sympy.Expr:
    """``expression`` with every named entry (x̃[c, s t + k], ĝ[...]) replaced by its definition."""
    table = {name.base: name for name in names}
    return expression.replace(
        lambda e: isinstance(e, sympy.Indexed) and e.base in table, lambda e: table[e.base].at(e.indices)
    )


# -- summing Kronecker deltas (see the module's docstring) -------------------------------------------------


def _flattened(expression: sympy.Expr) -> list[tuple[tuple, sympy.Expr]]:
    """``expression`` as terms (limits, factor): every Sum reached through + and × pulled to the front (the
    limits here never depend on one another, so the sums may be taken in any order)."""
    if isinstance(expression, Sum):
        return [(tuple(expression.limits) + limits, factor) for limits, factor in _flattened(expression.function)]
    if isinstance(expression, sympy.Add):
        return [term for argument in expression.args for term in _flattened(argument)]
    if isinstance(expression, sympy.Mul):
        terms: list[tuple[tuple, sympy.Expr]] = [((), sympy.S.One)]
        for argument in expression.args:
            terms = [(left + right, f * h) for left, f in terms for right, h in _flattened(argument)]
        for limits, _ in terms:
            variables = [variable for variable, *_ in limits]
            if len(set(variables)) != len(variables):
                raise ValueError(f"two sums over the same index multiplied: {expression}")
        return terms
    return [((), expression)]


def _tidy(expression: sympy.Expr) -> sympy.Expr:
    """Indices and delta arguments expanded (K − 1 − (s t + K − 1 − i) is i − s t), so equal ones look equal."""
    expression = expression.replace(
        lambda e: isinstance(e, sympy.Indexed), lambda e: e.base[tuple(sympy.expand(u) for u in e.indices)]
    )
    return expression.replace(
        lambda e: isinstance(e, KroneckerDelta), lambda e: KroneckerDelta(*(sympy.expand(u) for u in e.args))
    )


def _fixed(monomial: sympy.Expr, bounds: Mapping) -> tuple[sympy.Symbol, sympy.Expr] | None:
    """A summed index that a delta in ``monomial`` fixes, and its value; of several, one whose value has the
    fewest other summed indices in it (the same choice for two forms of one sum), then by name."""
    candidates = []
    for delta in monomial.atoms(KroneckerDelta):
        difference = sympy.expand(delta.args[0] - delta.args[1])
        for variable in difference.free_symbols & set(bounds):
            coefficient = difference.coeff(variable)
            rest = sympy.expand(difference - coefficient * variable)
            if coefficient in (1, -1) and not rest.has(variable):
                value = sympy.expand(-rest / coefficient)
                candidates.append((len(value.free_symbols & set(bounds)), str(variable), str(value), variable, value))
    return min(candidates)[3:] if candidates else None


def _known(ranges: Mapping[sympy.Symbol, sympy.Expr]) -> set[sympy.Expr]:
    """What the stated ranges make ≥ 0: each free index u ∈ [0, S − 1] gives u and S − 1 − u, a size S − 1."""
    known = set()
    for variable, extent in ranges.items():
        known |= {variable, sympy.expand(extent - 1 - variable), sympy.expand(extent - 1)}
    return known


def _summed_monomial(monomial: sympy.Expr, bounds: dict, known: set) -> sympy.Expr:
    conditions: set[sympy.Expr] = set()  # each e here means e ≥ 0
    while (fixed := _fixed(monomial, bounds)) is not None:
        variable, value = fixed
        low, high = bounds.pop(variable)
        monomial = _tidy(monomial.xreplace({variable: value}))
        conditions = {sympy.expand(c.xreplace({variable: value})) for c in conditions}
        conditions |= {sympy.expand(value - low), sympy.expand(high - value)}
    conditions = {c for c in conditions if not (c in known or (c.is_number and c >= 0))}
    if any(c.is_number for c in conditions) or monomial == 0:  # a range no value meets: the term is 0
        return sympy.S.Zero
    free = monomial.free_symbols | set().union(*(c.free_symbols for c in conditions))
    renamed = {}  # the loss's primed indices, left summed, read as the textbook's (o', t' as o, t)
    for variable in bounds:
        plain = index(variable.name.rstrip("'"))
        if plain != variable and plain not in free and plain not in renamed.values():
            renamed[variable] = plain
    coefficient, body = monomial.xreplace(renamed).as_coeff_Mul()
    if conditions:
        body *= Indicator(sympy.And(*(sympy.Ge(c.xreplace(renamed), 0) for c in sorted(conditions, key=str))))
    limits = sorted(((renamed.get(v, v), *bounds[v]) for v in bounds), key=lambda limit: str(limit[0]))
    return coefficient * (Sum(body, *limits) if limits else body)


def summed(expression: sympy.Expr, ranges: Mapping[sympy.Symbol, sympy.Expr]) -> sympy.Expr:
    """``expression`` (sums of products of Kronecker deltas) with every sum over an index a delta fixes done,
    each such index's range kept as a condition: one Sum with its 𝟙[conditions] per term, in a form two
    ways of writing the same sum share. ``ranges``: each free index and its size (0 ≤ index ≤ size − 1)."""
    known = _known(ranges)
    total = sympy.S.Zero
    for limits, factor in _flattened(_tidy(expression)):
        for monomial in sympy.Add.make_args(sympy.expand(factor)):
            total += _summed_monomial(monomial, {v: (low, high) for v, low, high in limits}, known)
    return total


# -- the facts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerFact:
    """One derivative of a layer: its forward (as a page prints it), what is asked (``definition``: ∂L/∂wrt
    of L = Σ g·y, everything in index form), diff's result summed (``derived``; None where SymPy cannot sum
    at a symbolic size) and the textbook form. ``names`` define the IndexedBases the printed forms use (x̃,
    ĝ, a pooling's y). ``ranges``: each free index of ``wrt`` and its size. ``sizes``: the concrete sizes it
    is proved at (never only one). ``draws``: for a fact that holds only where the values are distinct (a
    max), how many draws of distinct values each concrete size is proved at (0: at every value)."""

    name: str
    forward: sympy.Eq
    loss: sympy.Expr
    wrt: sympy.Indexed
    textbook: sympy.Expr
    derived: sympy.Expr | None
    names: tuple[Name, ...]
    ranges: tuple[tuple[sympy.Symbol, sympy.Expr], ...]
    sizes: tuple[Point, ...]
    draws: int = 0

    @property
    def layer(self) -> str:
        return self.name.split(".")[0]

    @property
    def definition(self) -> sympy.Derivative:
        return sympy.Derivative(self.loss, self.wrt)

    def proves(self) -> bool:
        """SymPy shows the textbook form equal to diff's at symbolic sizes (both ``summed``); a fact SymPy
        cannot sum symbolically (``derived`` None) is proved at each of its concrete ``sizes`` instead."""
        if self.derived is None:
            return all(self.proves_at(point) for point in self.sizes)
        ranges = dict(self.ranges)
        textbook = summed(expanded(self.textbook, self.names), ranges)
        return sympy.expand(textbook - self.derived) == 0

    def entries(self, point: Point) -> Iterator[dict[sympy.Symbol, int]]:
        """Every value of the free indices at ``point``."""
        at = dict(point)
        extents = [range(int(extent.xreplace(at))) for _, extent in self.ranges]
        for values in itertools.product(*extents):
            yield dict(zip((variable for variable, _ in self.ranges), values, strict=True))

    def proves_at(self, point: Point) -> bool:
        """At a concrete size: L written out in plain symbols and differentiated by each entry (``diff``)
        equals the textbook form (and the derived one) written out, at every entry; for a fact with
        ``draws``, at that many draws of distinct values of the input (the gradient stays symbolic in g)."""
        at = dict(point)
        loss = written_out(self.loss, at)
        forms = [expanded(self.textbook, self.names)] + ([] if self.derived is None else [self.derived])
        draws = [self._distinct_values(point, seed) for seed in range(self.draws)] or [{}]
        for indices in self.entries(point):
            here = {**at, **indices}
            truth = sympy.diff(loss, written_out(self.wrt, here))
            for form in forms:
                difference = written_out(form, here) - truth
                if any(sympy.expand(difference.xreplace(values)) != 0 for values in draws):
                    return False
        return True

    def _distinct_values(self, point: Point, seed: int) -> dict[sympy.Symbol, sympy.Integer]:
        """Distinct integers, in a seeded random order, for every entry of the input at ``point``."""
        symbols = [written_out(self.wrt, {**dict(point), **indices}) for indices in self.entries(point)]
        values = random.Random(seed).sample(range(-10 * len(symbols), 10 * len(symbols)), len(symbols))
        return dict(zip(symbols, map(sympy.Integer, values), strict=True))

    def evaluator(self, form: str = "textbook", functions: Mapping | None = None) -> Callable:
        """The ``form`` ("textbook", "derived" or "forward", the right side of y's definition) as a Python
        function: see ``lambdified``."""
        expression = {"textbook": self.textbook, "derived": self.derived, "forward": self.forward.rhs}[form]
        return lambdified(expanded(expression, self.names), functions)


def lambdified(expression: sympy.Expr, functions: Mapping | None = None) -> Callable:
    """``expression`` in index form as a Python function (``lambdify``; its sums, Kronecker deltas and window
    maxima as loops and conditionals), called with keyword arguments: each IndexedBase's name an array, each
    size, index or parameter a number. ``functions`` gives each undefined function (σ) a SymPy one (tanh)."""
    for function, value in (functions or {}).items():
        expression = expression.replace(function, value)
    expression = differentiated(expression).replace(_guarded_by_indicator, _guarded)
    bases = sorted(expression.atoms(IndexedBase), key=str)
    labels = {base.label for base in bases}  # an Indexed's free symbols hold its base's label too
    scalars = sorted((s for s in expression.free_symbols if type(s) is sympy.Symbol and s not in labels), key=str)
    evaluate = sympy.lambdify([*bases, *scalars], expression, modules="math")
    names = [str(argument) for argument in (*bases, *scalars)]
    return lambda **values: evaluate(*(values[name] for name in names))


def _guarded_by_indicator(expression: sympy.Expr) -> bool:
    return isinstance(expression, sympy.Mul) and any(isinstance(factor, Indicator) for factor in expression.args)


def _guarded(product: sympy.Mul) -> sympy.Piecewise:
    """𝟙[c] · rest as (rest if c else 0): the rest is not evaluated where c fails, where its indices (W[o, c,
    i + P − s t]) can lie outside the arrays."""
    conditions = [factor.args[0] for factor in product.args if isinstance(factor, Indicator)]
    rest = [factor for factor in product.args if not isinstance(factor, Indicator)]
    return sympy.Piecewise((sympy.Mul(*rest), sympy.And(*conditions)), (0, True))


def make_fact(name, forward, loss, wrt, textbook, names, ranges, sizes, symbolic=True, draws=0) -> LayerFact:
    """A fact with diff's result summed at the symbolic sizes (``symbolic``) or left to the concrete ones."""
    derived = summed(differentiated(sympy.Derivative(loss, wrt)), dict(ranges)) if symbolic else None
    return LayerFact(name, forward, loss, wrt, textbook, derived, names, tuple(ranges), tuple(sizes), draws)


# -- the axes of a convolution or a pooling ----------------------------------------------------------------


@dataclass(frozen=True)
class Axis:
    """One spatial axis: its sizes (input length L, kernel K, outputs T, stride s, padding P) and indices
    (an input position i, an output t, a kernel offset k, x̃'s bound position v, a placeholder u)."""

    length: sympy.Symbol
    kernel: sympy.Symbol
    outputs: sympy.Symbol
    stride: sympy.Symbol
    padding: sympy.Symbol
    position: sympy.Symbol
    output: sympy.Symbol
    offset: sympy.Symbol
    source: sympy.Symbol
    placeholder: sympy.Symbol


def axes(count: int) -> tuple[Axis, ...]:
    """One axis (L, K, T, s, P, i, t, k, v, u) or two (the same with subscripts 1 and 2)."""
    suffixes = [""] if count == 1 else [f"_{a}" for a in range(1, count + 1)]
    return tuple(
        Axis(
            *(size(f"{name}{suffix}") for name in ("L", "K", "T", "s", "P")),
            *(index(f"{name}{suffix}") for name in ("i", "t", "k", "v", "u")),
        )
        for suffix in suffixes
    )


def outputs(length: int, kernel: int, stride: int, padding: int = 0) -> int:
    """T = ⌊(L + 2P − K)/s⌋ + 1, torch's output length (no dilation, floor mode)."""
    return (length + 2 * padding - kernel) // stride + 1


def point(along: tuple[Axis, ...], shapes: tuple[tuple[int, int, int, int], ...], **others: int) -> Point:
    """A concrete size: per axis (L, K, s, P), T computed; ``others`` the channel counts (C=…, O=…)."""
    values: dict[sympy.Symbol, int] = {size(name): value for name, value in others.items()}
    for axis, (length, kernel, stride, padding) in zip(along, shapes, strict=True):
        values |= {axis.length: length, axis.kernel: kernel, axis.stride: stride, axis.padding: padding}
        values[axis.outputs] = outputs(length, kernel, stride, padding)
    return tuple(values.items())


def limits(variables, extents) -> tuple[tuple[sympy.Symbol, int, sympy.Expr], ...]:
    return tuple((variable, 0, extent - 1) for variable, extent in zip(variables, extents, strict=True))


def product(factors) -> sympy.Expr:
    return sympy.Mul(*factors)


def padded_input(along: tuple[Axis, ...], x: IndexedBase, channel: sympy.Symbol, padded: IndexedBase) -> Name:
    """x̃[c,u] = Σ_v x[c,v] δ(u, v + P) per axis: x zero-padded by P on each side."""
    sources = [axis.source for axis in along]
    deltas = product(KroneckerDelta(axis.placeholder, axis.source + axis.padding) for axis in along)
    definition = Sum(x[(channel, *sources)] * deltas, *limits(sources, [axis.length for axis in along]))
    return Name(padded, (channel, *(axis.placeholder for axis in along)), definition)


# -- convolution -------------------------------------------------------------------------------------------

C_in, C_out = size("C"), size("O")  # input and output channels, printed C and O
c, o = index("c"), index("o")
x, W, b, g = IndexedBase("x"), IndexedBase("W"), IndexedBase("b"), IndexedBase("g")
x_padded = IndexedBase("xtilde")  # printed x̃
g_spread = IndexedBase("ghat")  # printed ĝ: g dilated by the stride and padded by K − 1

CONV_SIZES = {  # (C, O, per axis (L, K, s, P)): stride 2 and padding 1 among them, never only one size
    1: ((2, 2, ((5, 3, 1, 0),)), (1, 2, ((6, 3, 2, 1),)), (2, 1, ((7, 2, 2, 1),)), (1, 1, ((4, 4, 1, 2),))),
    2: ((1, 2, ((4, 3, 2, 1), (4, 3, 2, 1))), (2, 1, ((3, 2, 1, 0), (4, 3, 2, 1))), (1, 1, ((5, 2, 2, 0),) * 2)),
}


def convolution(along: tuple[Axis, ...], out: sympy.Symbol, channel: sympy.Symbol, ts, ks) -> sympy.Expr:
    """y[out, ts] = b[out] + Σ_channel Σ_ks W[out, channel, ks] x̃[channel, s t + k] (x̃ by its name)."""
    taps = x_padded[(channel, *(axis.stride * t + k for axis, t, k in zip(along, ts, ks, strict=True)))]
    kernel = limits(ks, [axis.kernel for axis in along])
    return b[out] + Sum(W[(out, channel, *ks)] * taps, (channel, 0, C_in - 1), *kernel)


def conv_facts_for(dimensions: int, textbook_kernel: Callable | None = None, stride_of=None) -> list[LayerFact]:
    """Conv1d or Conv2d's three facts. ``textbook_kernel`` (the kernel's index in the input gradient, flipped
    by default) and ``stride_of`` (the stride ĝ dilates by) are there to plant mistakes."""
    along = axes(dimensions)
    layer = f"Conv{dimensions}d"
    ts, ks, positions = ([getattr(axis, f) for axis in along] for f in ("output", "offset", "position"))
    padding = padded_input(along, x, c, x_padded)
    spread_stride = stride_of or (lambda axis: axis.stride)
    spread = Name(
        g_spread,
        (o, *(axis.placeholder for axis in along)),
        Sum(
            g[(o, *ts)]
            * product(
                KroneckerDelta(axis.placeholder, spread_stride(axis) * axis.output + axis.kernel - 1) for axis in along
            ),
            *limits(ts, [axis.outputs for axis in along]),
        ),
    )
    names = (padding, spread)
    flip = textbook_kernel or (lambda axis: axis.kernel - 1 - axis.offset)
    outputs_ = limits(ts, [axis.outputs for axis in along])

    forward = sympy.Eq(sympy.Indexed(IndexedBase("y"), o, *ts), convolution(along, o, c, ts, ks))
    o_, c_, ts_, ks_ = primed(o), primed(c), [primed(t) for t in ts], [primed(k) for k in ks]
    loss = Sum(
        g[(o_, *ts_)] * expanded(convolution(along, o_, c_, ts_, ks_), names),
        (o_, 0, C_out - 1),
        *limits(ts_, [axis.outputs for axis in along]),
    )
    sizes = [point(along, shapes, C=channels, O=outs) for channels, outs, shapes in CONV_SIZES[dimensions]]
    input_gradient = Sum(
        g_spread[(o, *(axis.position + axis.padding + axis.offset for axis in along))]
        * W[(o, c, *(flip(axis) for axis in along))],
        (o, 0, C_out - 1),
        *limits(ks, [axis.kernel for axis in along]),
    )
    weight_gradient = Sum(
        g[(o, *ts)] * x_padded[(c, *(axis.stride * t + k for axis, t, k in zip(along, ts, ks, strict=True)))],
        *outputs_,
    )
    asked = (
        (
            "input_gradient",
            x[(c, *positions)],
            input_gradient,
            [(c, C_in), *((p, a.length) for p, a in zip(positions, along))],
        ),
        (
            "weight_gradient",
            W[(o, c, *ks)],
            weight_gradient,
            [(o, C_out), (c, C_in), *((k, a.kernel) for k, a in zip(ks, along))],
        ),
        ("bias_gradient", b[o], Sum(g[(o, *ts)], *outputs_), [(o, C_out)]),
    )
    return [
        make_fact(f"{layer}.{key}", forward, loss, wrt, textbook, names, ranges, sizes)
        for key, wrt, textbook, ranges in asked
    ]


@functools.cache
def conv_facts() -> dict[str, LayerFact]:
    """Conv1d's and Conv2d's facts (input, weight, bias gradients), keyed ``Layer.fact``, derived once."""
    return {fact.name: fact for dimensions in (1, 2) for fact in conv_facts_for(dimensions)}
