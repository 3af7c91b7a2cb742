"""The rule tables against SymPy's own differentiation, and the losses against torch's definitions."""

from __future__ import annotations

import pytest
import sympy
import torch

from numeric import REFERENCE_LOSSES
from symbolic import ACTIVATIONS, LOSSES, relu, sigmoid, softplus, step

z = sympy.Symbol("z", real=True)
ELEMENTWISE = [name for name, act in ACTIVATIONS.items() if act.elementwise]

# Independent definitions, written with SymPy's own functions only.
EXPLICIT = {
    "sigmoid": 1 / (1 + sympy.exp(-z)),
    "tanh": sympy.tanh(z),
    "softplus": sympy.log(1 + sympy.exp(z)),
    "identity": z,
}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_through_output_equals_sympy_diff(name):
    activation = ACTIVATIONS[name]
    a = activation.function(z)
    assert sympy.simplify(activation.derivative(z, a) - sympy.diff(a, z)) == 0


@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_opaque_function_matches_explicit_definition(name):
    activation = ACTIVATIONS[name]
    explicit = EXPLICIT[name]
    for point in (-3.5, -0.25, 0.0, 1.5, 4.0):
        ours = activation.function(sympy.Float(point)).evalf(30)
        assert ours == pytest.approx(float(explicit.subs(z, point).evalf(30)), rel=1e-14)
        derivative = activation.derivative(z, activation.function(z)).subs(z, point).evalf(30)
        assert float(derivative) == pytest.approx(float(sympy.diff(explicit, z).subs(z, point).evalf(30)), rel=1e-12)


def test_relu_and_its_step_agree_with_torch_at_zero():
    # torch: relu'(0) = 0
    t = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    torch.relu(t).sum().backward()
    ours = [float(step(sympy.Float(v))) for v in (-2.0, 0.0, 3.0)]
    assert ours == t.grad.tolist()
    assert [float(relu(sympy.Float(v))) for v in (-2.0, 0.0, 3.0)] == torch.relu(t).tolist()
    assert sympy.diff(relu(z), z) == step(z)


def test_derivatives_stay_opaque():
    # kept as σ(1 − σ), never exp(-z)/(1 + exp(-z))**2 (NaN at z = -100 in float32; see test_stability.py)
    assert sympy.diff(sigmoid(z), z) == sigmoid(z) * (1 - sigmoid(z))
    assert sympy.diff(softplus(z), z) == sigmoid(z)
    assert not sympy.diff(sigmoid(z), z).has(sympy.exp)


def test_softmax_jacobian_equals_sympy_diff_of_its_definition():
    softmax = ACTIVATIONS["softmax"]
    zs = sympy.symbols("z1:4", real=True)
    outputs = softmax.outputs(zs)
    for k in range(3):
        for i in range(3):
            expected = sympy.diff(outputs[k], zs[i])
            assert sympy.simplify(softmax.jacobian(zs, outputs, k, i) - expected) == 0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_symbolic_loss_equals_torch_reference_loss(name):
    generator = torch.Generator().manual_seed(3)
    n, batch = 3, 5
    predictions = torch.rand(n, batch, generator=generator, dtype=torch.float64) * 0.9 + 0.05
    targets = torch.rand(n, batch, generator=generator, dtype=torch.float64)
    p, t = sympy.symbols("p1:4", real=True), sympy.symbols("t1:4", real=True)
    # softplus and logsumexp written out with log and exp, which the "math" module knows
    per_sample = sympy.lambdify([p, t], LOSSES[name].per_sample(p, t).rewrite(sympy.log), "math")
    ours = sum(per_sample(predictions[:, b].tolist(), targets[:, b].tolist()) for b in range(batch))
    reference = REFERENCE_LOSSES[name](predictions.T, targets.T).item()
    assert ours == pytest.approx(reference, rel=1e-12)


def test_every_table_entry_is_complete():
    for name, activation in ACTIVATIONS.items():
        assert activation.name == name
        assert hasattr(torch.nn, activation.torch_module), activation.torch_module
        assert activation.latex
    assert set(LOSSES) == set(REFERENCE_LOSSES)
