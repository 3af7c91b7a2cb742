"""The layer map differentiated in index form, with symbolic widths: the facts every layer shares.

z_i = Σ_j W_ij a_j + b_i is written with ``IndexedBase`` and ``Sum`` over symbolic sizes n (units of the
layer) and m (units of the layer below), and ``sympy.diff`` does the rest: ∂z_i/∂a_k = W_ik, ∂z_i/∂W_pq =
𝟙[i = p] a_q, the δ recursion δ_k = Σ_i δ'_i W_ik f'(z_k) and softmax's ∂a_k/∂z_i = a_k (𝟙[k = i] − a_i)
come out of diff (``KroneckerDelta`` inside a ``Sum``, whose ``doit`` leaves a Piecewise on k ≤ m that the
stated index range removes). Each result then names its matrix form (Wᵀδ' ⊙ f'(z), δ aᵀ, δ𝟏), and
``IndexFact.check`` evaluates both at concrete sizes on random numbers.

SymPy's ``MatrixSymbol`` calculus cannot do this directly (SymPy 1.14 raises "diagonalizing indices of
different dimensions" on σ(W₂ σ(W₁ x))), hence the index form. None of it depends on the widths, so it is
derived once, whatever the network.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

import sympy
from sympy import IndexedBase, MatrixSymbol, Sum, symbols

# the symbolic sizes and indices every fact is written in (1-based, as the derivation is)
n, m, batch = symbols("n m B", integer=True, positive=True)  # units of layer l, of layer l−1, samples
i, j, k, p, q, s = symbols("i j k p q s", integer=True, positive=True)
W = IndexedBase("W")
b = IndexedBase("b")
a = IndexedBase("a")  # the layer's input a^(l−1)
z = IndexedBase("z")
delta = IndexedBase("delta")  # δ of this layer
delta_next = IndexedBase("delta_next")  # δ of the layer above (l + 1)
W_next = IndexedBase("W_next")  # W of the layer above
f = sympy.Function("f")  # the layer's activation, any element-wise one
RANGES = {j: m, k: m, i: n, p: n, q: m}  # each index's stated upper end (the lower one is 1)


def _within_ranges(expression: sympy.Expr) -> sympy.Expr:
    """Drop the Piecewise conditions ``index ≤ size`` that the stated index ranges make true."""
    stated = {}
    for index, size in RANGES.items():
        stated[sympy.Le(index, size)] = sympy.true
        stated[sympy.Ge(size, index)] = sympy.true
    return expression.xreplace(stated)


def z_entry(weight=W, inputs=a, bias=b, row=i, width=m) -> sympy.Expr:
    """z_i = Σ_j W_ij a_j + b_i, an unevaluated sum over the symbolic width."""
    return Sum(weight[row, j] * inputs[j], (j, 1, width)) + bias[row]


@dataclass(frozen=True)
class IndexFact:
    """One derivative SymPy took in index form, and the matrix form it names.

    ``derivative`` is the unevaluated derivative (what was asked), ``index_form`` SymPy's result after
    ``doit`` and the stated index ranges, ``matrix_form`` a matrix expression in MatrixSymbols of
    symbolic shape whose entry (``entry``, 1-based) the index form is; ``check`` proves the pair equal on
    numbers at concrete sizes.
    """

    name: str
    derivative: sympy.Expr
    index_form: sympy.Expr
    matrix_form: sympy.Expr
    entry: tuple[sympy.Symbol, sympy.Symbol | int]  # (row, column) of matrix_form that index_form is
    values: dict  # IndexedBase -> MatrixSymbol (as (matrix, transposed?)) for ``check``

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


def _indexed_value(entry: sympy.Indexed, values: dict, numbers: dict) -> sympy.Expr:
    matrix, transposed = values[entry.base]
    indices = [int(index) - 1 for index in entry.indices]
    if len(indices) == 1:
        indices.append(0)
    r, c = indices
    return numbers[matrix][c, r] if transposed else numbers[matrix][r, c]


@functools.cache
def layer_facts() -> dict[str, IndexFact]:
    """The index-form facts of a dense layer, derived once (they do not depend on the widths)."""
    facts: dict[str, IndexFact] = {}
    w_matrix, am, deltam = MatrixSymbol("W", n, m), MatrixSymbol("a", m, 1), MatrixSymbol("delta", n, 1)

    # ∂z_i/∂a_k = W_ik: the Jacobian of the layer map is W
    asked, taken = _dz_da()
    facts["dz_da"] = IndexFact("dz_da", asked, taken, w_matrix, (i, k), {W: (w_matrix, False)})

    # ∂L/∂W_pq = Σ_i δ_i ∂z_i/∂W_pq = δ_p a_q: the gradient is δ aᵀ
    asked = Sum(delta[i] * sympy.Derivative(z_entry(), W[p, q]), (i, 1, n))
    facts["dL_dW"] = IndexFact(
        "dL_dW",
        asked,
        _within_ranges(asked.doit().doit()),
        deltam * am.T,
        (p, q),
        {delta: (deltam, False), a: (am, False)},
    )

    # ∂L/∂b_p = Σ_i δ_i ∂z_i/∂b_p = δ_p; over a batch (one column per sample s) it sums: δ𝟏
    delta_batch, ones = MatrixSymbol("delta", n, batch), sympy.OneMatrix(batch, 1)
    asked = Sum(delta[i] * sympy.Derivative(z_entry(), b[p]), (i, 1, n))
    facts["dL_db"] = IndexFact(
        "dL_db", asked, _within_ranges(asked.doit().doit()), deltam, (p, 0), {delta: (deltam, False)}
    )
    batch_delta = IndexedBase("delta_batch")
    asked = Sum(batch_delta[p, s] * sympy.Derivative(z_entry(bias=b, row=p), b[p]), (s, 1, batch))
    facts["dL_db_batch"] = IndexFact(
        "dL_db_batch",
        asked,
        asked.doit().doit(),
        delta_batch * ones,
        (p, 0),
        {batch_delta: (delta_batch, False)},
    )

    # the δ recursion: the layer above computes z'_i = Σ_k W'_ik f(z_k) + b'_i, so
    # δ_k = ∂L/∂z_k = Σ_i δ'_i ∂z'_i/∂z_k = Σ_i δ'_i W'_ik f'(z_k) = ((W'ᵀ δ') ⊙ f'(z))_k
    above = Sum(W_next[i, j] * f(z[j]), (j, 1, m)) + IndexedBase("b_next")[i]
    asked = Sum(delta_next[i] * sympy.Derivative(above, z[k]), (i, 1, n))
    result = _within_ranges(asked.doit().doit())
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
        result,
        sympy.HadamardProduct(w_next_matrix.T * dn, fz),
        (k, 0),
        {W_next: (w_next_matrix, False), delta_next: (dn, False), _FPRIME: (fz, False)},
    )
    object.__setattr__(facts["delta"], "index_form", result.xreplace({fprime: _FPRIME[k]}))

    # softmax: a_k = e^{z_k} / Σ_j e^{z_j}; ∂a_k/∂z_i, with e^{z_k}/Σ renamed a_k, is a_k (𝟙[k = i] − a_i)
    asked, renamed = _softmax_jacobian()
    am_out = MatrixSymbol("a", n, 1)
    facts["softmax_jacobian"] = IndexFact(
        "softmax_jacobian",
        asked,
        renamed,
        sympy.MatAdd(sympy.DiagMatrix(am_out), -am_out * am_out.T, evaluate=False),
        (k, i),
        {a: (am_out, False)},
    )
    return facts


@functools.cache
def _dz_da() -> tuple[sympy.Expr, sympy.Expr]:
    asked = sympy.Derivative(z_entry(), a[k])
    return asked, _within_ranges(asked.doit().doit())


@functools.cache
def dz_dparameter(parameter: str) -> sympy.Expr:
    """SymPy's ∂z_i/∂W_pq (𝟙[i = p] a_q) or ∂z_i/∂b_p (𝟙[i = p]) in index form; ``parameter`` "W" or "b"."""
    wrt = W[p, q] if parameter == "W" else b[p]
    return _within_ranges(sympy.Derivative(z_entry(), wrt).doit().doit())


def dz_da() -> sympy.Expr:
    """SymPy's ∂z_i/∂a_k in index form: W[i, k]."""
    return _dz_da()[1]


@functools.cache
def _softmax_jacobian() -> tuple[sympy.Expr, sympy.Expr]:
    """∂a_k/∂z_i of a_k = e^{z_k} / Σ_j e^{z_j} over a symbolic width n, taken by diff and written through a."""
    total = Sum(sympy.exp(z[j]), (j, 1, n))
    asked = sympy.Derivative(sympy.exp(z[k]) / total, z[i])
    a_out, total_symbol = IndexedBase("a"), sympy.Symbol("S", positive=True)
    taken = asked.doit().doit().xreplace({total: total_symbol})
    taken = _within_ranges(taken.xreplace({sympy.Le(i, n): sympy.true, sympy.Ge(n, i): sympy.true}))
    renamed = sympy.expand(taken).xreplace(
        {sympy.exp(z[k]): a_out[k] * total_symbol, sympy.exp(z[i]): a_out[i] * total_symbol}
    )
    return asked, sympy.factor(renamed)


def softmax_jacobian() -> sympy.Expr:
    """SymPy's ∂a_k/∂z_i for softmax in index form (k, i and the a's as ``Indexed``): a_k (𝟙[k = i] − a_i)."""
    return _softmax_jacobian()[1]


_FPRIME = IndexedBase("fprime_z")  # f'(z_k) as an indexed value, so the check can give it numbers
