"""Saturated output layers: the compiled gradients against a reference written independently in mpmath.

The reference writes the network's forward pass and loss in mpmath, each log of an output written from the
logits (log σ(z) = −log1p(e^{−z}), log softmax(z)_i = z_i − log Σ e^{z_k}, ...), and mpmath.diff differentiates
it at 60 digits; a test checks that form against the textbook definitions (σ = 1/(1 + e^−z), softmax =
e^z / Σ e^z, bce = −[y log ŷ + (1 − y) log(1 − ŷ)], ...) evaluated at a precision that covers the gap.
Every loss that takes the log of a saturating output is drawn, with both reductions.
"""

from __future__ import annotations

import functools

import mpmath
import pytest
import torch

from numeric import compile_gradients
from symbolic import Network, derive

PAIRINGS = [
    ("sigmoid", "bce"),
    ("sigmoid", "mean_bce"),
    ("softmax", "bce"),
    ("softmax", "mean_bce"),
    ("softmax", "cross_entropy"),
    ("identity", "softmax_cross_entropy"),
    ("identity", "bce_with_logits"),
    ("identity", "mean_bce_with_logits"),
]
GAPS = [18, 38, 46, 100, 800, 10_000]
X = [[1.0, 0.5]]  # two samples: the logits are (gap, 0, −1) and half of them
Y = [[0.0, 0.2], [1.0, 0.5], [0.0, 0.3]]  # the largest logit's unit is the wrong one in the first sample


def _weights(gap: float) -> list[list[float]]:
    return [[float(gap)], [0.0], [-1.0]]


def _outputs_and_targets(activation: str, weights: list, sample: int):
    z = [w * mpmath.mpf(X[0][sample]) for w in weights]
    y = [mpmath.mpf(row[sample]) for row in Y]
    return z, y


def _naive_loss(activation: str, loss: str, reduction: str, weights: list) -> mpmath.mpf:
    """The batch loss from the textbook definitions, in mpmath at the current precision (which must cover
    the cancellation 1 − σ(gap): 50 digits beyond gap / ln 10)."""
    total = mpmath.mpf(0)
    for sample in range(len(X[0])):
        z, y = _outputs_and_targets(activation, weights, sample)
        if activation == "sigmoid" or loss.endswith("bce_with_logits"):
            out = [1 / (1 + mpmath.exp(-v)) for v in z]
        elif activation == "softmax" or loss == "softmax_cross_entropy":
            out = [mpmath.exp(v) / mpmath.fsum(mpmath.exp(u) for u in z) for v in z]
        if loss == "cross_entropy" or loss == "softmax_cross_entropy":
            terms = [-t * mpmath.log(p) for p, t in zip(out, y)]
        else:
            terms = [-(t * mpmath.log(p) + (1 - t) * mpmath.log(1 - p)) for p, t in zip(out, y)]
        total += mpmath.fsum(terms) / (len(z) if loss.startswith("mean_") else 1)
    return total / len(X[0]) if reduction == "mean" else total


def _log_space_loss(activation: str, loss: str, reduction: str, weights: list) -> mpmath.mpf:
    """The same loss with every log of an output written from the logits, exactly and without cancellation:
    log σ(z) = −log1p(e^{−z}), log(1 − σ(z)) = −log1p(e^{z}), log softmax(z)_i = z_i − log Σ_k e^{z_k},
    log(1 − softmax(z)_i) = log Σ_{k≠i} e^{z_k} − log Σ_k e^{z_k}. 60 digits suffice at any gap (mpmath's
    exponent is unbounded); ``test_log_space_reference_is_the_definition`` checks it against ``_naive_loss``."""
    total = mpmath.mpf(0)
    for sample in range(len(X[0])):
        z, y = _outputs_and_targets(activation, weights, sample)
        if activation == "sigmoid" or loss.endswith("bce_with_logits"):
            log_p = [-mpmath.log1p(mpmath.exp(-v)) for v in z]
            log_q = [-mpmath.log1p(mpmath.exp(v)) for v in z]
        else:
            everything = mpmath.log(mpmath.fsum(mpmath.exp(u) for u in z))
            log_p = [v - everything for v in z]
            others = [mpmath.log(mpmath.fsum(mpmath.exp(u) for k, u in enumerate(z) if k != i)) for i in range(len(z))]
            log_q = [other - everything for other in others]
        if loss == "cross_entropy" or loss == "softmax_cross_entropy":
            terms = [-t * lp for lp, t in zip(log_p, y)]
        else:
            terms = [-(t * lp + (1 - t) * lq) for lp, lq, t in zip(log_p, log_q, y)]
        total += mpmath.fsum(terms) / (len(z) if loss.startswith("mean_") else 1)
    return total / len(X[0]) if reduction == "mean" else total


def _gradient(loss_function, weights: list) -> tuple[float, ...]:
    gradient = []
    for unit in range(len(weights)):

        def along(w, unit=unit):
            return loss_function([*weights[:unit], w, *weights[unit + 1 :]])

        gradient.append(float(mpmath.diff(along, weights[unit])))
    return tuple(gradient)


@functools.cache
def reference(activation: str, loss: str, reduction: str, gap: float) -> tuple[float, ...]:
    """∂L/∂W1, exact to 50 digits (mpmath.diff of the log-space loss at 60 digits)."""
    with mpmath.workdps(60):
        weights = [mpmath.mpf(row[0]) for row in _weights(gap)]
        return _gradient(lambda w: _log_space_loss(activation, loss, reduction, w), weights)


@pytest.mark.parametrize("gap", [18, 46, 100])
@pytest.mark.parametrize("activation, loss", PAIRINGS)
def test_log_space_reference_is_the_definition(activation, loss, gap):
    """The reference's rewritten logs agree with the textbook loss evaluated at a precision covering the gap."""
    with mpmath.workdps(60 + int(gap / 2.3)):
        weights = [mpmath.mpf(row[0]) for row in _weights(gap)]
        naive = _gradient(lambda w: _naive_loss(activation, loss, "sum", w), weights)
    assert naive == pytest.approx(reference(activation, loss, "sum", gap), rel=1e-30, abs=1e-30)


@functools.cache
def compiled(activation: str, loss: str, reduction: str, form: str):
    return compile_gradients(derive(Network([1, 3], activation, loss, reduction=reduction)), form=form)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gap", GAPS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("activation, loss", PAIRINGS)
@pytest.mark.parametrize("form", ["matrix", "elementwise"])
def test_compiled_form_exact_at_saturation(form, activation, loss, reduction, gap, dtype):
    function = compiled(activation, loss, reduction, form)
    x, y = torch.tensor(X, dtype=dtype), torch.tensor(Y, dtype=dtype)
    ours = function(x, y, {"W1": torch.tensor(_weights(gap), dtype=dtype)})["W1"].double().flatten()
    exact = torch.tensor(reference(activation, loss, reduction, gap), dtype=torch.float64)
    assert torch.isfinite(ours).all(), (ours, exact)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, exact, rtol=tolerance, atol=tolerance * float(exact.abs().max()))


def test_elementwise_softmax_cross_entropy_at_large_close_logits():
    """Logits (10⁴, 10⁴ − 1, 0) in float32: both forms right to 2e-6 (e^{z_i − logsumexp(z)} was off by 2e-4 in the
    element-wise form: z_i − logsumexp keeps float32's ulp at 10⁴, 1e-3; torch.softmax of z subtracts the max)."""
    x, y = torch.ones(1, 1), torch.tensor([[0.2], [0.5], [0.3]])
    weights = torch.tensor([[1e4], [1e4 - 1], [0.0]])
    with mpmath.workdps(60):
        z = [mpmath.mpf(1e4), mpmath.mpf(1e4 - 1), mpmath.mpf(0)]
        total = mpmath.fsum(mpmath.exp(v - z[0]) for v in z)
        exact = [float(mpmath.exp(v - z[0]) / total - t) for v, t in zip(z, (0.2, 0.5, 0.3))]  # softmax − y
    for form in ("matrix", "elementwise"):
        ours = compiled("identity", "softmax_cross_entropy", "sum", form)(x, y, {"W1": weights})["W1"].flatten()
        torch.testing.assert_close(ours.double(), torch.tensor(exact, dtype=torch.float64), rtol=0, atol=2e-6)
