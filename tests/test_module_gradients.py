"""numeric.gradients on torch modules that from_torch reads into a Model (fx), against autograd on the module
itself: the reading (numeric/_torch_graph.py) and the compiled model program (numeric/_model_compile.py) together."""

import pytest
import torch
from torch import nn

import numeric
from symbolic import UnsupportedModule


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc(torch.relu(self.norm(x)))


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 2, 3, padding=1, bias=False)
        self.head = nn.Linear(2 * 2 * 3, 4)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.tanh(self.conv2(x)), 2)
        return self.head(torch.flatten(x, 1))


CASES = {
    "residual LayerNorm MLP": (
        lambda: nn.Sequential(nn.Linear(6, 5), Block(5), Block(5), nn.Linear(5, 3)),
        (7, 6),
        nn.CrossEntropyLoss(),
    ),
    "small CNN": (SmallCNN, (5, 1, 9, 13), nn.CrossEntropyLoss(reduction="sum")),
    "Conv1d BatchNorm AvgPool": (
        lambda: nn.Sequential(
            nn.Conv1d(2, 3, 3, stride=2, padding=1),
            nn.BatchNorm1d(3),
            nn.Sigmoid(),
            nn.AvgPool1d(2),
            nn.Flatten(),
            nn.Linear(3 * 3, 2, bias=False),
        ),
        (6, 2, 11),
        nn.MSELoss(),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_of_a_module_match_autograd(case):
    build, shape, loss = CASES[case]
    torch.manual_seed(1)
    module = build().double()
    x = torch.randn(*shape, dtype=torch.float64)
    out_size = module(x).shape[1]
    y = (
        torch.randint(0, out_size, (shape[0],))
        if isinstance(loss, nn.CrossEntropyLoss)
        else torch.rand(shape[0], out_size, dtype=torch.float64)
    )
    ours = numeric.gradients(module, loss, x, y, wrt=("x",))
    x_grad = x.clone().requires_grad_()
    module.zero_grad()
    loss(module(x_grad), y).backward()
    expected = {name: p.grad for name, p in module.named_parameters()} | {"x": x_grad.grad}
    assert set(ours) == set(expected)
    # relative to the largest entry of any gradient: a bias before BatchNorm has gradient 0 exactly, which
    # both sides reach only to rounding (1e-17)
    scale = max(value.abs().max().item() for value in expected.values())
    for name, value in expected.items():
        assert ours[name].shape == value.shape, name
        assert (ours[name] - value).abs().max().item() <= 1e-10 * scale, name


def test_dropout_in_training_mode_is_refused_in_one_line():
    module = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3), Block(4), nn.Linear(4, 2))
    x, y = torch.randn(3, 4), torch.rand(3, 2)
    with pytest.raises(UnsupportedModule) as raised:
        numeric.gradients(module, nn.MSELoss(), x, y)
    assert "model.eval()" in str(raised.value) and "\n" not in str(raised.value)
    module.eval()  # dropout is the identity then: the gradients are autograd's
    ours = numeric.gradients(module, nn.MSELoss(), x, y)
    module.zero_grad()
    nn.MSELoss()(module(x), y).backward()
    for name, p in module.named_parameters():
        assert torch.allclose(ours[name], p.grad, rtol=1e-4, atol=1e-6), name
