"""from_torch beyond dense stacks: modules read through torch.fx into a Model.

Each model is compared with one written by hand, layer by layer; its parameters with the module's state_dict
entries under hand-written names; its forward (tests/model_forward.py, plain torch.nn.functional per layer)
with the module's own forward. Every refusal is one line naming the node.
"""

from __future__ import annotations

import operator

import pytest
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual spelling

from numeric import from_torch
from numeric._torch_graph import read_model
from symbolic import Network, UnsupportedModule
from symbolic._model import (
    Act,
    AvgPool1d,
    AvgPool2d,
    BatchNorm,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool1d,
    MaxPool2d,
    Model,
    Residual,
)
from symbolic._rules import elu_activation, leaky_relu_activation
from tests.model_forward import model_forward

# -- residual blocks written as ordinary modules, the add spelled each way people spell it ----------------------


class Block(nn.Module):
    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=eps)
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc(torch.relu(self.norm(x)))


class BlockNamed(Block):
    def forward(self, x):
        h = self.fc(F.relu(self.norm(x)))
        return h + x  # the block's output first


class BlockOperator(Block):
    def forward(self, x):
        return operator.add(self.fc(self.norm(x).relu()), x)


class BlockTorchAdd(Block):
    def forward(self, x):
        return torch.add(x, self.fc(nn.functional.relu(self.norm(x))))


class BlockMethod(Block):
    def forward(self, x):
        return x.add(self.fc(torch.relu(self.norm(x))))


class BlockInplace(Block):
    """In-place ReLU on a value only the block reads: the module computes what the graph shows."""

    def __init__(self, width: int, eps: float = 1e-5):
        super().__init__(width, eps)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return x + self.fc(self.act(self.norm(x)))


class SkipOverwritten(nn.Module):
    """x + fc(relu_(x)): the in-place ReLU changes x before the add reads it."""

    def __init__(self, inplace_module: bool):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.act = nn.ReLU(inplace=True) if inplace_module else None

    def forward(self, x):
        return x + self.fc(self.act(x) if self.act is not None else F.relu(x, inplace=True))


class SmallCNN(nn.Module):
    """Functional activations and torch.flatten between modules; non-square kernel, stride and padding."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0))
        self.pool = nn.AvgPool2d(2, stride=1)
        self.head = nn.Linear(36, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        return self.head(torch.flatten(x, 1))


# the flattening views older tutorials write
VIEWS = {
    "size": lambda x: x.view(x.size(0), -1),
    "shape": lambda x: x.reshape(x.shape[0], -1),
    "size-tuple": lambda x: torch.reshape(x, (x.size()[0], -1)),
    "minus-one": lambda x: x.view(-1, 2 * 2 * 2),
}


class LeNetStyle(nn.Module):
    """A small CNN flattened by one of the VIEWS."""

    def __init__(self, view: str):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8, 3)
        self.view = VIEWS[view]

    def forward(self, x):
        return self.fc(self.view(self.pool(F.relu(self.conv(x)))))


class ConvBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        return x + self.c2(F.relu(self.c1(x)))


class TwoSkips(nn.Module):
    """x + (x + f(x)): a residual block whose block is itself a residual block; x is used three times."""

    def __init__(self):
        super().__init__()
        self.f = nn.Linear(3, 3)

    def forward(self, x):
        h = x + torch.tanh(self.f(x))
        return x + h


class Functional(nn.Module):
    """Every activation in its functional or method spelling, between three Linear layers."""

    def __init__(self):
        super().__init__()
        self.f = nn.Linear(3, 4)
        self.g = nn.Linear(4, 4)
        self.h = nn.Linear(4, 3)

    def forward(self, x):
        x = F.leaky_relu(F.elu(F.gelu(F.silu(self.f(x))), alpha=0.7), 0.2)
        x = torch.sigmoid(F.softplus(x))
        x = F.tanh(self.g(x)).sigmoid()
        x = self.h(torch.relu(F.relu(x.relu())).tanh())
        return F.softmax(F.sigmoid(torch.tanh(x)), dim=-1)


def _residual_block(eps: float = 1e-5) -> Residual:
    return Residual((LayerNorm(eps), Act("relu"), Linear(6)))


def _block_names(module: str, first: int) -> dict[str, str]:
    return {
        f"gamma{first}": f"{module}.norm.weight",
        f"beta{first}": f"{module}.norm.bias",
        f"W{first + 1}": f"{module}.fc.weight",
        f"b{first + 1}": f"{module}.fc.bias",
    }


# each case: the module, input_shape (None: read from the module), the Model written by hand, and for each of
# its parameters the module's name of that tensor
def _cases():
    torch.manual_seed(0)
    cases = {}
    for block in (Block, BlockNamed, BlockOperator, BlockTorchAdd, BlockMethod, BlockInplace):
        cases[f"residual-mlp-{block.__name__}"] = (
            nn.Sequential(nn.Linear(5, 6), block(6, eps=1e-3), block(6, eps=1e-3), nn.Linear(6, 3)),
            None,
            Model((5,), (Linear(6), _residual_block(1e-3), _residual_block(1e-3), Linear(3))),
            {"W1": "0.weight", "b1": "0.bias", **_block_names("1", 2), **_block_names("2", 4)}
            | {"W6": "3.weight", "b6": "3.bias"},
        )
    cases["small-cnn"] = (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(24, 5),
        ),
        (1, 12, 12),
        Model(
            (1, 12, 12),
            (
                Conv2d(4, 3, padding=1),
                Act("relu"),
                MaxPool2d(2),
                Conv2d(6, 3),
                Act("relu"),
                MaxPool2d(2),
                Flatten(),
                Linear(5),
            ),
        ),
        {"W1": "0.weight", "b1": "0.bias", "W2": "3.weight", "b2": "3.bias", "W3": "7.weight", "b3": "7.bias"},
    )
    cases["cnn-functional"] = (
        SmallCNN(),
        (2, 7, 6),
        Model(
            (2, 7, 6),
            (Conv2d(3, (3, 2), stride=(2, 1), padding=(1, 0)), Act("relu"), AvgPool2d(2, 1), Flatten(), Linear(4)),
        ),
        {"W1": "conv.weight", "b1": "conv.bias", "W2": "head.weight", "b2": "head.bias"},
    )
    for view in VIEWS:
        cases[f"lenet-view-{view}"] = (
            LeNetStyle(view),
            (1, 6, 6),
            Model((1, 6, 6), (Conv2d(2, 3), Act("relu"), MaxPool2d(2), Flatten(), Linear(3))),
            {"W1": "conv.weight", "b1": "conv.bias", "W2": "fc.weight", "b2": "fc.bias"},
        )
    cases["conv-residual"] = (
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), ConvBlock(2), nn.Flatten(), nn.Linear(18, 2)),
        (1, 5, 5),
        Model(
            (1, 5, 5),
            (
                Conv2d(2, 3),
                BatchNorm(),
                Residual((Conv2d(2, 3, padding=1), Act("relu"), Conv2d(2, 3, padding=1, bias=False))),
                Flatten(),
                Linear(2),
            ),
        ),
        {"W1": "0.weight", "b1": "0.bias", "gamma2": "1.weight", "beta2": "1.bias", "W3": "2.c1.weight"}
        | {"b3": "2.c1.bias", "W4": "2.c2.weight", "W5": "4.weight", "b5": "4.bias"},
    )
    cases["nested-sequential"] = (
        nn.Sequential(
            nn.Sequential(nn.Linear(3, 4), nn.Tanh()), nn.Sequential(nn.Sequential(nn.Linear(4, 2)), nn.Sigmoid())
        ),
        None,
        Model((3,), (Linear(4), Act("tanh"), Linear(2), Act("sigmoid"))),
        {"W1": "0.0.weight", "b1": "0.0.bias", "W2": "1.0.0.weight", "b2": "1.0.0.bias"},
    )
    cases["mixed-bias"] = (
        nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4, bias=False), nn.ELU(0.5), nn.Linear(4, 2)),
        None,
        Model((3,), (Linear(4), Act("relu"), Linear(4, bias=False), Act(elu_activation(0.5)), Linear(2))),
        {"W1": "0.weight", "b1": "0.bias", "W2": "2.weight", "W3": "4.weight", "b3": "4.bias"},
    )
    cases["conv1d-batchnorm-avgpool"] = (
        nn.Sequential(
            nn.Conv1d(2, 3, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(3, eps=1e-4),
            nn.ReLU(),
            nn.AvgPool1d(2),
            nn.MaxPool1d(2, stride=1),
            nn.Flatten(),
            nn.Linear(6, 2),
            nn.BatchNorm1d(2),
        ),
        (2, 11),
        Model(
            (2, 11),
            (
                Conv1d(3, 3, stride=2, padding=1, bias=False),
                BatchNorm(1e-4),
                Act("relu"),
                AvgPool1d(2),
                MaxPool1d(2, 1),
                Flatten(),
                Linear(2),
                BatchNorm(),
            ),
        ),
        {"W1": "0.weight", "gamma2": "1.weight", "beta2": "1.bias", "W3": "6.weight", "b3": "6.bias"}
        | {"gamma4": "7.weight", "beta4": "7.bias"},
    )
    cases["dropout"] = (
        nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Dropout(0.3), nn.Linear(6, 4), nn.Dropout(0.5), nn.Linear(4, 2)),
        None,
        Model((5,), (Linear(6), Act("relu"), Dropout(0.3), Linear(4), Dropout(0.5), Linear(2))),
        {"W1": "0.weight", "b1": "0.bias", "W2": "3.weight", "b2": "3.bias", "W3": "5.weight", "b3": "5.bias"},
    )
    cases["functional-activations"] = (
        Functional(),
        None,
        Model(
            (3,),
            (
                *(Linear(4), Act("silu"), Act("gelu"), Act(elu_activation(0.7)), Act(leaky_relu_activation(0.2))),
                *(Act("softplus"), Act("sigmoid"), Linear(4), Act("tanh"), Act("sigmoid")),
                *(Act("relu"), Act("relu"), Act("relu"), Act("tanh"), Linear(3), Act("tanh"), Act("sigmoid")),
                Act("softmax"),
            ),
        ),
        {"W1": "f.weight", "b1": "f.bias", "W2": "g.weight", "b2": "g.bias", "W3": "h.weight", "b3": "h.bias"},
    )
    cases["two-skips"] = (
        TwoSkips(),
        None,
        Model((3,), (Residual((Residual((Linear(3), Act("tanh"))),)),)),
        {"W1": "f.weight", "b1": "f.bias"},
    )
    return cases


CASES = _cases()


def _dropout_masks(module: nn.Module) -> tuple[dict[str, torch.Tensor], list]:
    """Hooks that record each nn.Dropout's mask (where its output is not 0) in call order: mask1, mask2, ..."""
    masks: dict[str, torch.Tensor] = {}

    def record(_module, inputs, output):
        # where the input is 0 the mask's entry does not matter: the output is 0 either way
        masks[f"mask{len(masks) + 1}"] = (output != 0).to(output.dtype)

    handles = [m.register_forward_hook(record) for m in module.modules() if isinstance(m, nn.Dropout)]
    return masks, handles


@pytest.mark.parametrize("key", sorted(CASES))
def test_module_read_into_the_model_written_by_hand(key):
    module, input_shape, expected, names = CASES[key]
    model, params = from_torch(module, input_shape=input_shape)
    assert isinstance(model, Model)
    assert model.input_shape == expected.input_shape
    assert len(model.layers) == len(expected.layers)
    for ours, theirs in zip(model.layers, expected.layers, strict=True):
        assert ours == theirs
    assert model == expected
    state = module.state_dict()
    assert sorted(params) == sorted(names)
    assert read_model(module, "half_sse", "sum", input_shape).torch_names == names
    for name, torch_name in names.items():
        assert torch.equal(params[name], state[torch_name]), name
        assert not params[name].requires_grad
        assert params[name].data_ptr() != state[torch_name].data_ptr()  # a copy, not the module's own tensor
    assert {n for n, _ in module.named_parameters()} == set(names.values())  # no parameter left out


@pytest.mark.parametrize("key", sorted(CASES))
def test_forward_of_the_read_model_equals_the_modules(key):
    module, input_shape, _, _ = CASES[key]
    module = module.double()
    model, params = from_torch(module, input_shape=input_shape)
    x = torch.randn(4, *model.input_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    masks, handles = _dropout_masks(module)
    try:
        expected = module(x)
    finally:
        for handle in handles:
            handle.remove()
    assert set(masks) == set(model.mask_shapes)
    ours = model_forward(model, params, x, masks)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


def test_dropout_in_eval_mode_is_no_layer():
    module = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Sequential(nn.Linear(4, 2))).eval()
    model, params = from_torch(module)
    assert model.layers == (Linear(4), Linear(2))
    x = torch.randn(5, 3)
    torch.testing.assert_close(model_forward(model, params, x), module(x))


def test_functional_dropout_follows_the_training_flag_it_is_given():
    module = Forward(lambda m, x: m.g(F.dropout(m.f(x), 0.2, m.training)))
    assert from_torch(module)[0].layers == (Linear(2), Dropout(0.2), Linear(2))
    assert from_torch(module.eval())[0].layers == (Linear(2), Linear(2))


def test_the_network_rule():
    """A flat Sequential of Linear and activations with one bias choice is a Network, as before; the same
    layers nested, or with a bias on some Linear layers only, are a Model."""
    flat = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    network, params = from_torch(flat)
    assert network == Network([3, 4, 2], ["tanh", "identity"], bias=True)
    assert params["b1"].shape == (4, 1)
    nested, params = from_torch(nn.Sequential(flat))
    assert nested == Model((3,), (Linear(4), Act("tanh"), Linear(2)))
    assert params["b1"].shape == (4,)
    mixed, _ = from_torch(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False)))
    assert mixed == Model((3,), (Linear(4), Act("tanh"), Linear(2, bias=False)))


def test_loss_module_and_the_input_shape_from_layernorm():
    module = nn.Sequential(nn.LayerNorm((2, 3)), nn.Flatten(), nn.Linear(6, 3))
    model, _ = from_torch(module, nn.CrossEntropyLoss())
    assert model == Model((2, 3), (LayerNorm(), Flatten(), Linear(3)), "softmax_cross_entropy", "mean")
    assert from_torch(nn.Sequential(nn.Linear(4, 2)), input_shape=(4,))[0] == Network([4, 2], ["identity"], bias=True)
    alone, params = from_torch(nn.Linear(4, 2), "mse", reduction="mean")
    assert alone == Model((4,), (Linear(2),), "mse", "mean") and sorted(params) == ["W1", "b1"]


def test_numeric_gradients_reads_a_nested_sequential():
    """numeric.gradients takes what from_torch reads into a Model (tests/test_module_gradients.py: more models)."""
    from numeric import gradients

    module = nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.Tanh())).double()
    x, y = torch.tensor([[0.3, -1.2]], dtype=torch.float64), torch.tensor([[0.5, 0.1]], dtype=torch.float64)
    ours = gradients(module, "half_sse", x, y)
    ((module(x) - y) ** 2 / 2).sum().backward()
    assert {name: p.grad for name, p in module.named_parameters()}.keys() == ours.keys()
    for name, p in module.named_parameters():
        assert torch.allclose(ours[name], p.grad, rtol=1e-12, atol=0), name


# -- refusals ------------------------------------------------------------------------------------------------


class AttentionBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 2)

    def forward(self, x):
        return self.attn(x, x, x)[0]


class WithAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), AttentionBlock())

    def forward(self, x):
        return self.blocks(x)


class Forward(nn.Module):
    """A module whose forward is the function given, with two Linear layers f and g at hand."""

    def __init__(self, forward, width: int = 2, out: int | None = None):
        super().__init__()
        self.f = nn.Linear(width, width)
        self.g = nn.Linear(width, out or width)
        self.function = forward

    def forward(self, x):
        return self.function(self, x)


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x + y


class Scaled(nn.Sequential):
    def forward(self, x):
        return super().forward(x) * 2


class Gate(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x


REFUSALS = {
    "attention": (lambda: WithAttention(), None, "blocks.2.attn (nn.MultiheadAttention): not a supported module"),
    "times-two": (lambda: Forward(lambda m, x: x * 2), None, "x * 2 at node mul: not a supported operation"),
    "inside-a-block": (
        lambda: nn.Sequential(nn.Linear(2, 2), Forward(lambda m, x: m.f(x) - x)),
        None,
        "1 (Forward): 1.f(…) - 0(…) at node sub: not a supported operation",
    ),
    "untraceable": (lambda: Gate(), (2,), "torch.fx cannot trace Gate: symbolically traced variables"),
    "shared-weights": (lambda: Forward(lambda m, x: m.f(torch.relu(m.f(x)))), None, "f (nn.Linear) is called twice"),
    "diamond": (
        lambda: Forward(lambda m, x: m.f(x) + m.g(x)),
        None,
        "f(…) + g(…) at node add: not a residual connection",
    ),
    "value-doubled": (lambda: Forward(lambda m, x: (lambda h: h + h)(m.f(x))), None, "f(…) + f(…) at node add: adds a"),
    "unused-result": (lambda: Forward(lambda m, x: (m.f(x), m.g(x))[1]), None, "f (nn.Linear) at node f: its"),
    "two-inputs": (lambda: TwoInputs(), None, "takes x, y"),
    "tuple-output": (lambda: Forward(lambda m, x: (m.f(x), x)), None, "return one tensor"),
    "add-alpha": (lambda: Forward(lambda m, x: torch.add(x, m.f(x), alpha=2)), None, "at node add: an add is"),
    "residual-changes-shape": (
        lambda: Forward(lambda m, x: x + m.g(x), out=3),
        None,
        "x + g(…) at node add: its block turns (2,) into (3,); a residual block keeps the shape",
    ),
    "sequential-with-a-forward": (lambda: Scaled(nn.Linear(2, 2), nn.Tanh()), None, "at node mul: not a supported"),
    "softmax-inside": (
        lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.Softmax(-1)), nn.Linear(2, 2)),
        None,
        "layer 0.1 (Act): activation 'softmax' is allowed as the last layer only",
    ),
    "input-shape-of-a-network": (lambda: nn.Sequential(nn.Linear(2, 2)), (3,), "input_shape (3,) does not fit"),
    "inplace-module-on-the-skip": (
        lambda: SkipOverwritten(True),
        None,
        "act (nn.ReLU): inplace=True overwrites x, which add also reads; use inplace=False",
    ),
    "inplace-function-on-the-skip": (lambda: SkipOverwritten(False), None, "at node relu: inplace=True overwrites x"),
    "view-wrong-size": (
        lambda: Forward(lambda m, x: m.f(x.view(-1, 4)), width=4),
        (2, 2, 2),
        "x.view(-1, 4) at node view: 4 is not one sample's size: the sample (2, 2, 2) holds 8",
    ),
    "view-not-flat": (
        lambda: Forward(lambda m, x: m.f(x.view(x.size(0), 2, -1)), width=4),
        (2, 4),
        "at node view: only a flattening view is supported",
    ),
    "add-constant": (lambda: Forward(lambda m, x: m.f(x) + 1), None, "f(…) + 1 at node add"),
    "batchnorm-eval": (
        lambda: nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3).eval()),
        None,
        "1 (nn.BatchNorm1d): eval mode is not supported",
    ),
    "batchnorm-affine": (lambda: nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, affine=False)), None, "affine=False"),
    "batchnorm2d-on-features": (
        lambda: nn.Sequential(nn.Linear(2, 3), nn.BatchNorm2d(3)),
        None,
        "1 (nn.BatchNorm2d): takes samples of shape (C, H, W); it gets (3,)",
    ),
    "layernorm-last-axis": (
        lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.LayerNorm(6)),
        (1, 8),
        "1 (nn.LayerNorm): normalized_shape (6,) is not the whole sample (2, 6)",
    ),
    "layernorm-no-affine": (lambda: nn.Sequential(nn.LayerNorm(3, elementwise_affine=False)), None, "elementwise_"),
    "conv-groups": (lambda: nn.Sequential(nn.Conv1d(2, 2, 3, groups=2)), (2, 8), "0 (nn.Conv1d): groups=2"),
    "conv-dilation": (lambda: nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2)), (1, 8, 8), "dilation=(2, 2)"),
    "conv-reflect": (lambda: nn.Sequential(nn.Conv1d(1, 1, 3, padding_mode="reflect")), (1, 8), "padding_mode="),
    "conv-same": (lambda: nn.Sequential(nn.Conv1d(1, 1, 3, padding="same")), (1, 8), "padding='same'"),
    "conv3d": (lambda: nn.Sequential(nn.Conv3d(1, 1, 1)), (1, 2, 2, 2), "0 (nn.Conv3d): not a supported module"),
    "maxpool-padding": (lambda: nn.Sequential(nn.MaxPool2d(3, padding=1)), (1, 6, 6), "0 (nn.MaxPool2d): padding=1"),
    "maxpool-ceil": (lambda: nn.Sequential(nn.MaxPool1d(2, ceil_mode=True)), (1, 5), "ceil_mode=True"),
    "maxpool-dilation": (lambda: nn.Sequential(nn.MaxPool1d(2, dilation=2)), (1, 5), "dilation=2"),
    "avgpool-padding": (lambda: nn.Sequential(nn.AvgPool1d(3, padding=1)), (1, 5), "0 (nn.AvgPool1d): padding="),
    "flatten-start": (
        lambda: nn.Sequential(nn.Flatten(2)),
        (1, 2, 2),
        "0 (nn.Flatten): start_dim, end_dim other than 1, -1 is not supported",
    ),
    "flatten-batch": (lambda: Forward(lambda m, x: m.f(torch.flatten(x))), None, "at node flatten: only flatten(x, 1)"),
    "input-shape-needed": (lambda: nn.Sequential(nn.Conv1d(1, 1, 3)), None, "needs input_shape"),
    "softplus-beta": (lambda: Forward(lambda m, x: F.softplus(m.f(x), beta=2)), None, "at node softplus: Softplus"),
    "gelu-tanh": (lambda: Forward(lambda m, x: F.gelu(m.f(x), approximate="tanh")), None, "at node gelu: GELU"),
    "softmax-dtype": (lambda: Forward(lambda m, x: m.f(x).softmax(-1, torch.float64)), None, "dtype="),
    "width-mismatch": (
        lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 3)), nn.Linear(2, 2)),
        None,
        "1 (nn.Linear): its weight",
    ),
    "needs-flatten": (
        lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.Linear(6, 2)),
        (1, 8),
        "layer 1 (Linear) needs a flat",
    ),
    "half-precision": (lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 2))).half(), None, "0.0 (nn.Linear): half"),
    "hardtanh": (lambda: nn.Sequential(nn.Sequential(nn.Linear(2, 2), nn.Hardtanh())), None, "0.1 (nn.Hardtanh)"),
    "lazy": (lambda: nn.Sequential(nn.Sequential(nn.LazyLinear(2))), (3,), "not initialised yet"),
    "functional-layer": (lambda: Forward(lambda m, x: F.linear(x, m.f.weight)), None, "F.linear(x, f.weight)"),
    "not-a-module": (lambda: "model", None, "takes an nn.Module; got str"),
}


@pytest.mark.parametrize("key", sorted(REFUSALS))
def test_refusal_is_one_line_naming_the_node(key):
    build, input_shape, fragment = REFUSALS[key]
    with pytest.raises(UnsupportedModule) as caught:
        from_torch(build(), input_shape=input_shape)
    message = str(caught.value)
    assert "\n" not in message
    assert fragment in message, message
