"""The index-form facts (``symbolic/_index.py``) against ``sympy.diff`` of the sums written out in full.

Each fact is SymPy's derivative over symbolic widths n, m; here the same layer is written with one plain
symbol per entry at concrete widths where rows ≠ columns (a transposed index, W[q, p] for W[p, q], then
reads a wrong entry or one that does not exist), differentiated entry by entry, and compared with the fact
at every concrete index.
"""

from __future__ import annotations

import itertools

import pytest
import sympy

from symbolic import _index
from symbolic._index import dz_da, layer_facts

SIZES = [(3, 2), (2, 4)]  # (n units, m inputs)
BATCH = 3


def _entry(name: str, *indices: int) -> sympy.Symbol:
    return sympy.Symbol(f"{name}_{'_'.join(map(str, indices))}", real=True)


def _explicit(expression: sympy.Expr, point: dict) -> sympy.Expr:
    """The index-form ``expression`` at concrete widths and indices, each Indexed entry a plain symbol."""
    concrete = expression.subs(point).doit()
    return concrete.replace(
        lambda e: isinstance(e, sympy.Indexed), lambda e: _entry(str(e.base), *(int(i) for i in e.indices))
    )


def _z(row: int, m: int, a: str = "a", sample: int | None = None) -> sympy.Expr:
    """z_row = Σ_j W_row,j a_j + b_row, written out (a_j of one sample when ``sample`` is given)."""
    inputs = [_entry(a, j) if sample is None else _entry(a, j, sample) for j in range(1, m + 1)]
    return sympy.Add(*(_entry("W", row, j) * inputs[j - 1] for j in range(1, m + 1))) + _entry("b", row)


@pytest.mark.parametrize("n, m", SIZES)
def test_layer_map_derivative_in_its_input(n, m):
    widths = {_index.n: n, _index.m: m}
    for i, k in itertools.product(range(1, n + 1), range(1, m + 1)):
        point = {**widths, _index.i: i, _index.k: k}
        assert _explicit(dz_da(), point) == sympy.diff(_z(i, m), _entry("a", k))


@pytest.mark.parametrize("n, m", SIZES)
def test_gradient_facts(n, m):
    """L = Σ_i δ_i z_i (δ the upstream derivative): ∂L/∂W_pq, ∂L/∂b_p; over a batch ∂L/∂b_p = Σ_s δ_ps."""
    facts = layer_facts()
    loss = sympy.Add(*(_entry("delta", i) * _z(i, m) for i in range(1, n + 1)))
    batch_loss = sympy.Add(
        *(_entry("delta_batch", i, s) * _z(i, m, sample=s) for i in range(1, n + 1) for s in range(1, BATCH + 1))
    )
    widths = {_index.n: n, _index.m: m, _index.batch: BATCH}
    for p, q in itertools.product(range(1, n + 1), range(1, m + 1)):
        point = {**widths, _index.p: p, _index.q: q}
        assert _explicit(facts["dL_dW"].index_form, point) == sympy.diff(loss, _entry("W", p, q)), (p, q)
        assert _explicit(facts["dL_db"].index_form, point) == sympy.diff(loss, _entry("b", p))
        assert _explicit(facts["dL_db_batch"].index_form, point) == sympy.diff(batch_loss, _entry("b", p))


@pytest.mark.parametrize("n, m", SIZES)
def test_delta_recursion(n, m):
    """The layer above: z'_i = Σ_k W'_ik f(z_k) + b'_i; L = Σ_i δ'_i z'_i; ∂L/∂z_k = Σ_i δ'_i W'_ik f'(z_k)."""
    f = sympy.Function("f")
    zs = [_entry("z", k) for k in range(1, m + 1)]
    above = [
        sympy.Add(*(_entry("W_next", i, k) * f(zs[k - 1]) for k in range(1, m + 1))) + _entry("b_next", i)
        for i in range(1, n + 1)
    ]
    loss = sympy.Add(*(_entry("delta_next", i) * above[i - 1] for i in range(1, n + 1)))
    for k in range(1, m + 1):
        fact = _explicit(layer_facts()["delta"].index_form, {_index.n: n, _index.m: m, _index.k: k})
        fact = fact.xreplace({_entry("fprime_z", k): sympy.Derivative(f(zs[k - 1]), zs[k - 1])})
        assert sympy.simplify(fact - sympy.diff(loss, zs[k - 1])) == 0, k


@pytest.mark.parametrize("n", [2, 3])
def test_softmax_jacobian(n):
    zs = [_entry("z", j) for j in range(1, n + 1)]
    total = sympy.Add(*(sympy.exp(z) for z in zs))
    outputs = {_entry("a", j): sympy.exp(zs[j - 1]) / total for j in range(1, n + 1)}
    for k, i in itertools.product(range(1, n + 1), repeat=2):
        fact = _explicit(layer_facts()["softmax_jacobian"].index_form, {_index.n: n, _index.k: k, _index.i: i})
        exact = sympy.diff(outputs[_entry("a", k)], zs[i - 1])
        assert sympy.simplify(fact.xreplace(outputs) - exact) == 0, (k, i)


def test_the_lazy_table_names_exactly_the_facts_each_group_derives():
    from symbolic._index import DENSE_FACTS, SOFTMAX_FACTS, _dense_facts, _softmax_facts

    assert tuple(_dense_facts()) == DENSE_FACTS and tuple(_softmax_facts()) == SOFTMAX_FACTS
    assert list(layer_facts()) == [*DENSE_FACTS, *SOFTMAX_FACTS]


def test_a_network_without_a_softmax_derives_no_softmax_fact():
    """Run in a fresh process (this one's caches are shared with the other tests)."""
    import subprocess
    import sys

    code = (
        "from symbolic import TUTORIAL, derive; from symbolic._index import _softmax_facts, _dense_facts; "
        "derive(TUTORIAL).latex(); "
        "print(_dense_facts.cache_info().currsize, _softmax_facts.cache_info().currsize)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "0"], done.stdout + done.stderr
