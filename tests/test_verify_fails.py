"""verify can fail: each comparison's verdict follows its own error, not only gradcheck's.

A gradient doubled on purpose must be reported as a mismatch by the autograd comparison alone (gradcheck
off), and a comparison's verdict must agree with its error computed here by hand.
"""

from __future__ import annotations

import torch

from numeric import compile_gradients, verify
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
