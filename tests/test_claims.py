"""Each sentence that claims something appears exactly where it is true, judged by an independent reference.

"δ = a − y" is checked against torch autograd: for a one-layer network fed x = 1, ∂L/∂W is δ itself, so
autograd's gradient equals a − y exactly when the sentence may be printed.
"""

from __future__ import annotations

import pytest
import torch

from numeric import autograd_gradients
from symbolic import Network, derive

PAIRS = [
    ("softmax", "cross_entropy"),
    ("softmax", "half_sse"),
    ("softmax", "sse"),
    ("softmax", "mse"),
    ("softmax", "bce"),
    ("sigmoid", "bce"),
    ("sigmoid", "half_sse"),
    ("tanh", "half_sse"),
    ("identity", "half_sse"),
    ("identity", "sse"),
    ("relu", "mse"),
]
DIFFERENCE = ("simplifies the error to", "化简为")


def _error_is_prediction_minus_target(activation: str, loss: str, units: int, seed: int) -> bool:
    """By autograd, at random weights and a random target (a probability vector where the loss wants one)."""
    network = Network([1, units], activation, loss)
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(units, 1, generator=generator, dtype=torch.float64)
    target = torch.rand(units, 1, generator=generator, dtype=torch.float64)
    if activation == "softmax":
        target = target / target.sum()
    x = torch.ones(1, 1, dtype=torch.float64)
    delta = autograd_gradients(network, x, target, {"W1": weights})["W1"]
    prediction = {
        "softmax": lambda z: torch.softmax(z, dim=0),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "identity": lambda z: z,
        "relu": torch.relu,
    }[activation](weights)  # z = W x = W for x = 1
    return torch.allclose(delta, prediction - target, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("activation", "loss"), PAIRS)
def test_delta_is_difference_printed_exactly_where_autograd_agrees(activation, loss):
    derivation = derive(Network([2, 3], activation, loss))
    true = all(_error_is_prediction_minus_target(activation, loss, 3, seed) for seed in range(3))
    for lang in ("en", "zh"):
        for output in (derivation.text(lang=lang), derivation.latex(lang=lang), derivation.markdown(lang=lang)):
            assert any(phrase in output for phrase in DIFFERENCE) == true, (activation, loss, lang)
    if true and activation == "softmax":  # only for a probability target, and the sentence says so
        assert "probability vector" in derivation.text()


@pytest.mark.parametrize(
    ("activation", "loss"), [("softmax", "cross_entropy"), ("sigmoid", "bce"), ("tanh", "half_sse")]
)
def test_with_the_mean_the_sentence_says_divided_by_b_exactly_where_autograd_agrees(activation, loss):
    """With reduction mean, δ = (a − y)/B: autograd's ∂L/∂W at x = 1 over a batch of 3 equal samples is 3 · δ of
    one of them, so it equals a − y (not (a − y)/3) exactly when the sentence may be printed, with its 1/B."""
    network = Network([1, 3], activation, loss, reduction="mean")
    generator = torch.Generator().manual_seed(5)
    weights = torch.randn(3, 1, generator=generator, dtype=torch.float64)
    target = torch.rand(3, 1, generator=generator, dtype=torch.float64)
    target = target / target.sum() if activation == "softmax" else target
    x = torch.ones(1, 3, dtype=torch.float64)
    batch = target.expand(3, 3).contiguous()
    gradient = autograd_gradients(network, x, batch, {"W1": weights})["W1"]  # Σ over 3 samples of δ_s · 1
    prediction = {"softmax": lambda z: torch.softmax(z, dim=0), "sigmoid": torch.sigmoid, "tanh": torch.tanh}
    true = torch.allclose(gradient, prediction[activation](weights) - target, rtol=1e-12, atol=1e-12)
    text = derive(network).text()
    assert any(phrase in text for phrase in DIFFERENCE) == true, (activation, loss)
    if true:
        assert "= 1/B (a⁽¹⁾ − y)" in text


def test_the_issues_counterexample_has_no_such_sentence():
    """3-4-3 tanh/softmax with half_sse: δ2 ≠ a2 − y (the issue's numbers), so the page must not say it."""
    derivation = derive(Network([3, 4, 3], ["tanh", "softmax"], "half_sse"))
    for output in (derivation.text(), derivation.latex(document=True), derivation.markdown()):
        assert "simplifies the error" not in output and "cancel" not in output


@pytest.mark.parametrize(
    ("activation", "has_output_form"),
    [("sigmoid", True), ("tanh", True), ("relu", False), ("softplus", False), ("identity", False)],
)
def test_written_through_the_output_only_where_such_a_form_exists(activation, has_output_form):
    text = derive(Network([2, 2, 1], [activation, "identity"], "half_sse")).text()
    assert ("in terms of its output" in text) == has_output_form


@pytest.mark.parametrize("outputs", [5, 6, 7])
def test_wide_softmax_sums_are_written_with_sigma_in_every_format(outputs):
    """The ≥5-output bug: the matrix program's 𝟏ᵀ(y) leaked into LaTeX as 1ᵀ(y₁)."""
    derivation = derive(Network([2, outputs], "softmax", "cross_entropy"))
    latex, markdown, text = derivation.latex(), derivation.markdown(), derivation.text()
    for output in (latex, markdown):
        assert r"\mathbf{1}^{\top}" not in output
        assert rf"\sum_{{k=1}}^{{{outputs}}} y_{{k}}" in output
    assert f"Σ[k=1..{outputs}] y[k]" in text
