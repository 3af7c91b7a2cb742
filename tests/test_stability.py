"""Saturated layers: at pre-activations of ±1e3 and ±1e4 the compiled gradients stay finite wherever
autograd's are, and equal them there (SymPy's own derivative of 1/(1 + e^(−z)) is NaN at z = −1000 in float64)."""

from __future__ import annotations

import pytest
import sympy
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


# --- softmax + bce: the finite form ---------------------------------------------------------------------


def _softmax_bce_reference(z_values, y_values, digits=60):
    """δ = ∂ℓ/∂z by sympy.diff of the loss written out with exp, evaluated at ``digits`` significant digits."""
    n = len(z_values)
    zs, ys = sympy.symbols(f"z1:{n + 1}", real=True), sympy.symbols(f"y1:{n + 1}", real=True)
    total = sum(sympy.exp(z) for z in zs)
    loss = -sum(
        y * sympy.log(sympy.exp(z) / total) + (1 - y) * sympy.log(1 - sympy.exp(z) / total) for z, y in zip(zs, ys)
    )
    point = {**dict(zip(zs, map(sympy.Rational, z_values))), **dict(zip(ys, map(sympy.Rational, y_values)))}
    return [float(sympy.diff(loss, z).subs(point).evalf(digits)) for z in zs]


@pytest.mark.parametrize(
    "dtype, logits, saturated",
    [
        (torch.float64, ["155", "0", "-3"], True),  # 1 − a₁ rounds to 0: the chain rule's inf · 0
        (torch.float64, ["155", "154", "-3"], False),  # large logits, a gap of 1: accuracy, not saturation
        (torch.float32, ["20", "0", "-1"], True),  # a logit gap of 20 saturates float32
        (torch.float32, ["3", "20", "-1"], True),
    ],
)
def test_softmax_bce_stays_finite_and_exact_at_saturation(dtype, logits, saturated):
    network = Network([1, 3], "softmax", "bce")
    x = torch.ones(1, 1, dtype=dtype)
    params = {"W1": torch.tensor([[float(v)] for v in logits], dtype=dtype)}
    y_values = ["1/5", "1/2", "3/10"]
    y = torch.tensor([[float(sympy.Rational(v))] for v in y_values], dtype=dtype)
    ours = compile_gradients(derive(network))(x, y, params)["W1"]
    reference = torch.tensor(_softmax_bce_reference(logits, y_values), dtype=torch.float64).reshape(3, 1)
    assert torch.isfinite(ours).all()
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours.double(), reference, rtol=tolerance, atol=tolerance)
    # what the chain rule as written (and autograd) gives there
    assert torch.isfinite(autograd_gradients(network, x, y, params)["W1"]).all() != saturated


@pytest.mark.parametrize("largest", [0, 1, 2])
def test_softmax_bce_finite_form_is_the_chain_rule(largest):
    """SymPy proves the finite form equal to the chain rule, with e^{z_k} = E_k (the identity holds for any k*)."""
    from symbolic._functions import max_mask, softmax_without_max, unit_sum

    n = 3
    exps = sympy.symbols(f"E1:{n + 1}", positive=True)
    ys = sympy.symbols(f"y1:{n + 1}", real=True)
    total = sum(exps)
    a = [e / total for e in exps]
    program = derive(Network([1, n], "softmax", "bce")).matrix_program
    steps = {step.target.name: step.expression for step in program.steps}

    def at(expression, i):
        """The matrix expression's entry for unit i, with ``largest`` as the masked unit."""
        if isinstance(expression, sympy.Symbol):
            if expression.name in ("mask_z1", "ratio_z1"):
                return at(steps[expression.name], i)
            return {"a1": a[i], "y": ys[i]}[expression.name]
        if isinstance(expression, max_mask):
            return sympy.S.One if i == largest else sympy.S.Zero
        if isinstance(expression, softmax_without_max):
            return sympy.S.Zero if i == largest else exps[i] / (total - exps[largest])
        if isinstance(expression, unit_sum):
            return sum(at(expression.args[0], k) for k in range(n))
        if not expression.args:
            return expression
        return expression.func(*(at(argument, i) for argument in expression.args))

    for i in range(n):
        # the chain rule as written: Σ_k ∂ℓ/∂a_k · ∂a_k/∂z_i, with ∂a_k/∂z_i = a_k (𝟙[k = i] − a_i)
        chain = sum((-ys[k] / a[k] + (1 - ys[k]) / (1 - a[k])) * a[k] * ((1 if k == i else 0) - a[i]) for k in range(n))
        assert sympy.cancel(at(steps["delta1"], i) - chain) == 0
