"""The derivatives that couple units, taken by ``sympy.diff`` in index form with symbolic widths.

z_i = Σ_j W_ij a_j + b_i is written with ``IndexedBase`` and ``Sum`` over symbolic sizes n (units of the
layer) and m (units of the layer below), and ``sympy.diff`` does the rest: ∂z_i/∂a_k = W_ik, ∂L/∂W_pq =
Σ_i δ_i ∂z_i/∂W_pq = δ_p a_q, ∂L/∂b_p = δ_p, the δ recursion δ_k = Σ_i δ'_i W_ik f'(z_k). So are the
softmax a_k = e^{z_k} / Σ_j e^{z_j} and the functions of a whole output layer: softmax's ∂a_k/∂z_i =
a_k (𝟙[k = i] − a_i) and its product with an upstream g (what the compiled code computes), ∂/∂z_i of
logsumexp(z) = log Σ_j e^{z_j} (a_i) and of cross-entropy on the logits, Σ_k y_k (logsumexp(z) − z_k)
(a_i Σ_k y_k − y_i). ``diff`` leaves ``KroneckerDelta`` inside a ``Sum``, whose ``doit`` leaves a Piecewise
on k ≤ m that the stated index range removes; e^{z_k}/Σ_j e^{z_j} is then renamed a_k (``definitions``
says so, and ``IndexFact.derives`` undoes the renaming to prove it).

Each result names its matrix form (Wᵀδ' ⊙ f'(z), δ aᵀ, δ𝟏, ...), typed in because it is what the page shows;
``IndexFact.proves`` shows SymPy the two equal at symbolic sizes (the matrix form's entry, a ``Sum`` over a
symbolic range, against the index form) and ``IndexFact.check`` evaluates both at concrete sizes on random
numbers. The derivation reads the index forms themselves: ``entry_function`` (an entry of the element-wise
gradients δ_p a_q and δ_p), ``as_program`` (the matrix program's softmax step and cross-entropy gradient)
and ``at_unit`` (the per-unit cross-entropy gradient).

SymPy's ``MatrixSymbol`` calculus cannot do this directly (SymPy 1.14 raises "diagonalizing indices of
different dimensions" on σ(W₂ σ(W₁ x))), hence the index form. None of it depends on the widths, so it is
derived once, whatever the network.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sympy
from sympy import IndexedBase, KroneckerDelta, MatrixSymbol, Sum, symbols
from sympy.simplify.simplify import factor_sum

# the symbolic sizes and indices every fact is written in (1-based, as the derivation is)
n, m, batch = symbols("n m B", integer=True, positive=True)  # units of layer l, of layer l−1, samples
i, j, k, p, q, s = symbols("i j k p q s", integer=True, positive=True)
W = IndexedBase("W")
b = IndexedBase("b")
a = IndexedBase("a")  # the layer's input a^(l−1); for softmax and the losses on it, the softmax's output
z = IndexedBase("z")
y = IndexedBase("y")  # the target
g = IndexedBase("g")  # the upstream derivative ∂L/∂a of a softmax layer
delta = IndexedBase("delta")  # δ of this layer
delta_next = IndexedBase("delta_next")  # δ of the layer above (l + 1)
W_next = IndexedBase("W_next")  # W of the layer above
f = sympy.Function("f")  # the layer's activation, any element-wise one
RANGES = {j: m, k: m, i: n, p: n, q: m}  # each index's stated upper end (the lower one is 1)
_FPRIME = IndexedBase("fprime_z")  # f'(z_k) as an indexed value, so the check can give it numbers

# softmax over a layer of symbolic width n: the Σ_j e^{z_j} every coupled fact shares
EXP_SUM = Sum(sympy.exp(z[j]), (j, 1, n))


def softmax_definition(index: sympy.Expr) -> sympy.Expr:
    """a_index = e^{z_index} / Σ_j e^{z_j}: the definition each renamed a stands for."""
    return sympy.exp(z[index]) / EXP_SUM


def _within_ranges(expression: sympy.Expr) -> sympy.Expr:
    """Drop the Piecewise conditions ``index ≤ size`` that the stated index ranges make true."""
    stated = {}
    for index, size in RANGES.items():
        stated[sympy.Le(index, size)] = sympy.true
        stated[sympy.Ge(size, index)] = sympy.true
    return expression.xreplace(stated)


def _taken(asked: sympy.Expr) -> sympy.Expr:
    """What SymPy gives for ``asked`` (derivatives and sums done), within the stated index ranges."""
    return _within_ranges(asked.doit().doit())


def z_entry(weight=W, inputs=a, bias=b, row=i, width=m) -> sympy.Expr:
    """z_i = Σ_j W_ij a_j + b_i, an unevaluated sum over the symbolic width."""
    return Sum(weight[row, j] * inputs[j], (j, 1, width)) + bias[row]


@dataclass(frozen=True)
class IndexFact:
    """One derivative SymPy took in index form, and the matrix form it names.

    ``derivative`` is the unevaluated derivative (what was asked), ``index_form`` SymPy's result after
    ``doit`` and the stated index ranges, with each ``definitions`` entry (base ↦ index ↦ its definition:
    softmax's a_k = e^{z_k}/Σ_j e^{z_j}) renamed to its base; ``matrix_form`` a matrix expression in
    MatrixSymbols of symbolic shape whose entry (``entry``, 1-based) the index form is. ``derives`` proves
    the index form is what diff gives, ``proves`` that it is the matrix form's entry (both at symbolic sizes),
    ``check`` evaluates the pair on numbers at concrete sizes.
    """

    name: str
    derivative: sympy.Expr
    # SymPy's result, taken when first read: the matrix program reads only ``matrix_form`` (proved equal in
    # the tests), so ``chainrule derive`` pays for the index forms its page shows, not for all of them
    taking: Callable[[], sympy.Expr] = field(repr=False, compare=False)
    matrix_form: sympy.Expr
    entry: tuple[sympy.Symbol, sympy.Symbol | int]  # (row, column) of matrix_form that index_form is
    values: dict  # IndexedBase -> MatrixSymbol (as (matrix, transposed?)) for ``check``
    definitions: dict = field(default_factory=dict)  # IndexedBase -> (index -> the definition renamed to it)

    @functools.cached_property
    def index_form(self) -> sympy.Expr:
        return self.taking()

    def check(self, sizes: tuple[int, int] = (3, 2), seed: int = 0) -> bool:
        """index_form == matrix_form[entry] at every entry, on random rationals, for n, m = ``sizes``."""
        generator = random.Random(seed)
        concrete = {n: sizes[0], m: sizes[1], batch: 2}
        numbers: dict[sympy.Symbol, sympy.Matrix] = {}
        for matrix in self.matrix_form.free_symbols:
            if isinstance(matrix, MatrixSymbol):
                rows, cols = (int(sympy.sympify(d).subs(concrete)) for d in matrix.shape)
                numbers[matrix] = sympy.ImmutableMatrix(
                    rows, cols, lambda *_: sympy.Rational(generator.randint(-9, 9), generator.randint(1, 5))
                )
        explicit = sympy.Matrix(self.matrix_form.xreplace(numbers).subs(concrete).doit())
        row_symbol, column_symbol = self.entry
        for r in range(explicit.rows):
            for c in range(explicit.cols):
                point = {row_symbol: r + 1}
                if isinstance(column_symbol, sympy.Symbol):
                    point[column_symbol] = c + 1
                value = self.index_form.subs(concrete).subs(point).doit()
                value = value.replace(
                    lambda e: isinstance(e, sympy.Indexed) and e.base in self.values,
                    lambda e: _indexed_value(e, self.values, numbers),
                )
                if sympy.simplify(value - explicit[r, c]) != 0:
                    return False
        return True

    def matrix_entry(self) -> sympy.Expr:
        """The matrix form's entry (row, column) at symbolic indices, written with this fact's IndexedBases
        (1-based; MatrixSymbol entries are 0-based, so each index is shifted by one)."""
        row, column = self.entry
        element = self.matrix_form[row - 1, column - 1 if isinstance(column, sympy.Symbol) else column]
        by_matrix = {matrix: (base, transposed) for base, (matrix, transposed) in self.values.items()}

        def indexed(e: sympy.matrices.expressions.matexpr.MatrixElement) -> sympy.Expr:
            base, transposed = by_matrix[e.parent]
            r, c = (index + 1 for index in e.indices)
            if transposed:
                r, c = c, r
            return base[r] if e.parent.shape[1] == 1 else base[r, c]

        return element.replace(lambda e: isinstance(e, sympy.matrices.expressions.matexpr.MatrixElement), indexed)

    def proves(self) -> bool:
        """SymPy shows index_form equal to the matrix form's entry at symbolic sizes n, m, B."""
        return same(self.index_form, self.matrix_entry())

    def derives(self) -> bool:
        """SymPy shows index_form, its renamed symbols put back to their definitions, equal to what ``diff``
        gives for ``derivative`` (so a wrong sign or index in the index form, or a wrong renaming, fails)."""
        restored = self.index_form.replace(
            lambda e: isinstance(e, sympy.Indexed) and e.base in self.definitions,
            lambda e: self.definitions[e.base](*e.indices),
        )
        return same(restored, _taken(self.derivative))


def _indexed_value(entry: sympy.Indexed, values: dict, numbers: dict) -> sympy.Expr:
    matrix, transposed = values[entry.base]
    indices = [int(index) - 1 for index in entry.indices]
    if len(indices) == 1:
        indices.append(0)
    r, c = indices
    return numbers[matrix][c, r] if transposed else numbers[matrix][r, c]


# -- proving two index-form expressions equal at symbolic sizes -----------------------------------------------
# SymPy 1.14's simplify does not see Sum(f(t), (t, 0, n − 1)) and Sum(f(t + 1), (t, 1, n)) as one sum, nor
# KroneckerDelta(i − 1, k − 1) as KroneckerDelta(i, k) (and can raise StopIteration on sums of delta
# products), so both sides are put in one canonical form first: every sum from 1, split over its terms, each
# with the factors free of its index in front (``factor_sum``), its bound index named by how deep the sums
# inside it go (so one sum reads the same wherever it stands); each delta as 𝟙[d = 0] for one sign of d.
# What is left is a rational function in the same atoms (``cancel``).

_BOUND = tuple(sympy.Dummy(f"t{height}", integer=True, positive=True) for height in range(8))


def _canonical(expression: sympy.Expr, deltas: bool = True) -> sympy.Expr:
    """``expression`` in the canonical form above (``deltas`` False: its KroneckerDeltas as they are)."""
    if isinstance(expression, Sum):
        if len(expression.limits) != 1:
            return _canonical(_nested(expression), deltas)
        ((variable, low, high),) = expression.limits
        fresh = sympy.Dummy("t", integer=True, positive=True)
        body = _canonical(expression.function, deltas).xreplace({variable: fresh + low - 1})
        limits = (fresh, 1, high - low + 1)
        terms = (factor_sum(Sum(term, limits)) for term in sympy.Add.make_args(sympy.expand(body)))
        return sympy.Add(
            *(term.replace(lambda e: isinstance(e, Sum) and e.limits[0][0] == fresh, _named) for term in terms)
        )
    if isinstance(expression, KroneckerDelta) and deltas:
        difference = sympy.expand(expression.args[0] - expression.args[1])
        return KroneckerDelta(-difference if difference.could_extract_minus_sign() else difference, 0)
    if not expression.args or isinstance(expression, sympy.Indexed):
        return expression
    return expression.func(*(_canonical(argument, deltas) for argument in expression.args))


def _named(summed: Sum) -> Sum:
    """``summed`` with its bound index named by the height of the sums inside it (t0 for none)."""
    ((variable, low, high),) = summed.limits
    inside = [_BOUND.index(v) for v in summed.function.atoms(sympy.Dummy) if v in _BOUND]
    bound = _BOUND[max(inside) + 1 if inside else 0]
    return Sum(summed.function.xreplace({variable: bound}), (bound, low, high))


def _nested(expression: Sum) -> Sum:
    """Sum(f, (u, ...), (v, ...)) as Sum(Sum(f, (u, ...)), (v, ...)): one limit per sum."""
    body = expression.function
    for limit in expression.limits:
        body = Sum(body, limit)
    return body


def same(left: sympy.Expr, right: sympy.Expr) -> bool:
    """SymPy shows ``left`` and ``right`` (index-form expressions) equal at symbolic sizes."""
    difference = sympy.expand(_canonical(left) - _canonical(right))
    return difference == 0 or sympy.cancel(difference) == 0


# -- the facts ---------------------------------------------------------------------------------------------


def _renamed_softmax(taken: sympy.Expr) -> sympy.Expr:
    """``taken`` with every e^{z_u}/Σ_j e^{z_j} renamed a_u (the softmax's output), factors in front of sums."""
    total = sympy.Symbol("S", positive=True)
    pulled = _canonical(taken.xreplace({EXP_SUM: total}), deltas=False)
    renamed = sympy.expand(pulled).replace(
        lambda e: isinstance(e, sympy.exp) and isinstance(e.args[0], sympy.Indexed) and e.args[0].base == z,
        lambda e: a[e.args[0].indices[0]] * total,
    )
    renamed = sympy.expand(renamed)
    if renamed.has(total, z):  # a form not written through the softmax's outputs alone
        raise ValueError(f"not a function of the softmax's outputs: {taken}")
    return _bound_as(renamed, k)


def _bound_as(expression: sympy.Expr, index: sympy.Symbol) -> sympy.Expr:
    """Every sum's canonical bound index renamed ``index`` (one level of sums here), for reading."""
    return expression.replace(
        lambda e: isinstance(e, Sum),
        lambda e: Sum(e.function.xreplace({e.limits[0][0]: index}), (index, *e.limits[0][1:])),
    )


DENSE_FACTS = ("dz_da", "dL_dW", "dL_db", "dL_db_batch", "delta")
SOFTMAX_FACTS = ("softmax_jacobian", "softmax_backward", "logsumexp_gradient", "cross_entropy_gradient")


class _Facts(Mapping[str, IndexFact]):
    """The facts by name, each group derived the first time one of its facts is asked for: a network without a
    softmax never pays for the softmax's derivations (a third of ``chainrule derive``'s time for the tutorial)."""

    def __getitem__(self, name: str) -> IndexFact:
        if name in DENSE_FACTS:
            return _dense_facts()[name]
        if name in SOFTMAX_FACTS:
            return _softmax_facts()[name]
        raise KeyError(name)

    def __iter__(self):
        return iter((*DENSE_FACTS, *SOFTMAX_FACTS))

    def __len__(self) -> int:
        return len(DENSE_FACTS) + len(SOFTMAX_FACTS)


_FACTS = _Facts()


def layer_facts() -> Mapping[str, IndexFact]:
    """The index-form facts of a dense layer and of a softmax output, each derived once, when first asked for
    (they do not depend on the widths)."""
    return _FACTS


@functools.cache
def _dense_facts() -> dict[str, IndexFact]:
    facts: dict[str, IndexFact] = {}
    w_matrix, am, deltam = MatrixSymbol("W", n, m), MatrixSymbol("a", m, 1), MatrixSymbol("delta", n, 1)

    # ∂z_i/∂a_k = W_ik: the Jacobian of the layer map is W
    facts["dz_da"] = IndexFact("dz_da", _dz_da_asked(), dz_da, w_matrix, (i, k), {W: (w_matrix, False)})

    # ∂L/∂W_pq = Σ_i δ_i ∂z_i/∂W_pq = δ_p a_q: the gradient is δ aᵀ
    asked = Sum(delta[i] * sympy.Derivative(z_entry(), W[p, q]), (i, 1, n))
    facts["dL_dW"] = IndexFact(
        "dL_dW",
        asked,
        functools.partial(_taken, asked),
        deltam * am.T,
        (p, q),
        {delta: (deltam, False), a: (am, False)},
    )

    # ∂L/∂b_p = Σ_i δ_i ∂z_i/∂b_p = δ_p; over a batch (one column per sample s) it sums: δ𝟏
    delta_batch, ones = MatrixSymbol("delta", n, batch), sympy.OneMatrix(batch, 1)
    asked = Sum(delta[i] * sympy.Derivative(z_entry(), b[p]), (i, 1, n))
    facts["dL_db"] = IndexFact(
        "dL_db", asked, functools.partial(_taken, asked), deltam, (p, 0), {delta: (deltam, False)}
    )
    batch_delta = IndexedBase("delta_batch")
    asked = Sum(batch_delta[p, s] * sympy.Derivative(z_entry(bias=b, row=p), b[p]), (s, 1, batch))
    facts["dL_db_batch"] = IndexFact(
        "dL_db_batch",
        asked,
        functools.partial(lambda asked: asked.doit().doit(), asked),
        delta_batch * ones,
        (p, 0),
        {batch_delta: (delta_batch, False)},
    )

    # the δ recursion: the layer above computes z'_i = Σ_k W'_ik f(z_k) + b'_i, so
    # δ_k = ∂L/∂z_k = Σ_i δ'_i ∂z'_i/∂z_k = Σ_i δ'_i W'_ik f'(z_k) = ((W'ᵀ δ') ⊙ f'(z))_k
    above = Sum(W_next[i, j] * f(z[j]), (j, 1, m)) + IndexedBase("b_next")[i]
    asked = Sum(delta_next[i] * sympy.Derivative(above, z[k]), (i, 1, n))
    fprime = sympy.Derivative(f(z[k]), z[k])
    # at matrix level f'(z) is a column of numbers: a MatrixSymbol named f'(z)
    w_next_matrix, dn, fz = (
        MatrixSymbol("W_next", n, m),
        MatrixSymbol("delta_next", n, 1),
        MatrixSymbol("fprime_z", m, 1),
    )
    facts["delta"] = IndexFact(
        "delta",
        asked,
        functools.partial(lambda asked: _taken(asked).xreplace({fprime: _FPRIME[k]}), asked),
        sympy.HadamardProduct(w_next_matrix.T * dn, fz),
        (k, 0),
        {W_next: (w_next_matrix, False), delta_next: (dn, False), _FPRIME: (fz, False)},
        {_FPRIME: lambda index: sympy.Derivative(f(z[index]), z[index])},
    )

    return facts


@functools.cache
def _softmax_facts() -> dict[str, IndexFact]:
    facts: dict[str, IndexFact] = {}
    # softmax and the losses on it: every a below is the softmax's output, a column of n units
    out, target, upstream = MatrixSymbol("a", n, 1), MatrixSymbol("y", n, 1), MatrixSymbol("g", n, 1)
    softmax_values = {a: (out, False), y: (target, False), g: (upstream, False)}
    renamed = {a: softmax_definition}

    # a_k = e^{z_k} / Σ_j e^{z_j}; ∂a_k/∂z_i, with e^{z_k}/Σ renamed a_k, is a_k (𝟙[k = i] − a_i)
    asked = _softmax_jacobian_asked()
    facts["softmax_jacobian"] = IndexFact(
        "softmax_jacobian",
        asked,
        softmax_jacobian,
        sympy.MatAdd(sympy.DiagMatrix(out), -out * out.T, evaluate=False),
        (k, i),
        {a: (out, False)},
        renamed,
    )

    # the chain rule through it, what the compiled code computes: δ_i = Σ_k g_k ∂a_k/∂z_i = a_i g_i − a_i Σ_k a_k g_k
    asked = Sum(g[k] * sympy.Derivative(softmax_definition(k), z[i]), (k, 1, n))

    def chained() -> sympy.Expr:  # through the Jacobian above: it is written once
        return _bound_as(sympy.expand(_canonical(_taken(Sum(g[k] * softmax_jacobian(), (k, 1, n))), deltas=False)), k)

    facts["softmax_backward"] = IndexFact(
        "softmax_backward",
        asked,
        chained,
        sympy.HadamardProduct(out, upstream) - out * (out.T * upstream),
        (i, 0),
        softmax_values,
        renamed,
    )

    # logsumexp(z) = log Σ_j e^{z_j}: ∂/∂z_i = a_i, the softmax (``_functions.logsumexp.fdiff`` writes it
    # e^{z_i − logsumexp(z)}, which never forms e^{z_i} alone; tests/test_proofs.py proves the two equal)
    asked = sympy.Derivative(sympy.log(EXP_SUM), z[i])
    facts["logsumexp_gradient"] = IndexFact(
        "logsumexp_gradient", asked, functools.partial(_renamed_taken, asked), out, (i, 0), {a: (out, False)}, renamed
    )

    # cross-entropy on the logits, ℓ = −Σ_k y_k log a_k = Σ_k y_k (logsumexp(z) − z_k):
    # ∂ℓ/∂z_i = a_i Σ_k y_k − y_i (a − y for a probability target)
    asked = sympy.Derivative(Sum(y[k] * (sympy.log(EXP_SUM) - z[k]), (k, 1, n)), z[i])
    facts["cross_entropy_gradient"] = IndexFact(
        "cross_entropy_gradient",
        asked,
        functools.partial(_renamed_taken, asked),
        out * (sympy.OneMatrix(1, n) * target) - target,
        (i, 0),
        softmax_values,
        renamed,
    )
    return facts


def _renamed_taken(asked: sympy.Expr) -> sympy.Expr:
    return _renamed_softmax(_taken(asked))


def _dz_da_asked() -> sympy.Expr:
    return sympy.Derivative(z_entry(), a[k])


@functools.cache
def dz_da() -> sympy.Expr:
    """SymPy's ∂z_i/∂a_k in index form: W[i, k]."""
    return _taken(_dz_da_asked())


def _softmax_jacobian_asked() -> sympy.Expr:
    return sympy.Derivative(softmax_definition(k), z[i])


@functools.cache
def softmax_jacobian() -> sympy.Expr:
    """SymPy's ∂a_k/∂z_i for softmax in index form (k, i and the a's as ``Indexed``): a_k (𝟙[k = i] − a_i),
    taken by diff over a symbolic width n and written through a."""
    return sympy.factor(_renamed_softmax(_taken(_softmax_jacobian_asked())))


# -- reading a fact where the derivation needs it ------------------------------------------------------------


def entry_function(
    fact: str, bases: Mapping[IndexedBase, object], product: Callable[..., sympy.Expr] = sympy.Mul
) -> Callable[[int, int], sympy.Expr]:
    """Entry (r, c) (0-based) of the fact's matrix form, built from its index form with ``bases`` standing
    for its IndexedBases (each indexable as ``entries[r, c]`` or ``entries[r]``, 0-based).

    The index form must be a product of indexed entries (δ_p a_q, δ_p): it is read once, and each entry
    costs its factors' look-ups (the derivation builds the gradients of every weight this way).
    """
    form = layer_facts()[fact].index_form
    row, column = layer_facts()[fact].entry
    factors = sympy.Mul.make_args(form)
    if not all(isinstance(e, sympy.Indexed) and e.base in bases for e in factors) or not all(
        index in (row, column) for e in factors for index in e.indices
    ):
        raise NotImplementedError(f"the index form of {fact}, {form}, is not a product of entries at ({row}, {column})")
    plan = [(bases[e.base], tuple(0 if index == row else 1 for index in e.indices)) for e in factors]

    def build(r: int, c: int) -> sympy.Expr:
        at = (r, c)
        looked_up = [
            entries[tuple(at[axis] for axis in axes)] if len(axes) == 2 else entries[at[axes[0]]]
            for entries, axes in plan
        ]
        return looked_up[0] if len(looked_up) == 1 else product(*looked_up)

    return build


def as_program(form: sympy.Expr, bindings: Mapping[IndexedBase, sympy.Expr], unit_sum) -> sympy.Expr:
    """An index-form expression of one unit i of a layer as an expression of the matrix program: each a_i (or
    a_k under Σ_k) is the matrix ``bindings[a]``, applied unit by unit, and Σ_k over the layer's n units is
    ``unit_sum`` (a row that broadcasts back). A sum whose terms read unit i too is refused (ValueError):
    the program's element-wise operations could not say which unit is meant."""
    if isinstance(form, sympy.Indexed):
        if form.base not in bindings or len(form.indices) != 1:
            raise ValueError(f"no matrix of the program stands for {form}")
        return bindings[form.base]
    if isinstance(form, Sum):
        ((_, low, high),) = form.limits
        if (low, high) != (1, n) or form.function.has(i):
            raise ValueError(f"{form} is not a sum over the units of the layer alone")
        return unit_sum(as_program(form.function, bindings, unit_sum))
    if isinstance(form, sympy.Symbol) or isinstance(form, KroneckerDelta):
        raise ValueError(f"{form} has no matrix form in the program")
    if not form.args:
        return form
    return form.func(*(as_program(argument, bindings, unit_sum) for argument in form.args))


def at_unit(
    form: sympy.Expr, bindings: Mapping[IndexedBase, Callable[[int], sympy.Expr]], unit: int, width: int
) -> sympy.Expr:
    """An index-form expression of unit i at ``unit`` (0-based) of a layer ``width`` wide: x_u is
    ``bindings[x](u − 1)`` and Σ_k over the layer's units a sum of ``width`` terms."""

    def at(expression: sympy.Expr, point: dict) -> sympy.Expr:
        if isinstance(expression, sympy.Indexed):
            (index,) = expression.indices
            return bindings[expression.base](point[index] - 1)
        if isinstance(expression, Sum):
            ((variable, low, high),) = expression.limits
            if (low, high) != (1, n):
                raise ValueError(f"{expression} is not a sum over the units of the layer")
            return sympy.Add(*(at(expression.function, {**point, variable: u}) for u in range(1, width + 1)))
        if expression == n:
            return sympy.Integer(width)
        if not expression.args:
            return expression
        return expression.func(*(at(argument, point) for argument in expression.args))

    return at(form, {i: unit + 1})
