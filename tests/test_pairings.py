"""Every activation × loss × reduction × bias pairing, deterministically: accepted ones give the gradients of an
independently written torch model (autograd, float64) and pass torch.autograd.gradcheck; the others are refused.

The pairings are enumerated from ``symbolic.ACTIVATIONS`` and ``symbolic.LOSSES``, so a new row of either table
is drawn here at once (and needs its reference in ``tests/reference_model.py``). The network is 3-4-5 with a
batch of 7, which collides with no width: a transpose or a sum over the wrong axis cannot pass by shape.
"""

from __future__ import annotations

import functools
import itertools

import pytest
import torch

from numeric import compile_gradients
from symbolic import ACTIVATIONS, LOSSES, Derivation, Network, NetworkError, derive
from tests.reference_model import ACTIVATIONS as REFERENCE_ACTIVATIONS
from tests.reference_model import LOSSES as REFERENCE_LOSSES
from tests.reference_model import OUTPUT_ACTIVATIONS, draw_values, reference_loss

SIZES = (3, 4, 5)
BATCH = 7  # no width of SIZES: a [5, 7] gradient cannot be mistaken for its transpose
assert BATCH not in SIZES
REDUCTIONS = ("sum", "mean")
FORMS = ("matrix", "elementwise")


def _activations(output: str) -> tuple[str, str]:
    """The hidden layer takes the output's activation too (its δ recursion goes through it), except an
    activation allowed on the last layer only, which gets tanh below it."""
    return (output, output) if not ACTIVATIONS[output].last_layer_only else ("tanh", output)


def _accepted(output: str, loss: str) -> bool:
    allowed = OUTPUT_ACTIVATIONS[loss]  # a KeyError here: a new loss needs its reference and its pairing
    return allowed is None or output in allowed


PAIRINGS = [
    (output, loss, reduction, bias)
    for output, loss, reduction, bias in itertools.product(ACTIVATIONS, LOSSES, REDUCTIONS, (False, True))
]
ACCEPTED = [p for p in PAIRINGS if _accepted(p[0], p[1])]
REFUSED = [p for p in PAIRINGS if not _accepted(p[0], p[1])]


def _name(pairing) -> str:
    output, loss, reduction, bias = pairing
    return f"{output}-{loss}-{reduction}{'-bias' if bias else ''}"


def test_every_table_row_has_an_independent_reference():
    assert set(ACTIVATIONS) <= set(REFERENCE_ACTIVATIONS)
    assert set(LOSSES) <= set(REFERENCE_LOSSES) and set(LOSSES) <= set(OUTPUT_ACTIVATIONS)
    assert ACCEPTED and REFUSED  # both kinds are drawn


@functools.cache
def _derivation(activations: tuple[str, ...], loss: str, reduction: str, bias: bool) -> Derivation:
    """One derivation per network, shared by both forms (SymPy's derivation is the slow part)."""
    return derive(Network(list(SIZES), list(activations), loss, bias=bias, reduction=reduction))


class _CompiledBackward(torch.autograd.Function):
    """The reference loss forward, chainrule's compiled gradients backward: gradcheck then compares the
    compiled gradients with finite differences of a loss chainrule did not write."""

    @staticmethod
    def forward(ctx, compiled, network, x, y, names, *params):
        ctx.compiled, ctx.x, ctx.y, ctx.names = compiled, x, y, names
        ctx.save_for_backward(*params)
        values = dict(zip(names, params))
        return reference_loss(network.activations, network.loss, network.reduction, x, y, values)

    @staticmethod
    def backward(ctx, grad_output):
        values = dict(zip(ctx.names, ctx.saved_tensors))
        gradients = ctx.compiled(ctx.x, ctx.y, values)
        return (None, None, None, None, None, *(grad_output * gradients[name] for name in ctx.names))


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("pairing", ACCEPTED, ids=_name)
def test_compiled_gradients_match_an_independent_torch_model(pairing, form):
    output, loss, reduction, bias = pairing
    activations = _activations(output)
    derivation = _derivation(activations, loss, reduction, bias)
    network = derivation.network
    assert network.activations == activations and network.loss == loss and network.reduction == reduction

    x, y, params = draw_values(SIZES, loss, bias, BATCH, seed=len(_name(pairing)))
    assert set(params) == set(network.parameter_shapes)
    compiled = compile_gradients(derivation, form)
    ours = compiled(x, y, params)

    leaves = {name: value.clone().requires_grad_(True) for name, value in params.items()}
    reference = reference_loss(activations, loss, reduction, x, y, leaves)
    expected = dict(zip(leaves, torch.autograd.grad(reference, list(leaves.values()))))
    assert torch.isfinite(reference)
    for name in network.parameter_shapes:
        assert ours[name].shape == params[name].shape, name
        torch.testing.assert_close(ours[name], expected[name], rtol=1e-9, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")

    names = tuple(network.parameter_shapes)
    inputs = tuple(params[name].clone().requires_grad_(True) for name in names)
    # every entry for the matrix form; the element-wise form, already held to autograd above, in one random
    # direction (gradcheck's fast_mode), which keeps the file's time small
    assert torch.autograd.gradcheck(
        lambda *p: _CompiledBackward.apply(compiled, network, x, y, names, *p),
        inputs,
        eps=1e-6,
        atol=1e-6,
        fast_mode=form == "elementwise",
    )


@pytest.mark.parametrize("pairing", REFUSED, ids=_name)
def test_a_pairing_without_meaning_is_refused(pairing):
    output, loss, reduction, bias = pairing
    with pytest.raises(NetworkError, match=loss):
        Network(list(SIZES), list(_activations(output)), loss, bias=bias, reduction=reduction)


@pytest.mark.parametrize("hidden", [name for name, rule in ACTIVATIONS.items() if rule.last_layer_only])
def test_a_last_layer_only_activation_is_refused_below_the_output(hidden):
    with pytest.raises(NetworkError, match=hidden):
        Network(list(SIZES), [hidden, "sigmoid"], "half_sse")
