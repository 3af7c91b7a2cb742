"""The generated code holds no dead intermediates, and at its peak holds no more than autograd does."""

from __future__ import annotations

import ast
import weakref

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode

from numeric import REFERENCE_LOSSES, compile_gradients, random_values, to_torch
from symbolic import ACTIVATIONS, Network, derive
from tests.test_general import networks


def _held_but_dead(source: str) -> list[tuple[int, str]]:
    """(line, name) for each local that is still bound after a statement although no later statement reads it.

    Read from the source's syntax tree, independently of how the compiler decided what to free.
    """
    (function,) = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]  # after the header
    arguments = {argument.arg for argument in function.args.args}
    body = function.body
    reads = [{node.id for node in ast.walk(statement) if isinstance(node, ast.Name)} for statement in body]
    bound: set[str] = set()
    held = []
    for index, statement in enumerate(body[:-1]):  # the last is the return
        if isinstance(statement, ast.Assign):
            bound |= {target.id for target in statement.targets}
        elif isinstance(statement, ast.Delete):
            bound -= {target.id for target in statement.targets}
        later = set().union(*reads[index + 1 :])
        held += [(statement.lineno, name) for name in sorted(bound - arguments - later)]
    return held


@given(network=networks(), form=st.sampled_from(["matrix", "elementwise"]))
def test_no_intermediate_outlives_its_last_use(network, form):
    compiled = compile_gradients(derive(network), form)
    for source in (compiled.source, compiled.value_and_grad_source):
        assert _held_but_dead(source) == [], source


class _PeakLiveBytes(TorchDispatchMode):
    """The most bytes held at once by tensors that torch operations made while the mode was active.

    Each op's result is remembered by a weak reference, so a tensor counts exactly while something (the
    code under test, or autograd's saved values) holds it; views count their storage once.
    """

    def __init__(self):
        super().__init__()
        self.made: list[weakref.ref] = []
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in result if isinstance(result, (tuple, list)) else [result]:
            if isinstance(value, torch.Tensor):
                self.made.append(weakref.ref(value))
        storages = {}
        for reference in self.made:
            tensor = reference()
            if tensor is not None:
                storage = tensor.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
        self.peak = max(self.peak, sum(storages.values()))
        return result


def _peak(function) -> int:
    with _PeakLiveBytes() as tracker:
        function()
    return tracker.peak


def _network_with(activation: str) -> Network:
    """A network whose hidden layers (or, for an activation allowed last only, whose output layer) use it."""
    if ACTIVATIONS[activation].last_layer_only:
        return Network([40, 24, 10], ["relu", activation], "cross_entropy", bias=True)
    return Network([24, 32, 16, 8], [activation, activation, "identity"], "mse", bias=True)


# networks of several losses, then one for each activation of the table (a new row is drawn here at once)
NETWORKS = [
    Network([16, 16, 16, 16], "sigmoid", "half_sse"),
    Network([32, 32, 32, 32], "tanh", "mse", bias=True),
    Network([8, 12, 6, 3], ["softplus", "relu", "sigmoid"], "bce", bias=True),
    *(_network_with(activation) for activation in ACTIVATIONS),
]


def test_every_activation_is_measured():
    measured = {rule.name for network in NETWORKS for rule in network.activation_rules}
    assert measured == set(ACTIVATIONS)


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_peak_memory_at_most_autograds(network):
    values = random_values(network, 2048, 0, dtype=torch.float32)
    x, y = values["x"], values["y"]
    params = {name: values[name] for name in network.parameter_shapes}
    compiled = compile_gradients(derive(network))
    module = to_torch(network, params)
    rows, targets = x.T.contiguous(), y.T.contiguous()  # autograd as users run it: samples as rows
    loss_function = REFERENCE_LOSSES[network.loss]

    def autograd_step():
        return torch.autograd.grad(loss_function(module(rows), targets), list(module.parameters()))

    compiled(x, y, params)  # any one-time work outside the measurement
    ours, reference = _peak(lambda: compiled(x, y, params)), _peak(autograd_step)
    layer_bytes = x.shape[1] * max(network.sizes) * x.element_size()
    assert ours <= reference, (ours / layer_bytes, reference / layer_bytes)
