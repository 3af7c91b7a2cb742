"""Any dense network: compiled gradients against torch autograd and gradcheck, closed forms against
``sympy.diff`` of the expanded loss."""

from __future__ import annotations

import numpy
import pytest
import sympy
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from numeric import (
    autograd_gradients,
    autograd_loss_and_gradients,
    check_with_gradcheck,
    compile_gradients,
    random_values,
    to_torch,
    verify,
)
from symbolic import ACTIVATIONS, LOSSES, InputError, InputTypeError, Network, derive

HIDDEN = [name for name, activation in ACTIVATIONS.items() if not activation.last_layer_only]


@st.composite
def networks(draw, max_depth=4, max_width=5):
    depth = draw(st.integers(1, max_depth))
    sizes = draw(st.lists(st.integers(1, max_width), min_size=depth + 1, max_size=depth + 1))
    loss = draw(st.sampled_from(sorted(LOSSES)))
    pairing = LOSSES[loss].output_activations
    last = draw(st.sampled_from(sorted(pairing) if pairing else [*HIDDEN, "softmax"]))
    if (last == "softmax" or loss == "softmax_cross_entropy") and sizes[-1] == 1:  # a constant; rejected
        sizes[-1] = 2
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1, max_size=depth - 1))
    reduction = draw(st.sampled_from(["sum", "mean"]))
    return Network(sizes, [*hidden, last], loss, bias=draw(st.booleans()), reduction=reduction)


def _relative_error(ours, reference):
    scale = reference.abs().max().item()
    return (ours - reference).abs().max().item() / (scale if scale > 0 else 1.0)


@given(network=networks(), seed=st.integers(0, 2**16), batch=st.integers(1, 6))
def test_compiled_gradients_equal_autograd_float64(network, seed, batch):
    derivation = derive(network)
    values = random_values(network, batch, seed)
    params = {name: values[name] for name in network.parameter_shapes}
    reference = autograd_gradients(network, values["x"], values["y"], params)
    for form in ("matrix", "elementwise"):
        ours = compile_gradients(derivation, form)(values["x"], values["y"], params)
        for name in params:
            assert ours[name].shape == params[name].shape
            assert _relative_error(ours[name], reference[name]) <= 1e-10, (form, name)


def _jumps_at_zero(activation: torch.nn.Module) -> bool:
    """Whether the activation's derivative jumps at 0 (relu, leaky_relu): asked of torch, not of a list."""
    z = torch.tensor([-1e-7, 1e-7], dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(activation(z).sum(), z)
    return abs(slope[0] - slope[1]).item() > 1e-3


def _at_a_kink(network, values) -> bool:
    """Whether an activation's input is (nearly) 0 where its derivative jumps: finite differences see the
    kink there, not the one-sided derivative autograd and chainrule take.

    Example values are rounded to two decimals, so an input of exactly 0 happens (a zero row of W)."""
    params = {name: values[name] for name in network.parameter_shapes}
    modules = list(to_torch(network, params))
    h = values["x"].T
    for linear, activation in zip(modules[::2], modules[1::2]):
        h = linear(h)
        if _jumps_at_zero(activation) and (h.abs() < 1e-4).any():
            return True
        h = activation(h)
    return False


@given(network=networks(max_depth=3, max_width=4), seed=st.integers(0, 2**16))
def test_gradcheck_passes(network, seed):
    values = random_values(network, 3, seed)
    assume(not _at_a_kink(network, values))
    assert check_with_gradcheck(compile_gradients(derive(network)), values)


def test_gradcheck_catches_a_wrong_gradient(doubled_gradients):
    network = Network([2, 3, 1], "tanh", "half_sse")
    broken = doubled_gradients(compile_gradients(derive(network)))
    assert not check_with_gradcheck(broken, random_values(network, 3, 0))


SMALL = [
    Network([2, 2, 1], ["tanh", "sigmoid"], "bce", bias=True),
    Network([2, 3], "softmax", "cross_entropy"),
    Network([1, 2, 2], ["softplus", "identity"], "mse"),
    Network([2, 2, 2], ["relu", "tanh"], "sse", bias=True),
    Network([2, 2, 3], ["tanh", "identity"], "softmax_cross_entropy", bias=True),
    Network([2, 2, 1], ["sigmoid", "identity"], "bce_with_logits", bias=True),
]


@pytest.mark.parametrize("network", SMALL, ids=lambda n: n.describe())
def test_closed_form_equals_sympy_diff_of_expanded_loss(network):
    """The expanded loss is built here from the definitions alone, then differentiated by SymPy."""
    derivation = derive(network)
    s = derivation.symbols
    a = s["x"]
    for layer, name in enumerate(network.activations, start=1):
        z = s[f"W{layer}"] * a + (s[f"b{layer}"] if network.bias else sympy.zeros(network.sizes[layer], 1))
        a = sympy.Matrix(ACTIVATIONS[name].outputs(list(z)))
    expanded = LOSSES[network.loss].per_sample(list(a), list(s["y"]))
    assert sympy.simplify(derivation.loss - expanded) == 0
    for name in network.parameter_shapes:
        matrix = s[name]
        for i in range(matrix.rows):
            for j in range(matrix.cols):
                difference = derivation.gradients[name][i, j] - sympy.diff(expanded, matrix[i, j])
                assert sympy.expand(difference) == 0 or sympy.simplify(difference) == 0, (name, i, j)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_verify_reports_ok_for_a_general_network(dtype):
    network = Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True)
    report = verify(derive(network), dtype=dtype, batch=5, seed=1)
    assert report.ok, str(report)
    assert {c.name for c in report.comparisons} == set(network.parameter_shapes)
    assert report.gradcheck is True


@given(
    network=networks(),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 9),
    chunk=st.integers(1, 4),
    input_gradient=st.booleans(),
    form=st.sampled_from(["matrix", "elementwise"]),
)
def test_gradients_in_chunks_of_samples_equal_autograd_float64(network, seed, batch, chunk, input_gradient, form):
    """A batch run in chunks (the last one shorter) adds up to the whole batch's gradients, the loss and
    mean reductions included, and puts ∂L/∂x's columns together."""
    wrt = ("x",) if input_gradient and form == "matrix" else ()  # ∂L/∂x is compiled in the matrix form only
    values = random_values(network, batch, seed)
    params = {name: values[name] for name in network.parameter_shapes}
    loss, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params, wrt)
    compiled = compile_gradients(derive(network, wrt=wrt), form, chunk=chunk)
    ours = compiled(values["x"], values["y"], params)
    our_loss, with_loss = compiled.value_and_grad(values["x"], values["y"], params)
    assert _relative_error(our_loss, loss) <= 1e-10
    for name in reference:
        assert ours[name].shape == reference[name].shape
        assert _relative_error(ours[name], reference[name]) <= 1e-10, name
        assert _relative_error(with_loss[name], reference[name]) <= 1e-10, name


def test_a_large_cpu_batch_runs_in_chunks_that_add_up_to_autograd():
    """chunk="auto" splits a large batch on the CPU (the size from CHUNK_BYTES), never a small one."""
    import numeric._compile

    network = Network([16, 16, 16], ["tanh", "identity"], "softmax_cross_entropy", bias=True, reduction="mean")
    values = random_values(network, 10_000, 0)  # the most sample_values draws
    params = {name: values[name] for name in network.parameter_shapes}
    compiled = compile_gradients(derive(network))
    calls = []
    generated = compiled._run_gradients
    compiled._run_gradients = lambda x, *rest: calls.append(x.shape[1]) or generated(x, *rest)
    ours = compiled(values["x"], values["y"], params)
    assert len(calls) > 1 and sum(calls) == 10_000
    assert max(calls) * 3 * sum(network.sizes) * 8 <= numeric._compiled.CHUNK_BYTES
    reference = autograd_gradients(network, values["x"], values["y"], params)
    for name in reference:
        assert _relative_error(ours[name], reference[name]) <= 1e-10, name
    calls.clear()
    compiled(values["x"][:, :100], values["y"][:, :100], params)
    assert calls == [100]


def test_a_bad_chunk_is_refused():
    derivation = derive(Network([2, 2], "sigmoid", "half_sse"))
    for bad in (0, -3, 2.5, "big", True, numpy.int64(0)):
        with pytest.raises((InputError, InputTypeError), match="chunk must be"):
            compile_gradients(derivation, chunk=bad)
    assert compile_gradients(derivation, chunk=numpy.int64(8)).chunk == 8  # any integer type
