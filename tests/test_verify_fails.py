"""verify can fail: each comparison's verdict follows its own error, not only gradcheck's.

A gradient doubled on purpose must be reported as a mismatch by the autograd comparison alone (gradcheck
off), and a comparison's verdict must agree with its error computed here by hand.
"""

from __future__ import annotations

import torch

from numeric import CompiledGradients, compile_gradients, verify
from numeric._verify import compare
from symbolic import Network, derive


def test_a_doubled_gradient_is_a_mismatch_without_gradcheck(doubled_gradients):
    derivation = derive(Network([2, 3, 1], ["tanh", "sigmoid"], "bce"))
    broken = doubled_gradients(compile_gradients(derivation))
    report = verify(derivation, compiled=broken, gradcheck=False)
    assert report.gradcheck is None
    assert not any(c.ok for c in report.comparisons)
    assert not report.ok and "MISMATCH" in str(report)
    assert verify(derivation, gradcheck=False).ok  # the real gradients pass the same check


def test_each_verdict_agrees_with_the_error_computed_by_hand():
    reference = torch.tensor([[1.0, -2.0], [4.0, 0.5]], dtype=torch.float64)
    for scale, rtol in ((1.0, 1e-10), (1.0 + 1e-6, 1e-4), (1.0 + 1e-3, 1e-4), (2.0, 0.5)):
        ours = reference * scale
        by_hand = (ours - reference).abs().max().item() / reference.abs().max().item()
        comparison = compare("W1", ours, reference, rtol)
        assert comparison.max_rel_error == by_hand
        assert comparison.ok == (by_hand <= rtol)


def _with_one_gradient_doubled(compiled: CompiledGradients, name: str) -> CompiledGradients:
    position = compiled.names.index(name)
    gradients_only, with_loss = compiled._gradients_only, compiled._with_loss  # builds them

    def wrong_gradients(*args):
        gradients = list(gradients_only(*args))
        gradients[position] = 2 * gradients[position]
        return gradients

    def wrong_with_loss(*args):
        loss, *gradients = with_loss(*args)
        gradients[position] = 2 * gradients[position]
        return [loss, *gradients]

    return CompiledGradients(compiled.derivation, compiled.form, wrong_gradients, wrong_with_loss)


def test_a_wrong_input_gradient_is_caught_by_autograd_and_by_finite_differences():
    """∂L/∂x is checked like a parameter's: against autograd's inputs.grad, and by gradcheck."""
    derivation = derive(Network([2, 3, 1], ["tanh", "sigmoid"], "bce", bias=True), wrt=("x",))
    broken = _with_one_gradient_doubled(compile_gradients(derivation), "x")
    report = verify(derivation, compiled=broken, gradcheck="full")
    verdicts = {c.name: c.ok for c in report.comparisons}
    assert verdicts == {"W1": True, "b1": True, "W2": True, "b2": True, "x": False}
    assert report.gradcheck is False and not report.ok
    sampled = verify(derivation, compiled=broken, gradcheck="sample")
    assert sampled.gradcheck is False and "and for x" in sampled.gradcheck_detail
    good = verify(derivation, gradcheck="full")
    assert good.ok and "and of x (8 entries)" in good.gradcheck_detail  # 2 inputs x 4 samples


def test_a_right_input_gradient_passes_finite_differences_at_a_large_summed_loss():
    """Rounding in a central difference grows with the loss (a sum over 100 samples here): gradcheck's
    tolerance follows it, or ∂L/∂x's small entries would fail although they equal autograd's."""
    network = Network([16, 16, 16], ["sigmoid", "identity"], "half_sse", bias=True)  # targets N(0, 1)
    derivation = derive(network, wrt=("x",))
    report = verify(derivation, batch=100, gradcheck="full")
    assert report.loss > 100 and report.ok and report.gradcheck is True
    broken = _with_one_gradient_doubled(compile_gradients(derivation), "x")
    assert verify(derivation, batch=100, gradcheck="full", compiled=broken).gradcheck is False


def test_auto_counts_the_entries_of_x_toward_the_full_check():
    from numeric._verify import FULL_GRADCHECK_LIMIT

    network = Network([4, 3, 2], "tanh", "half_sse")
    batch = FULL_GRADCHECK_LIMIT // 4 + 1  # x alone is over the limit; the parameters are not
    plain = verify(derive(network), batch=batch, gradcheck="auto")
    with_x = verify(derive(network, wrt=("x",)), batch=batch, gradcheck="auto")
    assert plain.gradcheck_detail.startswith("every entry")
    assert with_x.gradcheck_detail.startswith("sampled") and with_x.ok
