"""LayerNorm and BatchNorm (training mode): the backward ``symbolic/_norm.py`` derives, against SymPy and torch.

Each fact (∂L/∂x, ∂L/∂γ, ∂L/∂β, the three paths into x, ∂σ²/∂μ = 0) is proved equal to its textbook form at the
symbolic size (``proves``) and, without the reduction that proof uses, at the concrete sizes 2, 3, 5
(``proves_at``: the definition written out in plain symbols and differentiated entry by entry); the three paths
add up to the total. Then the derived and textbook forms, evaluated in float64, are compared with torch autograd
of ``layer_norm`` and ``batch_norm(training=True)`` on hypothesis-drawn sizes and values. Planted mistakes
(the mean(ĝ) term dropped, the n − 1 variance, ε left out, the other axis) must fail both kinds of check.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import pytest
import sympy
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn import functional

from symbolic import _norm
from symbolic._norm import LAYERS, PATHS, Normalization, norm_facts, paths_add_up, written_out

FACTS = sorted(norm_facts())
RELATIVE = 1e-10
EPSILONS = (1e-5, 0.1)


def _timed(check, limit: float = 10.0):
    start = time.perf_counter()
    result = check()
    assert time.perf_counter() - start < limit, "a proof must stay fast"
    return result


# --- SymPy: derived by diff, proved equal to the textbook form ----------------------------------------------


@pytest.mark.parametrize("name", FACTS)
def test_each_fact_is_its_textbook_form_at_the_symbolic_size(name):
    assert _timed(norm_facts()[name].proves)


@pytest.mark.parametrize("name", FACTS)
def test_each_fact_is_its_textbook_form_at_concrete_sizes(name):
    fact = norm_facts()[name]
    assert len(fact.sizes) >= 3
    for size in fact.sizes:
        assert _timed(lambda size=size: fact.proves_at(size)), size


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_the_three_paths_add_up_to_the_total(layer):
    assert _timed(lambda: paths_add_up(layer))
    facts = norm_facts()
    for size in (2, 3, 5):
        for index in range(1, size + 1):
            paths = sympy.Add(*(facts[f"{layer}.{path}"].truth(size, index) for path in PATHS))
            total = facts[f"{layer}.input_gradient"].truth(size, index)
            assert _norm.vanishes(paths - total), (size, index)


def test_the_derived_input_gradient_reads_as_its_three_paths():
    """diff's ∂L/∂x_j, once summed, is literally the three paths' terms (what the page will show)."""
    for layer in LAYERS:
        facts = norm_facts()
        total = sympy.Add(*(facts[f"{layer}.{path}"].derived for path in PATHS))
        assert sympy.expand(total - facts[f"{layer}.input_gradient"].derived) == 0


def _wrong_textbooks(layer: Normalization) -> dict[str, sympy.Expr]:
    direct, through_mean, through_variance = _norm.textbook_terms(layer)
    size = layer.size
    return {
        "no mean(ĝ) term": direct + through_variance,
        "n − 1 variance": _norm.textbook_input_gradient(layer, spread=_norm.variance(size, size - 1)),
        "no ε": _norm.textbook_input_gradient(layer, epsilon=0),
        "sign of the variance path": direct + through_mean - through_variance,
    }


MUTANTS = [(layer, mistake) for layer in sorted(LAYERS) for mistake in _wrong_textbooks(LAYERS[layer])]


@pytest.mark.parametrize("layer, mistake", MUTANTS)
def test_a_wrong_textbook_form_fails_both_proofs(layer, mistake):
    fact = norm_facts()[f"{layer}.input_gradient"]
    broken = dataclasses.replace(fact, textbook=_wrong_textbooks(LAYERS[layer])[mistake])
    assert not _timed(broken.proves)
    for size in (2, 3):
        assert not _timed(lambda size=size: broken.proves_at(size)), size


def test_a_wrong_derived_form_fails_its_concrete_proof():
    """The derived form is checked too (μ and σ̂ put back): a wrong sign in it fails at sizes 2 and 3."""
    fact = norm_facts()["BatchNorm.input_gradient"]
    broken = dataclasses.replace(fact, derived=fact.derived.xreplace({_norm.gamma_c: -_norm.gamma_c}))
    for size in (2, 3):
        assert not broken.proves_at(size)


# --- torch: the forms in float64 against autograd -----------------------------------------------------------


@functools.cache
def _evaluator(name: str, form: str, size: int):
    """The fact's ``form`` (textbook or derived, μ and σ̂ put back) at ``size``, as a float64 function of
    (x, g, γ, ε) → its entries (one per index, or one number)."""
    fact = norm_facts()[name]
    expression = fact.textbook if form == "textbook" else fact.restored()
    indices = range(1, size + 1) if fact.at is not None else (None,)
    entries = [written_out(expression, fact.point(size, index)) for index in indices]
    vectors = [[_norm.entry(base, u) for u in range(1, size + 1)] for base in (_norm.x, _norm.g)]
    scale = [_norm.entry(_norm.gamma, u) for u in range(1, size + 1)] if fact.layer == "LayerNorm" else _norm.gamma_c
    return sympy.lambdify([*vectors, scale, _norm.eps], entries, modules="math")


def _along(layer: Normalization, values: torch.Tensor) -> torch.Tensor:
    """The vectors the layer normalises, one per row: a (B, n) input's rows (features) or an (N, C)
    input's columns (batch)."""
    return values if layer.axis == "features" else values.T


def _ours(layer: Normalization, form: str, x, upstream, gamma, epsilon) -> tuple[torch.Tensor, ...]:
    """(∂L/∂x, ∂L/∂γ, ∂L/∂β) from the facts, vector by vector along the layer's axis."""
    xs, gs = _along(layer, x), _along(layer, upstream)
    size = xs.shape[1]
    dx, dgamma, dbeta = [], torch.zeros_like(gamma), torch.zeros_like(gamma)
    for row in range(xs.shape[0]):
        scale = gamma.tolist() if layer.name == "LayerNorm" else float(gamma[row])
        arguments = (xs[row].tolist(), gs[row].tolist(), scale, epsilon)
        dx.append(_evaluator(f"{layer.name}.input_gradient", form, size)(*arguments))
        for total, key in ((dgamma, "scale_gradient"), (dbeta, "shift_gradient")):
            entries = torch.tensor(_evaluator(f"{layer.name}.{key}", form, size)(*arguments), dtype=torch.float64)
            if layer.name == "LayerNorm":
                total += entries  # one γ_p per feature: the per-sample facts summed over the batch
            else:
                total[row] = entries[0]  # one γ_c per feature: the fact is already the batch's sum
    dx = torch.tensor(dx, dtype=torch.float64)
    return (dx if layer.axis == "features" else dx.T), dgamma, dbeta


def _autograd(layer_name: str, x, upstream, gamma, beta, epsilon) -> tuple[torch.Tensor, ...]:
    x, gamma, beta = (t.clone().requires_grad_() for t in (x, gamma, beta))
    if layer_name == "LayerNorm":
        y = functional.layer_norm(x, (x.shape[1],), gamma, beta, eps=epsilon)
    else:
        y = functional.batch_norm(x, None, None, gamma, beta, training=True, eps=epsilon)
    (y * upstream).sum().backward()
    return x.grad, gamma.grad, beta.grad


def _case(layer_name: str, rows: int, size: int, seed: int):
    """x, upstream g, γ, β of a (rows, size) LayerNorm input or a (size, rows) BatchNorm input."""
    generator = torch.Generator().manual_seed(seed)
    shape = (rows, size) if layer_name == "LayerNorm" else (size, rows)
    features = shape[1]
    x, upstream = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(2))
    gamma, beta = (torch.randn(features, generator=generator, dtype=torch.float64) for _ in range(2))
    return x, upstream, gamma, beta


def _relative_error(layer: Normalization, form: str, case, epsilon) -> float:
    """The largest error of (∂x, ∂γ, ∂β), each relative to its largest entry or, when that is smaller, to the
    size of the terms that cancel into it: at n = 2 features LayerNorm's ∂x is about ε/|x₁ − x₂|³, and float64
    autograd's own rounding (about 1e-16 of γg/σ̂) is then 1e-10 of it."""
    x, upstream, gamma, beta = case
    ours = _ours(layer, form, x, upstream, gamma, epsilon)
    reference = _autograd(layer.name, x, upstream, gamma, beta, epsilon)
    axis = 1 if layer.axis == "features" else 0
    sigma_hat = (x.var(dim=axis, unbiased=False, keepdim=True) + epsilon).sqrt()
    x_hat = (x - x.mean(dim=axis, keepdim=True)) / sigma_hat
    terms = (
        ((gamma * upstream).abs() / sigma_hat).max(),
        (upstream * x_hat).abs().sum(dim=0).max(),
        upstream.abs().sum(dim=0).max(),
    )
    return max(
        float((o - r).abs().max() / torch.maximum(r.abs().max(), t).clamp_min(1e-300))
        for o, r, t in zip(ours, reference, terms, strict=True)
    )


@functools.cache
def _forward(layer_name: str, size: int):
    """The definition y_i = γ x̂_i + β at ``size``, as a float64 function of (x, γ, β, ε) → y."""
    layer = LAYERS[layer_name]
    outputs = [written_out(_norm.output(layer, u), {layer.size: size}) for u in range(1, size + 1)]
    xs = [_norm.entry(_norm.x, u) for u in range(1, size + 1)]
    if layer_name == "LayerNorm":
        parameters = [[_norm.entry(base, u) for u in range(1, size + 1)] for base in (_norm.gamma, _norm.beta)]
    else:
        parameters = [_norm.gamma_c, _norm.beta_c]
    return sympy.lambdify([xs, *parameters, _norm.eps], outputs, modules="math")


@given(
    layer=st.sampled_from(sorted(LAYERS)),
    size=st.integers(2, 6),
    rows=st.integers(1, 4),
    epsilon=st.sampled_from(EPSILONS),
    seed=st.integers(0, 2**31 - 1),
)
def test_the_definition_is_torchs_forward(layer, size, rows, epsilon, seed):
    """The index-form definition the facts are derived from, on numbers, is what torch computes (biased
    variance, ε inside the root, the layer's own axis)."""
    x, _, gamma, beta = _case(layer, rows, size, seed)
    normalization = LAYERS[layer]
    xs = _along(normalization, x)
    ys = []
    for row in range(xs.shape[0]):
        parameters = (gamma.tolist(), beta.tolist()) if layer == "LayerNorm" else (float(gamma[row]), float(beta[row]))
        ys.append(_forward(layer, size)(xs[row].tolist(), *parameters, epsilon))
    ours = torch.tensor(ys, dtype=torch.float64)
    ours = ours if normalization.axis == "features" else ours.T
    if layer == "LayerNorm":
        reference = functional.layer_norm(x, (size,), gamma, beta, eps=epsilon)
    else:
        reference = functional.batch_norm(x, None, None, gamma, beta, training=True, eps=epsilon)
    assert float((ours - reference).abs().max() / reference.abs().max()) <= RELATIVE


@given(
    layer=st.sampled_from(sorted(LAYERS)),
    form=st.sampled_from(["textbook", "derived"]),
    size=st.integers(2, 6),
    rows=st.integers(1, 4),
    epsilon=st.sampled_from(EPSILONS),
    seed=st.integers(0, 2**31 - 1),
)
def test_the_forms_match_autograd_in_float64(layer, form, size, rows, epsilon, seed):
    case = _case(layer, rows, size, seed)
    assert _relative_error(LAYERS[layer], form, case, epsilon) <= RELATIVE


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_the_other_axis_fails_against_autograd(layer):
    """The same formula normalised along the wrong axis (a square input, so only the values can tell)."""
    right = LAYERS[layer]
    swapped = dataclasses.replace(right, axis="batch" if right.axis == "features" else "features")
    for seed in range(3):
        case = _case(layer, 4, 4, seed)
        assert _relative_error(right, "textbook", case, 0.1) <= RELATIVE
        assert _relative_error(swapped, "textbook", case, 0.1) > 1e-3


@pytest.mark.parametrize("layer, mistake", MUTANTS)
def test_a_wrong_textbook_form_fails_against_autograd(layer, mistake, monkeypatch):
    name = f"{layer}.input_gradient"
    broken = dataclasses.replace(norm_facts()[name], textbook=_wrong_textbooks(LAYERS[layer])[mistake])
    monkeypatch.setitem(norm_facts(), name, broken)
    _evaluator.cache_clear()
    try:
        errors = [_relative_error(LAYERS[layer], "textbook", _case(layer, 3, 4, seed), 0.1) for seed in range(3)]
    finally:
        _evaluator.cache_clear()
    assert max(errors) > 1e-3, errors
