"""Pooling (max, average; 1d and 2d), a residual connection, dropout with its mask as an input and flatten in
index form: each backward taken by ``sympy.diff`` and proved equal to the form a textbook writes, with the
machinery of ``_conv.py`` (0-based indices, as torch's; ``LayerFact``, ``summed``). And the one table of
every such fact, ``layer_facts_beyond_dense``.

    MaxPool   y[c,t] = max_k x[c, s t + k]          ∂L/∂x[c,i] = Σ_t Σ_k g[c,t] δ(i, s t + k) 𝟙[x[c,i] = y[c,t]]
    AvgPool   y[c,t] = (1/K) Σ_k x̃[c, s t + k]      ∂L/∂x[c,i] = Σ_t Σ_k (g[c,t]/K) δ(i + P, s t + k)
    Residual  y[i] = x[i] + Σ_k W[i,k] σ(x[k])       ∂L/∂x[j] = g[j] + σ'(x[j]) Σ_i W[i,j] g[i]   (g + J_Fᵀ g)
    Dropout   y[j] = m[j] x[j] / (1 − p)             ∂L/∂x[j] = m[j] g[j] / (1 − p)
    Flatten   y[c L₁ L₂ + i₁ L₂ + i₂] = x[c,i₁,i₂]   ∂L/∂x[c,i₁,i₂] = g[c L₁ L₂ + i₁ L₂ + i₂]   (the reshape back)

Max-pooling routes each g[c,t] to the entry of its window that is the window's maximum; where windows
overlap (stride < kernel) an entry that is the maximum of several receives the sum of their g's (the Σ_t).
SymPy's derivative of Max is a product of Heavisides, 1 at the maximum where the values are distinct; at a
tie SymPy's Heaviside(0) is 1/2 while torch routes all of g to the first maximum of the window, so nothing is
claimed at ties: the max-pooling facts are proved at concrete sizes, on seeded draws of distinct values (the
gradient symbolic in g). A max over a window cannot stand at a symbolic kernel size in SymPy (``WindowMax``
prints it), so these facts have no symbolic proof; neither has flatten's (its index map's range needs a
bound SymPy does not find), proved at concrete sizes only. Average pooling counts the padding in its divisor
K (torch's count_include_pad=True). The residual block's F is a dense layer after an activation σ, any
element-wise one (the numeric checks give it tanh).
"""

from __future__ import annotations

import functools

import sympy
from sympy import IndexedBase, KroneckerDelta, Sum

from ._conv import (
    C_in,
    Indicator,
    LayerFact,
    Name,
    WindowMax,
    axes,
    c,
    conv_facts,
    expanded,
    g,
    index,
    limits,
    make_fact,
    padded_input,
    point,
    primed,
    product,
    size,
    x,
    x_padded,
)

pooled = IndexedBase("y")  # a pooling's output, the name its textbook form reads the window's max by
W, m = IndexedBase("W"), IndexedBase("m")  # the residual branch's weights, dropout's mask (0 or 1)
sigma = sympy.Function("sigma")  # the residual branch's activation
n = size("n")  # the width of a residual block or a dropout layer
p = sympy.Symbol("p", positive=True)  # dropout's probability of dropping an entry
i, j, k, u = index("i"), index("j"), index("k"), index("u")

POOL_SIZES = {  # (C, per axis (L, K, s, P)): overlapping windows (s < K) among them
    "MaxPool1d": ((1, ((5, 2, 2, 0),)), (2, ((6, 3, 1, 0),)), (1, ((7, 3, 2, 0),))),
    "MaxPool2d": ((1, ((4, 2, 2, 0),) * 2), (1, ((4, 3, 1, 0), (3, 2, 1, 0))), (2, ((3, 2, 1, 0),) * 2)),
    "AvgPool1d": ((1, ((5, 3, 1, 1),)), (2, ((6, 2, 2, 0),)), (1, ((7, 3, 2, 1),))),
    "AvgPool2d": ((1, ((4, 2, 2, 0),) * 2), (1, ((4, 3, 2, 1), (3, 2, 1, 1))), (2, ((3, 2, 1, 0),) * 2)),
}
WIDTHS = (2, 3, 4)  # the concrete widths of the residual, dropout facts
FLATTEN_SIZES = ((1, 2, 3), (2, 2, 2), (3, 1, 2))  # (C, L₁, L₂)
DRAWS = 3  # draws of distinct values per concrete size for the max-pooling facts


def _windows(along, channel, ts, ks, base=x):
    """base[channel, s t + k] along each axis."""
    return base[(channel, *(axis.stride * t + kk for axis, t, kk in zip(along, ts, ks, strict=True)))]


def max_pool_fact(dimensions: int, routed: bool = True) -> LayerFact:
    """MaxPool's input gradient; ``routed`` False spreads g over the whole window (a planted mistake)."""
    along = axes(dimensions)
    layer = f"MaxPool{dimensions}d"
    ts, ks, positions = ([getattr(axis, f) for axis in along] for f in ("output", "offset", "position"))
    kernels = [axis.kernel for axis in along]

    def window_max(channel, outs, offsets):
        return WindowMax(_windows(along, channel, outs, offsets), *limits(offsets, kernels))

    placeholders = [axis.placeholder for axis in along]
    output = Name(pooled, (c, *placeholders), window_max(c, placeholders, ks))
    forward = sympy.Eq(pooled[(c, *ts)], window_max(c, ts, ks))
    c_, ts_, ks_ = primed(c), [primed(t) for t in ts], [primed(kk) for kk in ks]
    loss = Sum(g[(c_, *ts_)] * window_max(c_, ts_, ks_), (c_, 0, C_in - 1), *limits(ts_, [a.outputs for a in along]))
    at_window = product(KroneckerDelta(axis.position, axis.stride * axis.output + axis.offset) for axis in along)
    at_maximum = Indicator(sympy.Eq(x[(c, *positions)], pooled[(c, *ts)])) if routed else sympy.S.One
    textbook = Sum(g[(c, *ts)] * at_window * at_maximum, *limits(ts, [a.outputs for a in along]), *limits(ks, kernels))
    ranges = [(c, C_in), *((position, axis.length) for position, axis in zip(positions, along, strict=True))]
    sizes = [point(along, shapes, C=channels) for channels, shapes in POOL_SIZES[layer]]
    wrt = x[(c, *positions)]
    return make_fact(f"{layer}.input_gradient", forward, loss, wrt, textbook, (output,), ranges, sizes, False, DRAWS)


def avg_pool_fact(dimensions: int) -> LayerFact:
    """AvgPool's input gradient: g[c,t]/K to each entry of window t (padding counted in K, as torch does)."""
    along = axes(dimensions)
    layer = f"AvgPool{dimensions}d"
    ts, ks, positions = ([getattr(axis, f) for axis in along] for f in ("output", "offset", "position"))
    kernels = [axis.kernel for axis in along]
    padding = padded_input(along, x, c, x_padded)

    def average(channel, outs, offsets):
        return Sum(_windows(along, channel, outs, offsets, x_padded), *limits(offsets, kernels)) / product(kernels)

    forward = sympy.Eq(pooled[(c, *ts)], average(c, ts, ks))
    c_, ts_, ks_ = primed(c), [primed(t) for t in ts], [primed(kk) for kk in ks]
    loss = Sum(
        g[(c_, *ts_)] * expanded(average(c_, ts_, ks_), (padding,)),
        (c_, 0, C_in - 1),
        *limits(ts_, [a.outputs for a in along]),
    )
    at_window = product(
        KroneckerDelta(axis.position + axis.padding, axis.stride * axis.output + axis.offset) for axis in along
    )
    textbook = Sum(
        g[(c, *ts)] / product(kernels) * at_window, *limits(ts, [a.outputs for a in along]), *limits(ks, kernels)
    )
    ranges = [(c, C_in), *((position, axis.length) for position, axis in zip(positions, along, strict=True))]
    sizes = [point(along, shapes, C=channels) for channels, shapes in POOL_SIZES[layer]]
    return make_fact(f"{layer}.input_gradient", forward, loss, x[(c, *positions)], textbook, (padding,), ranges, sizes)


def _widths():
    return [((n, width),) for width in WIDTHS]


def residual_fact(skip: bool = True) -> LayerFact:
    """y = x + F(x), F(x) = W σ(x): ∂L/∂x = g + J_Fᵀ g; ``skip`` False drops g (a planted mistake)."""
    branch = Sum(W[i, k] * sigma(x[k]), (k, 0, n - 1))
    forward = sympy.Eq(pooled[i], x[i] + branch)
    i_, k_ = primed(i), primed(k)
    loss = Sum(g[i_] * (x[i_] + Sum(W[i_, k_] * sigma(x[k_]), (k_, 0, n - 1))), (i_, 0, n - 1))
    through_branch = sympy.Derivative(sigma(x[j]), x[j]) * Sum(W[i, j] * g[i], (i, 0, n - 1))
    textbook = (g[j] if skip else 0) + through_branch
    return make_fact("Residual.input_gradient", forward, loss, x[j], textbook, (), [(j, n)], _widths())


def dropout_fact(scaled: bool = True) -> LayerFact:
    """y = m ⊙ x/(1 − p), the mask m an input: ∂L/∂x = m ⊙ g/(1 − p); ``scaled`` False forgets 1/(1 − p)."""
    forward = sympy.Eq(pooled[j], m[j] * x[j] / (1 - p))
    j_ = primed(j)
    loss = Sum(g[j_] * m[j_] * x[j_] / (1 - p), (j_, 0, n - 1))
    textbook = m[j] * g[j] / (1 - p) if scaled else m[j] * g[j]
    return make_fact("Dropout.input_gradient", forward, loss, x[j], textbook, (), [(j, n)], _widths())


def flatten_fact() -> LayerFact:
    """Flatten (C, L₁, L₂) → C L₁ L₂ (row-major, as torch's): its backward reads g back at the same index."""
    first, second = axes(2)
    lengths = (first.length, second.length)
    positions = (first.position, second.position)

    def flat(channel, one, two):
        return channel * first.length * second.length + one * second.length + two

    c_, positions_ = primed(c), [primed(position) for position in positions]
    flattened = Sum(
        x[(c_, *positions_)] * KroneckerDelta(u, flat(c_, *positions_)),
        (c_, 0, C_in - 1),
        *limits(positions_, lengths),
    )
    forward = sympy.Eq(pooled[flat(c, *positions)], x[(c, *positions)])
    u_ = primed(u)
    loss = Sum(g[u_] * flattened.xreplace({u: u_}), (u_, 0, C_in * first.length * second.length - 1))
    ranges = [(c, C_in), *zip(positions, lengths, strict=True)]
    sizes = [((C_in, channels), (first.length, one), (second.length, two)) for channels, one, two in FLATTEN_SIZES]
    textbook = g[flat(c, *positions)]
    return make_fact("Flatten.input_gradient", forward, loss, x[(c, *positions)], textbook, (), ranges, sizes, False)


@functools.cache
def pool_facts() -> dict[str, LayerFact]:
    """The pooling, residual, dropout and flatten facts, keyed ``Layer.fact``, derived once."""
    made = [max_pool_fact(1), max_pool_fact(2), avg_pool_fact(1), avg_pool_fact(2)]
    made += [residual_fact(), dropout_fact(), flatten_fact()]
    return {fact.name: fact for fact in made}


@functools.cache
def layer_facts_beyond_dense() -> dict[str, LayerFact]:
    """Every backward fact of the layers beyond dense ones (convolution, pooling, residual, dropout, flatten),
    keyed ``Layer.fact``: built when first asked, not at import."""
    return {**conv_facts(), **pool_facts()}
