"""The scalar path (numeric._scalar): a tiny network's B=1 call over Python floats, against torch autograd.

Each test calls the scalar function itself (``compiled._scalar``) where it checks values, so a broken scalar path
cannot hide behind the torch backend it falls back to; the dispatch tests check which of the two a call runs.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy
import test_saturation
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_general import networks

from numeric import autograd_loss_and_gradients, compile_gradients, random_values
from numeric._scalar import SCALAR_PARAMETERS_PER_LAYER, ScalarGradients, scalar_path_applies
from symbolic import TUTORIAL, TUTORIAL_PRINTED, TUTORIAL_VALUES, Activation, Network, derive


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.abs().max().item()
    return (ours.double() - reference.double()).abs().max().item() / (scale if scale > 0 else 1.0)


def _tensors(values, network: Network, dtype: torch.dtype):
    x, y = values["x"].to(dtype), values["y"].to(dtype)
    return x, y, {name: values[name].to(dtype) for name in network.parameter_shapes}


@given(network=networks(), seed=st.integers(0, 2**16), input_gradient=st.booleans())
def test_scalar_gradients_and_loss_equal_autograd(network, seed, input_gradient):
    """Every activation, loss, bias and reduction at B=1, ∂L/∂x when derived: float64 to 1e-10 of autograd in
    float64; float32 in, float32 out, as close to float64 autograd as float32 autograd is (or 1e-5)."""
    wrt = ("x",) if input_gradient else ()
    scalar = ScalarGradients(derive(network, wrt=wrt))
    values = random_values(network, 1, seed)
    x, y, params = _tensors(values, network, torch.float64)
    loss, reference = autograd_loss_and_gradients(network, x, y, params, wrt)
    x32, y32, params32 = _tensors(values, network, torch.float32)
    loss32, reference32 = autograd_loss_and_gradients(network, x32, y32, params32, wrt)
    for dtype, (xs, ys, ps) in ((torch.float64, (x, y, params)), (torch.float32, (x32, y32, params32))):
        outputs = scalar(xs, ys, list(ps.values()), with_loss=True)
        assert outputs is not None, "the scalar path fell back on ordinary values"
        our_loss, *gradients = outputs
        without_loss = scalar(xs, ys, list(ps.values()))
        assert all(map(torch.equal, gradients, without_loss)) and len(gradients) == len(without_loss)

        def tolerance(ours, theirs, theirs32, dtype=dtype) -> float:
            return 1e-10 if dtype == torch.float64 else max(1e-5, 4 * _relative_error(theirs32, theirs))

        assert our_loss.shape == () and our_loss.dtype == dtype
        assert _relative_error(our_loss, loss) <= tolerance(our_loss, loss, loss32)
        for name, ours in zip(reference, gradients, strict=True):
            assert ours.shape == reference[name].shape and ours.dtype == dtype, name
            assert _relative_error(ours, reference[name]) <= tolerance(ours, reference[name], reference32[name]), (
                dtype,
                name,
            )


def test_tutorial_numbers():
    """The tutorial's float32 call: its gradients are float64 autograd's rounded once to float32 (the floats
    are doubles), so 7.8006e-05 where float32 autograd prints 7.8005e-05, and W2[1,1] -7.8433e-06 where it
    prints -7.8431e-06 (its float32 sums cancel): within 2 units of the tutorial's last printed digit."""
    values = {name: torch.tensor(rows, dtype=torch.float64) for name, rows in TUTORIAL_VALUES.items()}
    params64 = {name: values[name] for name in TUTORIAL.parameter_shapes}
    reference = autograd_loss_and_gradients(TUTORIAL, values["x"], values["y"], params64)[1]
    compiled = compile_gradients(derive(TUTORIAL))
    gradients = compiled._scalar(values["x"].float(), values["y"].float(), [p.float() for p in params64.values()])
    for name, gradient in zip(reference, gradients):
        assert gradient.dtype == torch.float32
        torch.testing.assert_close(gradient, reference[name].float(), rtol=2**-23, atol=0)
        for ours, printed in zip(gradient.flatten().tolist(), [v for row in TUTORIAL_PRINTED[name] for v in row]):
            assert abs(ours - printed) <= 2.5 * 10 ** (math.floor(math.log10(abs(printed))) - 4), (name, ours)
    assert compile_gradients(derive(TUTORIAL), scalar=False)._scalar is None  # float32 arithmetic asked for


def _fails(*args, **kwargs):
    raise AssertionError("the torch function ran")


def _networks_at_the_limit():
    """(network, whether the scalar path applies): the largest that does, and one parameter more."""
    depth = 2
    limit = SCALAR_PARAMETERS_PER_LAYER * depth
    width = math.isqrt(limit // 2)  # n-n-n has 2n² weights
    at = Network([width, width, limit // width - width], "sigmoid")
    assert at.parameter_count == limit, at.parameter_count
    above = Network([width, width, limit // width - width], "sigmoid", bias=True)
    assert above.parameter_count > limit
    wider = Network([width + 1, width, limit // width - width], "sigmoid")
    assert wider.parameter_count > limit
    return [(TUTORIAL, True), (at, True), (above, False), (wider, False), (Network([16] * 4, "sigmoid"), False)]


@pytest.mark.parametrize("network, applies", _networks_at_the_limit(), ids=lambda v: getattr(v, "describe", str)())
@pytest.mark.parametrize("batch", [1, 2])
def test_the_scalar_path_runs_exactly_where_the_rule_says(network, applies, batch):
    """At B=1 up to the limit the torch function is never called; at B=2, or above the limit, it is."""
    compiled = compile_gradients(derive(network))
    assert scalar_path_applies(compiled.derivation) is applies
    assert (compiled.scalar_source is not None) is applies
    values = random_values(network, batch, 0)
    x, y, params = _tensors(values, network, torch.float32)
    expected = compiled(x, y, params)
    compiled._run_gradients = _fails
    compiled._run_with_loss = _fails
    if applies and batch == 1:
        assert compiled(x, y, params).keys() == expected.keys()
        compiled.value_and_grad(x, y, params)
    else:
        with pytest.raises(AssertionError, match="torch function ran"):
            compiled(x, y, params)
        with pytest.raises(AssertionError, match="torch function ran"):
            compiled.value_and_grad(x, y, params)


def test_other_backends_and_batches_keep_their_path():
    """backend="inductor" is asked for by name: no scalar path there; requires_grad inputs take it too."""
    assert compile_gradients(derive(TUTORIAL), backend="inductor")._scalar is None
    compiled = compile_gradients(derive(TUTORIAL))
    x, y = torch.tensor([[1.0]], requires_grad=True), torch.tensor([[1.0], [0.0]])
    params = {"W1": torch.tensor([[1.0], [2.0]]), "W2": torch.tensor([[3.0, 4.0], [5.0, 6.0]])}
    expected = compiled(x, y, params)
    compiled._run_gradients = _fails
    ours = compiled(x, y, params)
    for name in expected:
        assert torch.equal(ours[name], expected[name]) and not ours[name].requires_grad


def test_source_still_shows_the_torch_code_and_the_scalar_code_is_printed():
    compiled = compile_gradients(derive(TUTORIAL))
    assert "torch.mm(" in compiled.source and "def gradients(x, y, W1, W2):" in compiled.source
    scalar = compiled.scalar_source
    assert "def gradients(x, y, W1, W2):" in scalar
    assert "z1_0 = W1_0*x_0" in scalar and "a1_0 = sigmoid(z1_0)" in scalar
    assert "delta1_0 = a1_0*(1 - a1_0)*(W2_0_0*delta2_0 + W2_1_0*delta2_1)" in scalar
    assert "torch" not in scalar


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gap", test_saturation.GAPS)
@pytest.mark.parametrize("activation, loss", test_saturation.PAIRINGS)
def test_scalar_gradients_exact_at_saturation(activation, loss, gap, dtype, monkeypatch):
    """Logits up to 10⁴ apart at B=1 (test_saturation's first sample), against its mpmath reference, finite
    where the torch backend is; through the scalar function itself, not the torch one it falls back to."""
    monkeypatch.setattr(test_saturation, "X", [[1.0]])
    monkeypatch.setattr(test_saturation, "Y", [[row[0]] for row in test_saturation.Y])
    network = Network([1, 3], activation, loss)
    scalar = ScalarGradients(derive(network))
    x, y = torch.tensor(test_saturation.X, dtype=dtype), torch.tensor(test_saturation.Y, dtype=dtype)
    outputs = scalar(x, y, [torch.tensor(test_saturation._weights(gap), dtype=dtype)])
    assert outputs is not None, "the scalar path fell back"
    ours = outputs[0].double().flatten()
    # the reference's function itself: its cache holds the two-sample values the other tests computed
    exact = torch.tensor(test_saturation.reference.__wrapped__(activation, loss, "sum", gap), dtype=torch.float64)
    assert torch.isfinite(ours).all(), (ours, exact)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, exact, rtol=tolerance, atol=tolerance * float(exact.abs().max()))


@pytest.mark.parametrize("z", [-800.0, -40.0, -1e-3, 0.0, 2.5, 40.0, 800.0])
def test_stable_helpers_equal_their_definitions(z):
    """σ and softplus as printed (stable forms) against their definitions at 50 digits, where e^{±z} overflows
    a float too; the whole network where an exponential overflows: loss and gradients as autograd's."""
    with mpmath.workdps(50):
        sigmoid = 1 / (1 + mpmath.exp(-z))
        softplus = mpmath.log(1 + mpmath.exp(z))
    network = Network([1, 1, 1], ["softplus", "sigmoid"], "half_sse", bias=True)
    scalar = ScalarGradients(derive(network))
    namespace = scalar._build(False)[0].__globals__
    assert namespace["sigmoid"](z) == pytest.approx(float(sigmoid), rel=1e-15, abs=1e-300)
    assert namespace["softplus"](z) == pytest.approx(float(softplus), rel=1e-15)
    x, y = torch.tensor([[z]], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64)
    params = {"W1": torch.ones(1, 1), "b1": torch.zeros(1, 1), "W2": torch.ones(1, 1), "b2": torch.zeros(1, 1)}
    params = {name: tensor.double() for name, tensor in params.items()}
    loss, reference = autograd_loss_and_gradients(network, x, y, params)
    our_loss, *ours = scalar(x, y, list(params.values()), with_loss=True)
    assert _relative_error(our_loss, loss) <= 1e-14
    for name, gradient in zip(reference, ours):
        assert _relative_error(gradient, reference[name]) <= 1e-14, name


def test_an_overflowing_float_runs_the_torch_function():
    """Python's float ** raises where torch gives inf (gelu' reads e^{-z²/2}; z² overflows at z = 1e200): the
    scalar function says so (None) and the call returns the torch backend's result."""
    network = Network([1, 1], "gelu", "half_sse")
    x, y = torch.tensor([[1e200]], dtype=torch.float64), torch.tensor([[0.0]], dtype=torch.float64)
    params = {"W1": torch.tensor([[1.0]], dtype=torch.float64)}
    compiled, torch_only = compile_gradients(derive(network)), compile_gradients(derive(network))
    torch_only._scalar = None
    assert compiled._scalar(x, y, [params["W1"]]) is None
    assert torch.equal(compiled(x, y, params)["W1"], torch_only(x, y, params)["W1"])
    assert compiled._scalar(x / 1e200, y, [params["W1"]]) is not None  # an ordinary value runs it


def test_user_defined_activations_print_their_definitions():
    """A user's Activation.define prints its own definition and derivative (no helper of chainrule's)."""
    z = sympy.Symbol("z")
    swish = Activation.define("swish", lambda z: z / (1 + sympy.exp(-z)))
    cube = Activation.define("cube", sympy.Lambda(z, z**3 / 3 + z), through_output=None)
    network = Network([2, 3, 2], [swish, cube], "half_sse", bias=True)
    scalar = ScalarGradients(derive(network, wrt=("x",)))
    assert "a1_0 = (z1_0/(1 + exp(-z1_0)))" in scalar.source()
    values = random_values(network, 1, 3)
    x, y, params = _tensors(values, network, torch.float64)
    loss, reference = autograd_loss_and_gradients(network, x, y, params, ("x",))
    our_loss, *ours = scalar(x, y, list(params.values()), with_loss=True)
    assert _relative_error(our_loss, loss) <= 1e-12
    for name, gradient in zip(reference, ours, strict=True):
        assert _relative_error(gradient, reference[name]) <= 1e-10, name
