"""Saturated layers: at pre-activations of ±1e3 and ±1e4 the compiled gradients stay finite wherever
autograd's are, and equal them there (SymPy's own derivative of 1/(1 + e^(−z)) is NaN at z = −1000 in float64)."""

from __future__ import annotations

import pytest
import torch

from numeric import autograd_gradients, compile_gradients
from symbolic import Network, derive

PAIRINGS = [
    (["sigmoid", "sigmoid"], "half_sse"),
    (["tanh", "sigmoid"], "bce"),
    (["softplus", "softmax"], "cross_entropy"),
    (["relu", "identity"], "mse"),
    (["sigmoid", "tanh"], "sse"),
    (["tanh", "softplus"], "half_sse"),
]


@pytest.mark.parametrize("activations, loss", PAIRINGS)
@pytest.mark.parametrize("scale", [1e3, -1e3, 1e4, -1e4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_wherever_autograd_is_and_equal_there(activations, loss, scale, dtype):
    network = Network([2, 3, 2], activations, loss, bias=True)
    generator = torch.Generator().manual_seed(11)
    x = torch.tensor([[1.0, -1.0, 0.5], [0.5, 0.25, -1.0]], dtype=dtype)
    params = {
        # the first layer's pre-activations reach about ±scale; the second saturates too
        "W1": (scale * torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])).to(dtype),
        "b1": torch.zeros(3, 1, dtype=dtype),
        "W2": (torch.randn(2, 3, generator=generator, dtype=torch.float64) * abs(scale) / 10).to(dtype),
        "b2": torch.zeros(2, 1, dtype=dtype),
    }
    y = torch.tensor([[1.0, 0.0, 0.3], [0.0, 1.0, 0.7]], dtype=dtype)
    ours = compile_gradients(derive(network))(x, y, params)
    reference = autograd_gradients(network, x, y, params)
    compared = 0
    for name in params:
        finite = torch.isfinite(reference[name])
        # stronger than required: ours are finite everywhere, also where autograd's log(0) gives NaN
        assert torch.isfinite(ours[name]).all(), (name, ours[name], reference[name])
        torch.testing.assert_close(ours[name][finite], reference[name][finite], rtol=1e-5, atol=1e-6)
        compared += int(finite.sum())
    if loss not in ("bce", "cross_entropy"):  # without a log, autograd stays finite too
        assert compared == sum(p.numel() for p in params.values())


def test_sympy_explicit_sigmoid_derivative_would_be_nan_here():
    """The failure these tests guard against, shown on the same inputs with the naive derivative."""
    z = torch.tensor([-100.0], dtype=torch.float32)
    naive = torch.exp(-z) / (1 + torch.exp(-z)) ** 2
    a = torch.sigmoid(z)
    assert torch.isnan(naive).all() and torch.isfinite(a * (1 - a)).all()
