"""Saturated output layers: the compiled gradients against a reference written independently in mpmath.

The reference writes the network's forward pass and loss from their textbook definitions (σ = 1/(1 + e^−z),
softmax = e^z / Σ e^z, bce = −[y log ŷ + (1 − y) log(1 − ŷ)], ...) with no rearrangement, and evaluates them
at a precision large enough that no cancellation matters (50 digits beyond the logit gap's own); mpmath.diff
differentiates it. Every loss that takes the log of a saturating output is drawn, with both reductions.
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


def _reference_loss(activation: str, loss: str, reduction: str, weights: list) -> mpmath.mpf:
    """The batch loss from the definitions, in mpmath at the current precision."""
    total = mpmath.mpf(0)
    for sample in range(len(X[0])):
        z = [w * mpmath.mpf(X[0][sample]) for w in weights]
        y = [mpmath.mpf(row[sample]) for row in Y]
        if activation == "sigmoid":
            out = [1 / (1 + mpmath.exp(-v)) for v in z]
        elif activation == "softmax":
            out = [mpmath.exp(v) / mpmath.fsum(mpmath.exp(u) for u in z) for v in z]
        else:
            out = z
        n = len(z)
        if loss in ("bce", "mean_bce"):
            terms = [-(t * mpmath.log(p) + (1 - t) * mpmath.log(1 - p)) for p, t in zip(out, y)]
        elif loss == "cross_entropy":
            terms = [-t * mpmath.log(p) for p, t in zip(out, y)]
        elif loss == "softmax_cross_entropy":
            softmax = [mpmath.exp(v) / mpmath.fsum(mpmath.exp(u) for u in out) for v in out]
            terms = [-t * mpmath.log(p) for p, t in zip(softmax, y)]
        else:  # bce_with_logits: bce of σ(z)
            terms = [
                -(t * mpmath.log(1 / (1 + mpmath.exp(-v))) + (1 - t) * mpmath.log(1 - 1 / (1 + mpmath.exp(-v))))
                for v, t in zip(out, y)
            ]
        per_sample = mpmath.fsum(terms) / (n if loss.startswith("mean_") else 1)
        total += per_sample
    return total / len(X[0]) if reduction == "mean" else total


@functools.cache
def reference(activation: str, loss: str, reduction: str, gap: float) -> tuple[float, tuple[float, ...]]:
    """(loss, ∂L/∂W1 entries), exact to 50 digits: the precision covers the gap's cancellation (1 − σ(gap))."""
    with mpmath.workdps(60 + int(gap / 2.3)):
        weights = [mpmath.mpf(row[0]) for row in _weights(gap)]
        value = _reference_loss(activation, loss, reduction, weights)
        gradient = []
        for unit in range(len(weights)):

            def along(w, unit=unit):
                return _reference_loss(activation, loss, reduction, [*weights[:unit], w, *weights[unit + 1 :]])

            gradient.append(float(mpmath.diff(along, weights[unit])))
        return float(value), tuple(gradient)


@functools.cache
def compiled(activation: str, loss: str, reduction: str, form: str):
    return compile_gradients(derive(Network([1, 3], activation, loss, reduction=reduction)), form=form)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gap", GAPS)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("activation, loss", PAIRINGS)
def test_matrix_form_exact_at_saturation(activation, loss, reduction, gap, dtype):
    function = compiled(activation, loss, reduction, "matrix")
    x, y = torch.tensor(X, dtype=dtype), torch.tensor(Y, dtype=dtype)
    ours = function(x, y, {"W1": torch.tensor(_weights(gap), dtype=dtype)})["W1"].double().flatten()
    _, exact = reference(activation, loss, reduction, gap)
    exact = torch.tensor(exact, dtype=torch.float64)
    assert torch.isfinite(ours).all(), (ours, exact)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, exact, rtol=tolerance, atol=tolerance * float(exact.abs().max()))
