"""verify can fail: each comparison's verdict follows its own error, not only gradcheck's.

A gradient doubled on purpose must be reported as a mismatch by the autograd comparison alone (gradcheck
off), and a comparison's verdict must agree with its error computed here by hand.
"""

from __future__ import annotations

import pytest
import torch

import numeric._verify
from numeric import CompiledGradients, compile_gradients, random_values, verify
from numeric._verify import compare
from symbolic import Network, derive, words


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

    return CompiledGradients(compiled.derivation, compiled.form, wrong_gradients, lambda: wrong_with_loss)


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


# --- size: which side is wrong when autograd is NaN/inf, and gradcheck's result counts ----------------------

# softmax + cross_entropy at a gap of 800: autograd's softmax gives an exact 0, log(0) = -inf, 0·(-inf) = NaN
GAP = (
    Network([2, 2], "softmax", "cross_entropy"),
    {"x": [[1.0], [0.0]], "y": [[0.0], [1.0]], "W1": [[800.0, 0.0], [0.0, 0.0]]},
)
# sigmoid + bce at z = 40 with y = 0 and at z = -40 with y = 1: σ rounds to 1 (or 0), log1p(-1) = -inf
SATURATED = (
    Network([1, 2], "sigmoid", "bce"),
    {"x": [[1.0, 1.0]], "y": [[0.0, 1.0], [1.0, 0.5]], "W1": [[40.0], [-40.0]]},
)


def _exact(network, values):
    """∂L/∂W1 at 50 digits with mpmath, from the definitions (an independent reference of the closed form)."""
    import mpmath

    mpmath.mp.dps = 50
    x, y, w = (mpmath.matrix(values[k]) for k in ("x", "y", "W1"))
    gradient = mpmath.zeros(w.rows, w.cols)
    for b in range(x.cols):
        z = [sum(w[k, j] * x[j, b] for j in range(w.cols)) for k in range(w.rows)]
        if network.activations[-1] == "softmax":
            total = sum(mpmath.exp(v) for v in z)
            delta = [mpmath.exp(v) / total - y[k, b] for k, v in enumerate(z)]
        else:
            delta = [1 / (1 + mpmath.exp(-v)) - y[k, b] for k, v in enumerate(z)]
        for k in range(w.rows):
            for j in range(w.cols):
                gradient[k, j] += delta[k] * x[j, b]
    return torch.tensor([[float(gradient[k, j]) for j in range(w.cols)] for k in range(w.rows)], dtype=torch.float64)


@pytest.mark.parametrize("case", [GAP, SATURATED], ids=["softmax-gap-800", "sigmoid-bce-40"])
def test_autograd_nan_is_named_and_the_verdict_follows_the_exact_reference(case):
    network, values = case
    report = verify(derive(network), values)
    assert torch.isnan(report.autograd["W1"]).any() or torch.isinf(report.autograd["W1"]).any()
    exact = _exact(network, values)
    assert torch.allclose(report.compiled["W1"], exact, rtol=1e-12, atol=1e-15)  # the compiled side is right
    assert report.ok
    (settlement,) = report.settlements
    bad = int((~torch.isfinite(report.autograd["W1"])).sum())
    assert (settlement.judge, settlement.agrees, settlement.count) == ("closed_form", True, bad)
    en = str(report)
    assert f"W1: autograd is NaN/inf at {bad} of " in en and "agrees with the closed form (exact)" in en
    assert "MISMATCH" not in en and en.endswith("verdict: OK")
    zh = report.text("zh")
    assert settlement.note().text("zh") in zh and words("zh")["judge_closed_form"] in zh


@pytest.mark.parametrize("case", [GAP, SATURATED], ids=["softmax-gap-800", "sigmoid-bce-40"])
def test_a_wrong_gradient_where_autograd_is_nan_is_still_a_mismatch(case, doubled_gradients):
    network, values = case
    derivation = derive(network)
    report = verify(derivation, values, compiled=doubled_gradients(compile_gradients(derivation)))
    assert not report.ok and "disagrees with the closed form (exact)" in str(report)


def test_over_the_closed_form_limit_the_finite_differences_judge_from_the_logits(doubled_gradients):
    """No closed form: the sampled finite differences read softmax + cross_entropy from the logits (finite
    where autograd's loss is NaN) and settle it; a doubled gradient fails them."""
    network = Network([30, 20], "softmax", "cross_entropy")
    values = random_values(network, 2, 0)
    values["W1"][0] = 0.0
    values["W1"][0, 0] = 900 / values["x"][0, 0]  # sample 1: unit 1 leads by 900; its class is another
    values["y"][:, 0] = 0.0
    values["y"][1, 0] = 1.0
    derivation = derive(network)
    report = verify(derivation, values)
    assert report.closed_form is None and report.ok, str(report)
    assert [(s.judge, s.agrees) for s in report.settlements] == [("finite_differences", True)]
    assert "agrees with the finite differences" in str(report)
    broken = verify(derivation, values, compiled=doubled_gradients(compile_gradients(derivation)))
    assert not broken.ok and broken.gradcheck is False


def test_without_an_exact_reference_a_nan_stays_unsettled():
    """Over the closed-form limit with the finite differences off, nothing exact can say which side is right."""
    wide = Network([30, 20], "softmax", "cross_entropy")
    numbers = random_values(wide, 2, 0)
    numbers["W1"][0] = 0.0
    numbers["W1"][0, 0] = 900 / numbers["x"][0, 0]
    numbers["y"][:, 0] = 0.0
    numbers["y"][1, 0] = 1.0
    unsettled = verify(derive(wide), numbers, gradcheck="off")
    assert [(s.judge, s.agrees) for s in unsettled.settlements] == [(None, None)]
    assert not unsettled.ok and "no exact reference could settle" in str(unsettled)


@pytest.mark.parametrize("mode", ["full", "sample"])
def test_a_wrong_gradient_that_only_the_finite_differences_catch_fails_verify(mode, monkeypatch, doubled_gradients):
    """Compiled and autograd wrong the same way (autograd doubled here too) agree with each other, and the
    network is over the closed-form limit: only the finite differences, an independent reference, catch it."""
    network = Network([30, 20], "tanh", "half_sse", bias=True)
    derivation = derive(network)
    real = numeric._verify.autograd_loss_and_gradients

    def doubled_autograd(*args, **kwargs):
        loss, gradients = real(*args, **kwargs)
        return loss, {name: 2 * gradient for name, gradient in gradients.items()}

    monkeypatch.setattr(numeric._verify, "autograd_loss_and_gradients", doubled_autograd)
    report = verify(derivation, gradcheck=mode, compiled=doubled_gradients(compile_gradients(derivation)))
    assert all(c.ok for c in report.comparisons) and report.closed_form is None
    assert report.gradcheck is False and not report.ok


def test_a_report_whose_only_failing_part_is_gradcheck_is_not_ok():
    import dataclasses

    report = verify(derive(Network([2, 3, 1], "tanh", "sse")))
    assert report.ok and report.gradcheck is True
    assert not dataclasses.replace(report, gradcheck=False).ok
    assert dataclasses.replace(report, gradcheck=None).ok  # off: nothing failed


def test_the_largest_difference_is_found_in_any_chunk_and_a_nan_anywhere_counts():
    """compare reads large gradients a chunk at a time: an error in the last entry, past the first chunk,
    is the one it reports, against the error computed by hand in one pass."""
    reference = torch.linspace(-1, 1, 5 * (2**18 + 1), dtype=torch.float64).reshape(-1, 5)  # past 2**20
    ours = reference.clone()
    ours[-1, -1] += 1e-3
    by_hand = (ours - reference).abs().max().item() / reference.abs().max().item()
    assert compare("W1", ours, reference, 1e-4).max_rel_error == by_hand
    ours[-1, -1] = float("nan")
    broken = compare("W1", ours, reference, 1e-4)
    assert broken.max_abs_error == float("inf") and broken.nonfinite_ours == 1 and not broken.ok
