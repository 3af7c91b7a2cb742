"""Every derivative chainrule writes by hand, and every one it reads from an index form, proved by SymPy.

``_index.layer_facts`` holds what ``sympy.diff`` gives in index form over symbolic widths n, m, B (z = W a + b,
the δ recursion, softmax, logsumexp, cross-entropy on the logits). Here each fact is proved, at those symbolic
sizes, to be what diff gives (``derives``: its renamed softmax outputs put back) and to be the entry of the
matrix form it names (``proves``); each proof is shown to fail on a planted wrong sign or index. Then the
places that read the facts or keep a written form for stability (logsumexp's fdiff, the per-unit and matrix
cross-entropy gradient, the softmax step of the matrix program, the gradients δ_p a_q and δ_p of the
element-wise derivation, σ' = a(1 − a)) are tied to them: symbolically where SymPy 1.14 can, else at several
concrete widths (said where so).
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import sympy
from sympy import OneMatrix

from symbolic import Network, NetworkError, derive
from symbolic._functions import define_function, logsumexp, sigmoid, softmax, unit_sum
from symbolic._index import (
    EXP_SUM,
    W,
    W_next,
    _taken,
    a,
    as_program,
    at_unit,
    delta,
    g,
    i,
    k,
    layer_facts,
    n,
    p,
    q,
    same,
    y,
    z,
)
from symbolic._rules import ACTIVATIONS, LOSSES

FACTS = sorted(layer_facts())
WIDTHS = [1, 2, 3, 5]  # the concrete widths of the checks that SymPy cannot do at a symbolic width


def _timed(check):
    start = time.perf_counter()
    result = check()
    assert time.perf_counter() - start < 10, "a proof must stay fast"
    return result


@pytest.mark.parametrize("name", FACTS)
def test_each_fact_is_what_diff_gives_at_symbolic_sizes(name):
    assert _timed(layer_facts()[name].derives)


@pytest.mark.parametrize("name", FACTS)
def test_each_fact_is_the_entry_of_its_matrix_form_at_symbolic_sizes(name):
    assert _timed(layer_facts()[name].proves)


def test_every_fact_of_a_coupled_layer_is_written_through_the_softmax_outputs():
    for name in ("softmax_jacobian", "softmax_backward", "logsumexp_gradient", "cross_entropy_gradient"):
        form = layer_facts()[name].index_form
        assert not form.has(z) and not form.has(sympy.exp), (name, form)


def _index_mutants():
    """(fact, change of its index form): a wrong sign or a wrong index in each."""
    return [
        ("dz_da", {W[i, k]: W[k, i]}),
        ("dL_dW", {delta[p]: delta[q], a[q]: a[p]}),
        ("dL_dW", {delta[p]: -delta[p]}),
        ("dL_db", {delta[p]: delta[q]}),
        ("delta", {W_next[i, k]: W_next[k, i]}),
        ("softmax_jacobian", {a[i]: a[k]}),
        ("softmax_jacobian", {a[i]: -a[i]}),
        ("softmax_backward", {g[i]: -g[i]}),
        ("softmax_backward", {g[k]: g[i]}),
        ("logsumexp_gradient", {a[i]: a[k]}),
        ("cross_entropy_gradient", {y[i]: -y[i]}),
        ("cross_entropy_gradient", {y[k]: y[i]}),
    ]


@pytest.mark.parametrize("name, change", _index_mutants(), ids=lambda v: str(v))
def test_a_wrong_index_form_fails_both_proofs(name, change):
    fact = layer_facts()[name]
    broken = dataclasses.replace(fact, taking=lambda: fact.index_form.xreplace(change))
    assert broken.index_form != fact.index_form
    assert not _timed(broken.derives)
    assert not _timed(broken.proves)


def _matrix_mutants():
    """(fact, a wrong matrix form): every form with its sign flipped, and a transpose or factor misplaced."""
    facts = layer_facts()
    mutants = [(name, -fact.matrix_form) for name, fact in facts.items()]
    weights, inputs, deltas = (
        facts[name].values[base][0] for name, base in (("dz_da", W), ("dL_dW", a), ("dL_dW", delta))
    )
    out, target, upstream = (facts["softmax_backward"].values[base][0] for base in (a, y, g))
    return [
        *mutants,
        ("dz_da", weights.T),  # ∂z_i/∂a_k read as W_ki
        ("dL_dW", inputs * deltas.T),  # a δᵀ
        ("softmax_jacobian", sympy.MatAdd(sympy.DiagMatrix(out), out * out.T, evaluate=False)),
        ("softmax_backward", sympy.HadamardProduct(out, upstream) - upstream * (out.T * upstream)),
        ("cross_entropy_gradient", out * (OneMatrix(1, n) * target) + target),
    ]


@pytest.mark.parametrize("name, wrong", _matrix_mutants(), ids=lambda v: str(v))
def test_a_wrong_matrix_form_fails_its_proof(name, wrong):
    broken = dataclasses.replace(layer_facts()[name], matrix_form=wrong)
    assert not _timed(broken.proves)


# --- where a written form is kept: logsumexp's derivative, σ' = a(1 − a) --------------------------------------


def test_logsumexp_written_derivative_is_diff_of_its_definition_at_a_symbolic_width():
    """logsumexp.fdiff writes ∂/∂z_i as e^{z_i − logsumexp(z)} (finite at any logit); diff of log Σ_j e^{z_j}."""
    taken = _taken(layer_facts()["logsumexp_gradient"].derivative)  # e^{z_i} / Σ_j e^{z_j}
    assert _timed(lambda: same(logsumexp.through_value(z[i], sympy.log(EXP_SUM)), taken))
    assert not same(logsumexp.through_value(z[k], sympy.log(EXP_SUM)), taken)  # the proof can fail


@pytest.mark.parametrize("width", WIDTHS)
def test_logsumexp_fdiff_differentiates_in_the_argument_asked(width):
    """fdiff applies the proved form to its own argument (a wrong argindex fails here, at each width)."""
    zs = sympy.symbols(f"z1:{width + 1}", real=True)
    total = logsumexp(*zs)
    for zu in zs:
        assert sympy.diff(total, zu) == logsumexp.through_value(zu, total)


def test_sigmoid_written_derivative_is_proved_when_the_function_is_made():
    """σ' = a(1 − a) is a written form; define_function proves it at import, and refuses a wrong one."""
    zeta = sympy.Symbol("zeta", real=True)
    defined = lambda v: 1 / (1 + sympy.exp(-v))  # noqa: E731
    written = sigmoid.through_output(sigmoid(zeta)).rewrite(sympy.exp)
    assert sympy.simplify(written - sympy.diff(defined(zeta), zeta)) == 0
    for wrong in (lambda u: u * (1 + u), lambda u: u * (1 - u) / 2, lambda u: 1 - u):
        with pytest.raises(NetworkError, match="not the derivative of its definition"):
            define_function("wrong_sigmoid", defined, r"\sigma", through_output=wrong, recognisable=False)


# --- the consumers read the facts: the softmax step, cross-entropy's gradient --------------------------------


def _column(name: str, width: int) -> list[sympy.Symbol]:
    return list(sympy.symbols(f"{name}1:{width + 1}", real=True))


def _on_one_sample(expression: sympy.Expr, columns: dict[sympy.Symbol, list[sympy.Expr]]) -> list[sympy.Expr]:
    """A matrix-program expression evaluated on one sample (each matrix a column of SymPy entries)."""
    width = len(next(iter(columns.values())))

    def run(e):
        if e in columns:
            return columns[e]
        if isinstance(e, softmax):
            (values,) = (run(arg) for arg in e.args)
            total = sympy.Add(*(sympy.exp(v) for v in values))
            return [sympy.exp(v) / total for v in values]
        if isinstance(e, unit_sum):
            (values,) = (run(arg) for arg in e.args)
            return [sympy.Add(*values)] * width
        if not e.args:
            return [e] * width
        parts = [run(arg) for arg in e.args]
        return [e.func(*(part[u] for part in parts)) for u in range(width)]

    return run(expression)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_programs_softmax_step_is_the_chain_rule_through_diff(width):
    """The compiled code's a ⊙ g − a ⊙ 𝟏ᵀ(a ⊙ g), read from the fact, against Σ_k g_k ∂a_k/∂z_i by diff."""
    zs, gs = _column("z", width), _column("g", width)
    total = sympy.Add(*(sympy.exp(v) for v in zs))
    outputs = [sympy.exp(v) / total for v in zs]
    zm, am, gm = sympy.symbols("z a g", real=True)
    step = ACTIVATIONS["softmax"].matrix_backward(zm, am, gm)
    ours = _on_one_sample(step, {zm: zs, am: outputs, gm: gs})
    for u in range(width):
        exact = sympy.Add(*(gs[v] * sympy.diff(outputs[v], zs[u]) for v in range(width)))
        assert sympy.simplify(ours[u] - exact) == 0, u


@pytest.mark.parametrize("width", WIDTHS)
def test_cross_entropy_gradients_are_diff_of_the_loss(width):
    """Per unit (what the page shows) and at matrix level (what the compiled code computes), against diff of
    the table's per-sample loss Σ_k y_k (logsumexp(z) − z_k), itself the index definition at this width."""
    coupled = LOSSES["softmax_cross_entropy"].coupled
    zs, ys = _column("z", width), _column("y", width)
    loss = coupled.per_sample(zs, ys)
    defined = layer_facts()["cross_entropy_gradient"].derivative.expr.subs(n, width).doit()
    entries = {z: zs, y: ys}
    defined = defined.replace(lambda e: isinstance(e, sympy.Indexed), lambda e: entries[e.base][int(e.indices[0]) - 1])
    assert sympy.expand(loss.rewrite(sympy.log) - defined) == 0
    zm, ym = sympy.symbols("z y", real=True)
    matrix = _on_one_sample(coupled.matrix_gradient(zm, ym), {zm: zs, ym: ys})
    for u in range(width):
        exact = sympy.diff(loss, zs[u])
        assert sympy.expand(coupled.gradient(zs, ys, u) - exact) == 0, u
        assert sympy.simplify((matrix[u] - exact).rewrite(sympy.log)) == 0, u


def test_a_sum_that_reads_the_unit_itself_has_no_program_form():
    with pytest.raises(ValueError, match="units of the layer alone"):
        as_program(sympy.Sum(a[i] * g[k], (k, 1, n)), {a: sympy.Symbol("a"), g: sympy.Symbol("g")}, unit_sum)


def test_at_unit_writes_each_sum_out_over_the_width():
    ys = _column("y", 3)
    form = a[i] * sympy.Sum(y[k], (k, 1, n)) - y[i] / n
    assert at_unit(form, {a: lambda u: 10 * ys[u], y: lambda u: ys[u]}, 1, 3) == 10 * ys[1] * sum(ys) - ys[1] / 3


# --- the element-wise derivation's gradients are the facts ∂L/∂W_pq = δ_p a_q, ∂L/∂b_p = δ_p -----------------


@pytest.mark.parametrize("sizes", [[3, 2], [2, 4, 3]])
def test_the_elementwise_gradients_are_diff_of_the_layer_map(sizes):
    """With L = Σ_i δ_i z_i (δ the derivation's own symbols), diff in each W[p, q] and b[p] of z written out
    (non-square layers, so a transposed index reads another entry or none)."""
    derivation = derive(Network(sizes, "tanh", "half_sse", bias=True))
    for layer in derivation.layers:
        loss = sympy.Add(*(layer.delta[u] * layer.z_definition[u] for u in range(len(layer.z))))
        weights, gradient = layer.weight, derivation.gradient_definitions[f"W{layer.index}"]
        for r in range(weights.rows):
            for c in range(weights.cols):
                assert gradient[r, c] == sympy.diff(loss, weights[r, c]), (layer.index, r, c)
            assert derivation.gradient_definitions[f"b{layer.index}"][r] == sympy.diff(loss, layer.bias[r])


# --- the softmax + bce δ that stays finite at saturation (``_matrix.STABLE_OUTPUT_DELTAS``) -------------------


@pytest.mark.parametrize("width", [2, 3])
def test_the_finite_softmax_bce_delta_is_the_chain_rule_through_diff(width):
    """The compiled form, at each choice of the largest unit, against Σ_k ∂ℓ/∂a_k ∂a_k/∂z_i with both factors
    taken by diff (of bce's definition and of the softmax written in e^{z_k} = E_k). SymPy 1.14 does not
    carry the masked sums through a symbolic width, so widths 2 and 3 stand in for it (4 takes minutes)."""
    from symbolic._functions import max_mask, softmax_without_max

    exps, ys = sympy.symbols(f"E1:{width + 1}", positive=True), _column("y", width)
    zs = _column("z", width)
    total = sympy.Add(*(sympy.exp(v) for v in zs))
    outputs = [sympy.exp(v) / total for v in zs]
    as_logs = {v: sympy.log(e) for v, e in zip(zs, exps)}  # e^{z_k} = E_k
    prediction, target = sympy.symbols("prediction target", real=True)
    phi = LOSSES["bce"].per_unit(prediction, target, width)
    dphi = sympy.diff(phi, prediction)
    program = derive(Network([1, width], "softmax", "bce")).matrix_program
    steps = {step.target.name: step.expression for step in program.steps}
    values = [o.xreplace(as_logs) for o in outputs]
    for largest in range(width):

        def at(expression, u, largest=largest):
            if isinstance(expression, sympy.Symbol):
                if expression.name in steps and expression.name.startswith(("mask_", "ratio_")):
                    return at(steps[expression.name], u)
                return {"a1": values[u], "y": ys[u]}[expression.name]
            if isinstance(expression, max_mask):
                return sympy.S.One if u == largest else sympy.S.Zero
            if isinstance(expression, softmax_without_max):
                return sympy.S.Zero if u == largest else exps[u] / (sum(exps) - exps[largest])
            if isinstance(expression, unit_sum):
                return sympy.Add(*(at(expression.args[0], v) for v in range(width)))
            if not expression.args:
                return expression
            return expression.func(*(at(argument, u) for argument in expression.args))

        for u in range(width):
            chain = sympy.Add(
                *(
                    dphi.xreplace({prediction: outputs[v], target: ys[v]}) * sympy.diff(outputs[v], zs[u])
                    for v in range(width)
                )
            )
            assert sympy.cancel(at(steps["delta1"], u) - chain.xreplace(as_logs)) == 0, (largest, u)
