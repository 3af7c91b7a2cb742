"""The Model spec: each layer's output shape and parameter shapes against torch's own modules, and one-line
errors for models that cannot be built."""

import pytest
import torch
from torch import nn

from symbolic import ChainruleError, Network
from symbolic._model import (
    Act,
    AvgPool1d,
    BatchNorm,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    Model,
    Residual,
)

# each case: the chainrule layers, the same model as torch modules, one sample's input shape
CASES = {
    "cnn": (
        (1, 13, 11),
        (Conv2d(4, 3, padding=1), Act("relu"), MaxPool2d(2), Conv2d(5, (3, 2), stride=2), Flatten(), Linear(7)),
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 5, (3, 2), stride=2),
            nn.Flatten(),
            nn.LazyLinear(7),
        ),
    ),
    "conv1d": (
        (3, 17),
        (Conv1d(2, 4, stride=3, padding=2, bias=False), BatchNorm(), AvgPool1d(2, 1), Flatten(), Linear(2)),
        lambda: nn.Sequential(
            nn.Conv1d(3, 2, 4, stride=3, padding=2, bias=False),
            nn.BatchNorm1d(2),
            nn.AvgPool1d(2, 1),
            nn.Flatten(),
            nn.LazyLinear(2),
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_shapes_and_parameters_match_torch(case):
    input_shape, layers, build = CASES[case]
    model = Model(input_shape, layers)
    module = build()
    x = torch.zeros(2, *input_shape)
    shapes = []
    for layer in module:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert [p.shape_out for p in model.placed] == shapes
    ours = [shape for shape in model.parameter_shapes.values()]
    theirs = [tuple(p.shape) for p in module.parameters()]
    assert ours == theirs


def test_residual_block_positions_and_masks():
    model = Model(6, (Linear(6), Residual((LayerNorm(), Linear(6), Act("tanh"), Dropout(0.2))), Linear(2, bias=False)))
    assert [p.position for p in model.placed] == ["1", "2", "2_1", "2_2", "2_3", "2_4", "3"]
    assert model.mask_shapes == {"mask1": (6,)}
    assert list(model.parameter_shapes) == ["W1", "b1", "gamma2", "beta2", "W3", "b3", "W4"]
    assert [p.number for p in model.placed] == [1, 0, 2, 3, 0, 0, 4]
    assert model.output_size == 2


def test_from_network_keeps_the_dense_stack():
    network = Network([3, 4, 2], ["tanh", "sigmoid"], "bce", bias=True, reduction="mean")
    model = Model.from_network(network)
    assert [type(layer).__name__ for layer in model.layers] == ["Linear", "Act", "Linear", "Act"]
    assert model.loss == "bce" and model.reduction == "mean"
    # the same names; a bias is [n] here (samples as rows), [n, 1] in Network's columns
    assert {name: shape[0] for name, shape in model.parameter_shapes.items()} == {
        name: shape[0] for name, shape in network.parameter_shapes.items()
    }


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: Model(4, (Linear(3), Residual((Linear(2),)))), "must keep the shape"),
        (lambda: Model((1, 5), (Linear(3),)), "add Flatten()"),
        (lambda: Model(4, (Act("softmax"), Linear(2))), "last layer only"),
        (lambda: Model((1, 3, 3), (Conv2d(2, 5), Flatten())), "kernel (5) is larger"),
        (lambda: Model(3, (Linear(2), Act("sigmoid")), "softmax_cross_entropy"), "needs the last layer"),
        (lambda: Model(3, (Linear(2), "relu")), "not a chainrule layer"),
        (lambda: Model((2, 9), (Conv1d(2, 3),)), "must be flat"),
        (lambda: Model(3, (Dropout(1.0),)), "0 ≤ p < 1"),
        (lambda: Model(3, (Act("swish"),)), "unknown activation"),
    ],
)
def test_bad_models_say_why_in_one_line(build, words):
    with pytest.raises(ChainruleError) as raised:
        build()
    assert words in str(raised.value) and "\n" not in str(raised.value)
