"""The numbers on a page (``Derivation.evaluate`` / ``intermediates``) at saturation, against mpmath.

Each reference is the network written from its definitions in mpmath, at a precision that covers the
cancellation (50 digits beyond the gap's own), differentiated with mpmath.diff; nothing of chainrule's.
"""

from __future__ import annotations

import re
import time

import mpmath
import pytest

from symbolic import Network, derive


def _sigmoid_bce(w, y=0):
    a = 1 / (1 + mpmath.exp(-w))
    return -(y * mpmath.log(a) + (1 - y) * mpmath.log(1 - a))


def _softmax_bce(w, y=(0, 1)):
    z = [w, mpmath.mpf(0)]
    total = mpmath.fsum(mpmath.exp(v) for v in z)
    a = [mpmath.exp(v) / total for v in z]
    return -mpmath.fsum(t * mpmath.log(p) + (1 - t) * mpmath.log(1 - p) for p, t in zip(a, y))


def _close(ours: float, exact, digits: int = 15) -> bool:
    return abs(mpmath.mpf(ours) - exact) <= mpmath.mpf(10) ** -digits * max(abs(exact), mpmath.mpf(10) ** -300)


@pytest.mark.parametrize("closed_form", [False, True])
@pytest.mark.parametrize("w", [46, 50, 100, 1000, 10_000])
def test_sigmoid_bce_loss_and_gradient_exact(w, closed_form):
    """x = 1, y = 0, W1 = w: L = −log(1 − σ(w)) ≈ w, ∂L/∂W1 = σ(w) (the page showed 46.035 at w = 46;
    w = 10⁴ needs about 4,400 digits: the precision must grow past its first two runs)."""
    result = derive(Network([1, 1], "sigmoid", "bce")).evaluate(
        {"x": [[1]], "y": [[0]], "W1": [[w]]}, closed_form=closed_form
    )
    with mpmath.workdps(60 + int(w / 2.3)):  # 1 − σ(w) = e^{−w}: w / ln 10 digits cancel
        loss = _sigmoid_bce(mpmath.mpf(w))
    with mpmath.workdps(60):  # −log(1 − σ(w)) = log1p(e^w), without the cancellation
        gradient = mpmath.diff(lambda v: mpmath.log1p(mpmath.exp(v)), mpmath.mpf(w))
    assert isinstance(result["loss"], float)
    assert _close(result["loss"], loss), (result["loss"], loss)
    assert _close(result["W1"][0][0], gradient), (result["W1"], gradient)


def test_softmax_bce_at_a_gap_of_46():
    """The page showed ∂L/∂W⁽¹⁾ = [2, −2.0721]ᵀ (exact [2, −2]) and a wrong loss."""
    derivation = derive(Network([1, 2], "softmax", "bce"))
    values = {"x": [[1]], "y": [[0], [1]], "W1": [[46], [0]]}
    result = derivation.evaluate(values)
    with mpmath.workdps(110):
        loss = _softmax_bce(mpmath.mpf(46))
        gradient = [mpmath.diff(_softmax_bce, mpmath.mpf(46)), None]
        gradient[1] = mpmath.diff(lambda v: _softmax_bce_second(v), mpmath.mpf(0))
    assert _close(result["loss"], loss)
    assert _close(result["W1"][0][0], gradient[0]) and _close(result["W1"][1][0], gradient[1]), result["W1"]
    # the page shows those numbers (5 significant digits)
    page = derivation.text(values=values)
    shown = re.search(r"∂L/∂W⁽¹⁾ = \[(.*)\]ᵀ", page).group(1).split(", ")
    assert [float(v.replace("−", "-")) for v in shown] == [float(f"{float(g):.5g}") for g in gradient]
    assert f"L = {float(loss):.5g}" in page


def _softmax_bce_second(v):
    """The loss as a function of W1[2] at W1 = (46, v)."""
    z = [mpmath.mpf(46), v]
    total = mpmath.fsum(mpmath.exp(u) for u in z)
    a = [mpmath.exp(u) / total for u in z]
    return -mpmath.fsum(t * mpmath.log(p) + (1 - t) * mpmath.log(1 - p) for p, t in zip(a, (0, 1)))


def test_softmax_bce_intermediates_exact():
    """δ = ∂L/∂z at a gap of 46, from the chain rule as the page writes it: exact through the cancellation."""
    named = derive(Network([1, 2], "softmax", "bce")).intermediates({"x": [[1]], "y": [[0], [1]], "W1": [[46], [0]]})
    with mpmath.workdps(110):
        exact = mpmath.diff(_softmax_bce, mpmath.mpf(46))
    assert _close(named["delta1"][0][0], exact)


def _gelu(z):
    return z * (1 + mpmath.erf(z / mpmath.sqrt(2))) / 2


@pytest.mark.parametrize("scale", [100, 1000])
def test_gelu_far_out_is_exact_and_quick(scale):
    """gelu at pre-activations of ±100 and ±1000 took 10 s to minutes (erf at SymPy's adaptive precision)."""
    derivation = derive(Network([1, 2, 1], ["gelu", "identity"], "half_sse"))
    values = {"x": [[1]], "y": [[0.5]], "W1": [[scale], [-scale / 40]], "W2": [[1.0, -3.0]]}
    start = time.perf_counter()
    result = derivation.evaluate(values)
    named = derivation.intermediates(values)
    assert time.perf_counter() - start < 1.0

    def loss(w1, w2):
        a = [_gelu(w1), _gelu(w2)]
        return (a[0] - 3 * a[1] - mpmath.mpf("0.5")) ** 2 / 2

    with mpmath.workdps(60 + scale):
        w = (mpmath.mpf(scale), mpmath.mpf(-scale) / 40)
        assert _close(result["loss"], loss(*w))
        assert _close(result["W1"][0][0], mpmath.diff(lambda v: loss(v, w[1]), w[0]))
        assert _close(result["W1"][1][0], mpmath.diff(lambda v: loss(w[0], v), w[1]))
        assert _close(named["a1"][1][0], _gelu(w[1]))
