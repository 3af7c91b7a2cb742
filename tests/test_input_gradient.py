"""Gradients with respect to the input x (saliency, adversarial examples): derive(..., wrt=("x",))."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_general import networks
from torch import nn

from numeric import compile_gradients, gradients, random_values, to_torch
from numeric._torch_models import reference_loss
from symbolic import InputError, NetworkError, derive


@given(network=networks(), seed=st.integers(0, 2**16), batch=st.integers(1, 5))
def test_input_gradient_equals_autograd(network, seed, batch):
    values = random_values(network, batch, seed)
    params = {name: values[name] for name in network.parameter_shapes}
    ours = compile_gradients(derive(network, wrt=("x",)))(values["x"], values["y"], params)
    inputs = values["x"].T.clone().requires_grad_(True)  # torch's layout: one sample per row
    reference_loss(network, to_torch(network, params)(inputs), values["y"].T).backward()
    assert ours["x"].shape == values["x"].shape
    torch.testing.assert_close(ours["x"], inputs.grad.T, rtol=1e-10, atol=1e-12)
    plain = compile_gradients(derive(network))(values["x"], values["y"], params)
    assert "x" not in plain and all(torch.equal(ours[name], plain[name]) for name in plain)


def test_numeric_gradients_give_the_input_gradient_like_inputs_grad():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    inputs = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 2, 1, 1, 2])
    ours = gradients(model, nn.CrossEntropyLoss(), inputs.detach(), targets, wrt=("x",))
    nn.CrossEntropyLoss()(model(inputs), targets).backward()
    torch.testing.assert_close(ours["x"], inputs.grad, rtol=1e-10, atol=1e-12)
    assert ours["x"].stride() == inputs.grad.stride()  # laid out like it too: .view(-1) works
    assert list(ours) == [*(name for name, _ in model.named_parameters()), "x"]


def test_derivation_text_shows_the_input_gradient():
    from symbolic import Network

    network = Network([2, 3, 1], "tanh", "half_sse")
    assert "∂L/∂x = W⁽¹⁾ᵀ δ⁽¹⁾" in derive(network, wrt=("x",)).text()
    assert r"{W^{(1)}}^{\top} {\color{red}\delta^{(1)}}" in derive(network, wrt=("x",)).latex()  # δ red once named
    assert "∂L/∂x" not in derive(network).text()


def test_bad_wrt_and_the_elementwise_form_are_refused():
    from symbolic import Network

    network = Network([2, 1], "tanh", "half_sse")
    with pytest.raises(NetworkError, match=r"wrt must be a tuple of names from 'x'.*got 'x'"):
        derive(network, wrt="x")
    with pytest.raises(NetworkError, match=r"got \('W1',\)"):
        derive(network, wrt=("W1",))
    with pytest.raises(InputError, match="matrix form only"):
        compile_gradients(derive(network, wrt=("x",)), "elementwise")
