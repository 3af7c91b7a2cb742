"""from_torch: a user's nn.Sequential, derived and compiled, against the module's own backward()."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from numeric import REFERENCE_LOSSES, compile_gradients, from_torch, to_torch
from symbolic import Network, UnsupportedModule, derive


def _modules():
    torch.manual_seed(0)
    return {
        "tutorial-like": (
            nn.Sequential(nn.Linear(1, 2, bias=False), nn.Sigmoid(), nn.Linear(2, 2, bias=False), nn.Sigmoid()),
            "half_sse",
        ),
        "tanh-softmax-ce": (
            nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Softmax(dim=-1)),
            "cross_entropy",
        ),
        "relu-softplus-sigmoid-bce": (
            nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Softplus(), nn.Linear(3, 1), nn.Sigmoid()),
            "bce",
        ),
        "linear-linear-identity": (nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2), nn.Identity()), "mse"),
        "no-final-activation": (nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 2)), "sse"),
    }


@pytest.mark.parametrize("key", sorted(_modules()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_gradients_equal_the_modules_own_grad(key, dtype):
    module, loss_name = _modules()[key]
    module = module.to(dtype)
    network, params = from_torch(module, loss=loss_name)
    generator = torch.Generator().manual_seed(5)
    batch = 6
    x = torch.randn(network.sizes[0], batch, generator=generator, dtype=torch.float64).to(dtype)
    if loss_name in ("bce",):
        y = torch.rand(network.sizes[-1], batch, generator=generator, dtype=torch.float64).to(dtype)
    elif loss_name == "cross_entropy":
        y = torch.softmax(torch.randn(network.sizes[-1], batch, generator=generator, dtype=torch.float64), 0).to(dtype)
    else:
        y = torch.randn(network.sizes[-1], batch, generator=generator, dtype=torch.float64).to(dtype)

    module.zero_grad()
    REFERENCE_LOSSES[loss_name](module(x.T), y.T).backward()  # the module sees samples as rows
    linears = [m for m in module if isinstance(m, nn.Linear)]

    ours = compile_gradients(derive(network))(x, y, params)
    tolerance = dict(rtol=1e-4, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-13)
    for layer, linear in enumerate(linears, start=1):
        torch.testing.assert_close(ours[f"W{layer}"], linear.weight.grad, **tolerance)
        if linear.bias is not None:
            torch.testing.assert_close(ours[f"b{layer}"], linear.bias.grad.reshape(-1, 1), **tolerance)
        assert ours[f"W{layer}"].dtype == dtype


def test_network_read_from_a_module():
    module = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Softmax(dim=-1))
    network, params = from_torch(module, loss="cross_entropy")
    assert network == Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True)
    assert params["W1"].shape == (4, 3) and params["b2"].shape == (2, 1)
    assert torch.equal(params["W2"], module[2].weight.detach())
    assert not params["W1"].requires_grad


def test_to_torch_round_trips():
    network = Network([2, 3, 1], ["relu", "sigmoid"], "bce", bias=True)
    module = to_torch(network)
    again, _ = from_torch(module, loss="bce")
    assert again == network


class Custom(nn.Module):
    def forward(self, x):
        return x * 2  # fx traces into it: the product is what is refused


@pytest.mark.parametrize(
    "module, fragment",
    [
        ("not a module", "nn.Module"),
        (nn.Sequential(nn.Linear(2, 2), nn.Hardtanh()), "Hardtanh"),
        (nn.Sequential(nn.Linear(2, 2), Custom()), "Custom"),
        (nn.Sequential(nn.Conv3d(1, 1, 1)), "Conv3d"),
        (nn.Sequential(nn.Sigmoid(), nn.Linear(2, 2)), "must follow a Linear"),
        (nn.Sequential(nn.Linear(2, 2), nn.Softplus(beta=2.0)), "beta=1"),
        (nn.Sequential(nn.Linear(2, 2), nn.Softmax(dim=0)), "dim=-1"),
        (nn.Sequential(nn.Linear(2, 3), nn.Linear(2, 2)), "in_features 2"),
        (nn.Sequential(), "no nn.Linear"),
        (nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()).half(), "half precision"),
        (nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()).bfloat16(), "model.double()"),
    ],
)
def test_unsupported_modules_get_a_clear_error(module, fragment):
    with pytest.raises(UnsupportedModule, match=fragment) as caught:
        from_torch(module)
    assert isinstance(caught.value, ValueError)
    if "nn.Module" not in fragment and "no nn.Linear" not in fragment:
        assert "supported" in str(caught.value)
