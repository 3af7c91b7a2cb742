"""Convolution, pooling, residual, dropout and flatten: the backward ``symbolic/_conv.py`` and ``_pool.py``
derive, against SymPy and torch.

Each fact is proved equal to its textbook form at symbolic sizes (``proves``; concrete sizes for max-pooling
and flatten, whose sums SymPy cannot do symbolically) and at three or four concrete sizes (``proves_at``: the
loss written out in plain symbols and differentiated entry by entry). Then the definitions (the forward) and
the textbook and derived forms, evaluated in float64 on hypothesis-drawn sizes, strides, paddings, channels
and values, are compared with torch's functional layers and autograd. Planted mistakes (the kernel not
flipped, the stride ignored, max-pool's gradient spread over the window, the residual's skip term dropped,
dropout's 1/(1 − p) forgotten) must fail both the proofs and the comparison.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional

from symbolic import _conv, _pool
from symbolic._pool import layer_facts_beyond_dense

FACTS = sorted(layer_facts_beyond_dense())
RELATIVE = 1e-10
DRAWN = settings(max_examples=15, deadline=None)


def _timed(check, limit: float = 15.0):
    start = time.perf_counter()
    result = check()
    assert time.perf_counter() - start < limit, "a proof must stay fast"
    return result


# --- SymPy: derived by diff, proved equal to the textbook form ----------------------------------------------


@pytest.mark.parametrize("name", FACTS)
def test_each_fact_is_its_textbook_form(name):
    assert _timed(layer_facts_beyond_dense()[name].proves)


@pytest.mark.parametrize("name", FACTS)
def test_each_fact_is_its_textbook_form_at_concrete_sizes(name):
    fact = layer_facts_beyond_dense()[name]
    assert len(set(fact.sizes)) >= 3
    for point in fact.sizes:
        assert _timed(lambda point=point: fact.proves_at(point)), point


def test_the_symbolic_proofs_are_at_symbolic_stride_and_padding():
    """Convolution and average pooling are proved by SymPy with s and P symbols, not only at numbers; and their
    concrete sizes include stride 2 and padding 1."""
    facts = layer_facts_beyond_dense()
    for name in ("Conv1d.input_gradient", "Conv2d.input_gradient", "AvgPool1d.input_gradient"):
        fact = facts[name]
        assert fact.derived is not None
        textbook = _conv.expanded(fact.textbook, fact.names)
        assert any(symbol.name.startswith("s") for symbol in textbook.free_symbols if type(symbol) is sympy.Symbol)
        assert any(symbol.name.startswith("P") for symbol in textbook.free_symbols if type(symbol) is sympy.Symbol)
        points = [{symbol.name: value for symbol, value in point} for point in fact.sizes]
        assert any(point.get("s", point.get("s_1")) == 2 and point.get("P", point.get("P_1")) == 1 for point in points)


def test_the_printed_forms_read_as_a_textbook_writes_them():
    """The kernel is visibly flipped (K − 1 − k), x̃ and ĝ are named, the max-pool gradient reads by the
    window's max, the residual's two terms both show."""
    facts = layer_facts_beyond_dense()
    assert "{W}_{o,c,K - k - 1}" in sympy.latex(facts["Conv1d.input_gradient"].textbook)
    assert "{W}_{o,c,K_{1} - k_{1} - 1,K_{2} - k_{2} - 1}" in sympy.latex(facts["Conv2d.input_gradient"].textbook)
    assert r"\hat{g}" in sympy.latex(facts["Conv1d.input_gradient"].textbook)
    assert r"\tilde{x}" in sympy.latex(facts["Conv1d.weight_gradient"].textbook)
    assert r"\tilde{x}" in sympy.latex(facts["Conv1d.input_gradient"].forward)
    assert r"\mathbb{1}\left[{x}_{c,i} = {y}_{c,t}\right]" in sympy.latex(facts["MaxPool1d.input_gradient"].textbook)
    assert r"\max_{0 \le k \le K - 1}" in sympy.latex(facts["MaxPool1d.input_gradient"].forward)
    residual = sympy.latex(facts["Residual.input_gradient"].textbook)
    assert "{g}_{j}" in residual and r"\sigma" in residual


def test_the_table_is_built_when_asked_not_at_import():
    code = (
        "import symbolic._pool as pool, symbolic._conv as conv\n"
        "assert pool.layer_facts_beyond_dense.cache_info().currsize == 0\n"
        "assert conv.conv_facts.cache_info().currsize == 0\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)


# --- the planted mistakes -----------------------------------------------------------------------------------


def _not_flipped(dimensions: int) -> _conv.LayerFact:
    return _conv.conv_facts_for(dimensions, textbook_kernel=lambda axis: axis.offset)[0]


def _stride_ignored(dimensions: int) -> _conv.LayerFact:
    return _conv.conv_facts_for(dimensions, stride_of=lambda axis: 1)[0]


MUTANTS = {
    "Conv1d kernel not flipped": lambda: _not_flipped(1),
    "Conv2d kernel not flipped": lambda: _not_flipped(2),
    "Conv1d stride ignored": lambda: _stride_ignored(1),
    "Conv2d stride ignored": lambda: _stride_ignored(2),
    "MaxPool1d gradient spread over the window": lambda: _pool.max_pool_fact(1, routed=False),
    "MaxPool2d gradient spread over the window": lambda: _pool.max_pool_fact(2, routed=False),
    "Residual skip term dropped": lambda: _pool.residual_fact(skip=False),
    "Dropout 1/(1 − p) forgotten": lambda: _pool.dropout_fact(scaled=False),
}


@pytest.mark.parametrize("mistake", sorted(MUTANTS))
def test_a_planted_mistake_fails_the_proofs(mistake):
    broken = MUTANTS[mistake]()
    right = layer_facts_beyond_dense()[broken.name]
    assert _conv.expanded(broken.textbook, broken.names) != _conv.expanded(right.textbook, right.names)
    assert not _timed(broken.proves)
    failing = [point for point in broken.sizes if not broken.proves_at(point)]
    assert len(failing) >= 2, failing  # the stride mistake holds where s = 1: it must fail at the others


# --- torch: the definitions and the forms in float64 --------------------------------------------------------


@functools.cache
def _evaluator(fact: _conv.LayerFact, form: str):
    return fact.evaluator(form, {_pool.sigma: sympy.tanh})


def _entries(fact: _conv.LayerFact, form: str, point: _conv.Point, **arrays) -> np.ndarray:
    """The fact's ``form`` at every entry of its ``wrt``, the arrays (x, W, g, ...) as numpy float64."""
    evaluate = _evaluator(fact, form)
    shape = [int(extent.xreplace(dict(point))) for _, extent in fact.ranges]
    values = {name: value.detach().numpy() if torch.is_tensor(value) else value for name, value in arrays.items()}
    values |= {symbol.name: number for symbol, number in point}
    result = np.zeros(shape)
    for indices in fact.entries(point):
        result[tuple(indices.values())] = evaluate(**values, **{symbol.name: u for symbol, u in indices.items()})
    return result


def _outputs(fact: _conv.LayerFact, point: _conv.Point, **arrays) -> np.ndarray:
    """The layer's forward definition (its right side) at every output entry, the left side's indices."""
    evaluate = _evaluator(fact, "forward")
    at = {symbol.name: number for symbol, number in point}
    extents = {"o": "O", "c": "C", "t": "T", "t_1": "T_1", "t_2": "T_2", "i": "n", "j": "n"}
    outputs = list(fact.forward.lhs.indices)
    shape = [at[extents[u.name]] for u in outputs]
    values = {name: value.detach().numpy() if torch.is_tensor(value) else value for name, value in arrays.items()}
    result = np.zeros(shape)
    for indices in np.ndindex(*shape):
        result[indices] = evaluate(**values, **at, **{u.name: int(v) for u, v in zip(outputs, indices, strict=True)})
    return result


def _error(ours: np.ndarray, reference: torch.Tensor) -> float:
    reference = reference.detach().numpy()
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), 1e-300))


def _random(generator, *shape):
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


axis_shapes = st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(0, 2), st.integers(0, 3)).map(
    lambda drawn: (drawn[0] + drawn[3], drawn[0], drawn[1], drawn[2])  # (L ≥ K, K, s, P)
)


def _conv_case(dimensions: int, channels: int, outs: int, shapes, seed: int):
    generator = torch.Generator().manual_seed(seed)
    lengths = [shape[0] for shape in shapes]
    kernels = [shape[1] for shape in shapes]
    x = _random(generator, channels, *lengths).requires_grad_()
    weight = _random(generator, outs, channels, *kernels).requires_grad_()
    bias = _random(generator, outs).requires_grad_()
    convolve = functional.conv1d if dimensions == 1 else functional.conv2d
    strides, paddings = tuple(shape[2] for shape in shapes), tuple(shape[3] for shape in shapes)
    y = convolve(x[None], weight, bias, stride=strides, padding=paddings)[0]
    upstream = _random(generator, *y.shape)
    (y * upstream).sum().backward()
    point = _conv.point(_conv.axes(dimensions), tuple(shapes), C=channels, O=outs)
    return point, dict(x=x, W=weight, b=bias, g=upstream), y, (x.grad, weight.grad, bias.grad)


def _conv_errors(facts: dict, dimensions: int, case, form: str = "textbook") -> list[float]:
    point, arrays, _, references = case
    keys = ("input_gradient", "weight_gradient", "bias_gradient")
    return [
        _error(_entries(facts[f"Conv{dimensions}d.{key}"], form, point, **arrays), reference)
        for key, reference in zip(keys, references, strict=True)
    ]


@DRAWN
@given(
    dimensions=st.sampled_from([1, 2]),
    channels=st.integers(1, 2),
    outs=st.integers(1, 2),
    shapes=st.lists(axis_shapes, min_size=2, max_size=2),
    form=st.sampled_from(["textbook", "derived"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_convolution_matches_torch(dimensions, channels, outs, shapes, form, seed):
    """The definition is conv1d/conv2d's forward (0-based, cross-correlation, zero padding, T = ⌊(L + 2P −
    K)/s⌋ + 1), and ∂L/∂x, ∂L/∂W, ∂L/∂b are autograd's."""
    case = _conv_case(dimensions, channels, outs, shapes[:dimensions], seed)
    point, arrays, y, _ = case
    facts = layer_facts_beyond_dense()
    assert _error(_outputs(facts[f"Conv{dimensions}d.input_gradient"], point, **arrays), y) <= RELATIVE
    assert max(_conv_errors(facts, dimensions, case, form)) <= RELATIVE


def _pool_case(kind: str, dimensions: int, channels: int, shapes, seed: int):
    generator = torch.Generator().manual_seed(seed)
    lengths = [shape[0] for shape in shapes]
    count = channels * int(np.prod(lengths))
    # distinct values (a permutation, scaled): max-pooling's facts claim nothing at ties
    x = (torch.randperm(count, generator=generator).to(torch.float64) / count - 0.5).reshape(channels, *lengths)
    x.requires_grad_()
    kernels, strides = tuple(shape[1] for shape in shapes), tuple(shape[2] for shape in shapes)
    paddings = tuple(min(shape[3], shape[1] // 2) for shape in shapes) if kind == "Avg" else (0,) * dimensions
    pool = getattr(functional, f"{kind.lower()}_pool{dimensions}d")
    y = pool(x[None], kernels, strides, paddings)[0]
    upstream = _random(generator, *y.shape)
    (y * upstream).sum().backward()
    along = _conv.axes(dimensions)
    shapes = tuple(
        (length, kernel, stride, padding)
        for length, kernel, stride, padding in zip(lengths, kernels, strides, paddings)
    )
    return _conv.point(along, shapes, C=channels), dict(x=x, g=upstream), y, x.grad


@DRAWN
@given(
    kind=st.sampled_from(["Max", "Avg"]),
    dimensions=st.sampled_from([1, 2]),
    channels=st.integers(1, 2),
    shapes=st.lists(axis_shapes, min_size=2, max_size=2),
    seed=st.integers(0, 2**31 - 1),
)
def test_pooling_matches_torch(kind, dimensions, channels, shapes, seed):
    """The definition is max_pool/avg_pool's forward, and the textbook gradient (and avg-pool's derived one) is
    autograd's, overlapping windows (s < K) included."""
    point, arrays, y, reference = _pool_case(kind, dimensions, channels, shapes[:dimensions], seed)
    fact = layer_facts_beyond_dense()[f"{kind}Pool{dimensions}d.input_gradient"]
    assert _error(_outputs(fact, point, **arrays), y) <= RELATIVE
    for form in ("textbook",) if fact.derived is None else ("textbook", "derived"):
        assert _error(_entries(fact, form, point, **arrays), reference) <= RELATIVE


def test_overlapping_max_pool_windows_add_their_gradients():
    """x = (0, 5, 1, 2), K = 3, s = 1: 5 is the max of both windows, so it receives g₀ + g₁ (torch agrees)."""
    x = torch.tensor([[0.0, 5.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    upstream = torch.tensor([[0.3, -1.7]], dtype=torch.float64)
    (functional.max_pool1d(x[None], 3, 1)[0] * upstream).sum().backward()
    fact = layer_facts_beyond_dense()["MaxPool1d.input_gradient"]
    point = _conv.point(_conv.axes(1), ((4, 3, 1, 0),), C=1)
    ours = _entries(fact, "textbook", point, x=x, g=upstream)
    assert _error(ours, x.grad) <= RELATIVE
    assert ours[0, 1] == pytest.approx(float(upstream.sum()), rel=RELATIVE)
    assert np.count_nonzero(ours) == 1


@DRAWN
@given(width=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_residual_matches_torch(width, seed):
    """y = x + W tanh(x): ∂L/∂x = g + J_Fᵀ g is autograd's."""
    generator = torch.Generator().manual_seed(seed)
    x, weight, upstream = _random(generator, width), _random(generator, width, width), _random(generator, width)
    x.requires_grad_()
    y = x + weight @ torch.tanh(x)
    (y * upstream).sum().backward()
    fact = layer_facts_beyond_dense()["Residual.input_gradient"]
    point = ((_pool.n, width),)
    assert _error(_outputs(fact, point, x=x, W=weight), y) <= RELATIVE
    for form in ("textbook", "derived"):
        assert _error(_entries(fact, form, point, x=x, W=weight, g=upstream), x.grad) <= RELATIVE


def _dropout_case(width: int, probability: float, seed: int):
    """torch's own dropout (a seeded mask), the mask read back from its output (x has no zero)."""
    generator = torch.Generator().manual_seed(seed)
    x = (_random(generator, width).abs() + 0.1).requires_grad_()
    upstream = _random(generator, width)
    with torch.random.fork_rng():  # torch's global generator draws the mask: seeded here, left as it was after
        torch.manual_seed(seed)
        y = functional.dropout(x, probability, training=True)
    (y * upstream).sum().backward()
    mask = (y != 0).to(torch.float64)
    return ((_pool.n, width),), dict(x=x, g=upstream, m=mask, p=probability), y, x.grad


@DRAWN
@given(width=st.integers(1, 6), probability=st.sampled_from([0.1, 0.5, 0.8]), seed=st.integers(0, 2**31 - 1))
def test_dropout_matches_torch(width, probability, seed):
    point, arrays, y, reference = _dropout_case(width, probability, seed)
    fact = layer_facts_beyond_dense()["Dropout.input_gradient"]
    assert _error(_outputs(fact, point, **arrays), y) <= RELATIVE
    for form in ("textbook", "derived"):
        assert _error(_entries(fact, form, point, **arrays), reference) <= RELATIVE


@DRAWN
@given(channels=st.integers(1, 3), first=st.integers(1, 3), second=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_flatten_matches_torch(channels, first, second, seed):
    generator = torch.Generator().manual_seed(seed)
    x = _random(generator, channels, first, second).requires_grad_()
    y = torch.flatten(x)
    upstream = _random(generator, *y.shape)
    (y * upstream).sum().backward()
    fact = layer_facts_beyond_dense()["Flatten.input_gradient"]
    along = _conv.axes(2)
    point = ((_conv.C_in, channels), (along[0].length, first), (along[1].length, second))
    assert _error(_entries(fact, "textbook", point, g=upstream), x.grad) <= RELATIVE


# --- the planted mistakes against torch ---------------------------------------------------------------------


def _mutant_error(mistake: str) -> float:
    broken = MUTANTS[mistake]()
    layer = broken.layer
    if layer.startswith("Conv"):
        dimensions = int(layer[4])
        shapes = ((5, 3, 2, 1),) * dimensions  # stride 2, padding 1: every planted mistake shows
        point, arrays, _, (reference, *_) = _conv_case(dimensions, 2, 2, shapes, seed=1)
    elif layer.startswith("MaxPool"):
        dimensions = int(layer[7])
        point, arrays, _, reference = _pool_case("Max", dimensions, 2, ((5, 3, 2, 0),) * dimensions, seed=1)
    elif layer == "Residual":
        generator = torch.Generator().manual_seed(1)
        x, weight, upstream = _random(generator, 4), _random(generator, 4, 4), _random(generator, 4)
        x.requires_grad_()
        ((x + weight @ torch.tanh(x)) * upstream).sum().backward()
        point, arrays, reference = ((_pool.n, 4),), dict(x=x, W=weight, g=upstream), x.grad
    else:
        point, arrays, _, reference = _dropout_case(6, 0.5, seed=1)
    return _error(_entries(broken, "textbook", point, **arrays), reference)


@pytest.mark.parametrize("mistake", sorted(MUTANTS))
def test_a_planted_mistake_fails_against_torch(mistake):
    assert _mutant_error(mistake) > 1e-3
