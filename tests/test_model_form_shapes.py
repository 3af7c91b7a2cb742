"""check_backward's model form judges shapes in torch's layout: a bias gradient is [n], as torch's own .grad.

The gradients are torch autograd's own (``.backward()`` on the model), so only their shapes are changed here.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from numeric import check_backward


def _model_and_batch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    return model, torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0, 2])


def _autograd(model: nn.Module, reshape: dict[str, tuple[int, ...]]):
    """The backward function a user would write with autograd, each gradient named in ``reshape`` reshaped."""

    def backward(inputs, targets, params):
        copy = {name: value.clone().requires_grad_(True) for name, value in params.items()}
        logits = torch.func.functional_call(model, copy, (inputs,))
        grads = torch.autograd.grad(nn.functional.cross_entropy(logits, targets), list(copy.values()))
        return {name: g.reshape(reshape.get(name, g.shape)) for name, g in zip(copy, grads)}

    return backward


def test_torchs_own_gradients_pass():
    model, inputs, targets = _model_and_batch()
    report = check_backward(_autograd(model, {}), model, nn.CrossEntropyLoss(), inputs, targets)
    assert report.ok, str(report)


@pytest.mark.parametrize("shape, said", [((5, 1), "[5, 1]"), ((1, 5), "[1, 5]")])
def test_a_bias_gradient_in_chainrules_column_layout_is_a_wrong_shape(shape, said):
    """[n, 1] (chainrule's own layout) holds the right numbers, but is not what the model form expects: named."""
    model, inputs, targets = _model_and_batch()
    report = check_backward(_autograd(model, {"0.bias": shape}), model, nn.CrossEntropyLoss(), inputs, targets)
    assert not report.ok
    assert [(m.parameter, m.name) for m in report.mistakes] == [("0.bias", "shape")], str(report)
    assert f"the gradient has shape {said}, expected [5]" in str(report)
