"""check_backward: hand-written backward passes with each classic mistake planted are named; correct code passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_general import networks
from torch import nn

from numeric import MISTAKES, check_backward, compile_gradients
from numeric.cli import main
from numeric.testing import assert_backward_matches
from symbolic import InputError, InputTypeError, Network, derive

ROOT = Path(__file__).resolve().parent.parent
# square W1 and W2 (3 x 3), so that every catalogued mistake can happen in it
NETWORK = Network([3, 3, 3, 2], ["tanh", "sigmoid", "sigmoid"], "bce", bias=True)


def student(x, y, p, mistake=None, mean=False):
    """A hand-written backward pass of NETWORK, as a student writes it, with ``mistake`` planted."""
    a1 = torch.tanh(p["W1"] @ x + p["b1"])
    a2 = torch.sigmoid(p["W2"] @ a1 + p["b2"])
    a3 = torch.sigmoid(p["W3"] @ a2 + p["b3"])
    d3 = (y - a3) if mistake == "sign" else (a3 - y)  # bce after a sigmoid: ŷ − y
    if mean != (mistake == "batch_scale"):
        d3 = d3 / x.shape[1]
    up2 = p["W3"].T @ d3
    if mistake == "missing_activation_derivative":
        d2 = up2
    elif mistake == "derivative_at_output":
        d2 = up2 * torch.sigmoid(a2) * (1 - torch.sigmoid(a2))
    else:
        d2 = up2 * a2 * (1 - a2)
    up1 = (p["W2"] @ d2) if mistake == "missing_transpose" else (p["W2"].T @ d2)
    d1 = up1 * (1 - a1**2)
    return {
        "W1": d1 @ (a1 if mistake == "wrong_layer_input" else x).T,
        "b1": d1 if mistake == "bias_not_summed" else d1.sum(1, keepdim=True),
        "W2": d2 @ a1.T,
        "b2": d2.sum(1, keepdim=True),
        "W3": d3 @ a2.T,
        "b3": d3.sum(1, keepdim=True),
    }


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_correct_code_passes(reduction):
    network = Network(NETWORK.sizes, NETWORK.activations, NETWORK.loss, bias=True, reduction=reduction)
    report = check_backward(lambda x, y, p: student(x, y, p, mean=reduction == "mean"), network)
    assert report.ok and report.mistakes == ()
    assert "verdict: OK" in str(report)
    assert_backward_matches(lambda x, y, p: student(x, y, p, mean=reduction == "mean"), network, seed=3)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_planted_mistake_is_named(mistake, reduction):
    network = Network(NETWORK.sizes, NETWORK.activations, NETWORK.loss, bias=True, reduction=reduction)
    report = check_backward(lambda x, y, p: student(x, y, p, mistake, mean=reduction == "mean"), network)
    assert not report.ok
    assert {m.name for m in report.mistakes} == {mistake}, str(report)
    wrong = {name for name, c in report.errors.items() if not c.ok}
    assert {m.parameter for m in report.mistakes} == wrong
    assert f"{mistake} (" in str(report)


def test_an_unexplained_error_is_reported_as_unknown():
    def off(x, y, p):
        gradients = student(x, y, p)
        gradients["W2"] = gradients["W2"] * 1.5
        return gradients

    report = check_backward(off, NETWORK)
    assert [(m.parameter, m.name) for m in report.mistakes] == [("W2", "unknown")]


def test_two_mistakes_at_once_are_not_guessed_as_one():
    def two(x, y, p):
        gradients = student(x, y, p, "sign")
        gradients["W1"] = student(x, y, p, "wrong_layer_input")["W1"]  # right sign, wrong input
        return gradients

    report = check_backward(two, NETWORK)
    names = {m.parameter: m.name for m in report.mistakes}
    assert names["W1"] == "wrong_layer_input" and names["W3"] == "sign"


def test_pytest_helper_fails_with_the_report():
    with pytest.raises(AssertionError) as failure:
        assert_backward_matches(lambda x, y, p: student(x, y, p, "missing_transpose"), NETWORK)
    message = str(failure.value)
    assert "missing_transpose (W1, b1)" in message and "W2ᵀ δ3" not in message and "W2ᵀ δ2" in message


def _torch_student(inputs, targets, params, mistake=None):
    """The model form: rows are samples, torch's names and shapes, nn.CrossEntropyLoss() (mean)."""
    h = torch.relu(inputs @ params["0.weight"].T + params["0.bias"])
    logits = h @ params["2.weight"].T + params["2.bias"]
    d2 = torch.softmax(logits, 1) - nn.functional.one_hot(targets, logits.shape[1]).to(logits.dtype)
    if mistake != "batch_scale":
        d2 = d2 / inputs.shape[0]
    d1 = (d2 @ params["2.weight"]) * (h > 0)
    return {
        "0.weight": d1.T @ inputs,
        "0.bias": d1 if mistake == "bias_not_summed" else d1.sum(0),
        "2.weight": d2.T @ h,
        "2.bias": d2.sum(0),
    }


@pytest.mark.parametrize("mistake", [None, "batch_scale", "bias_not_summed"])
def test_model_form_with_torch_names_and_layout(mistake):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    inputs = torch.randn(6, 4, dtype=torch.float64)
    targets = torch.tensor([0, 2, 1, 1, 0, 2])
    report = check_backward(
        lambda i, t, p: _torch_student(i, t, p, mistake), model, nn.CrossEntropyLoss(), inputs, targets
    )
    assert set(report.errors) == {name for name, _ in model.named_parameters()}
    if mistake is None:
        assert report.ok, str(report)
    else:
        assert {m.name for m in report.mistakes} == {mistake}, str(report)
        assert "0.bias (b1)" in str(report)


def test_bad_backward_functions_are_named():
    with pytest.raises(InputTypeError, match="must return a dict of gradients keyed W1, b1"):
        check_backward(lambda x, y, p: [1, 2], NETWORK)
    with pytest.raises(InputError, match=r"missing W3, b3"):
        check_backward(lambda x, y, p: {k: v for k, v in student(x, y, p).items() if k[1] != "3"}, NETWORK)
    with pytest.raises(InputTypeError, match="takes the backward function first"):
        check_backward(NETWORK, NETWORK)
    with pytest.raises(InputError, match="values"):
        check_backward(student, NETWORK, values={"x": [[1.0]]})
    with pytest.raises(InputError, match=r"x has shape \[2, 1\]; expected \[3, B\]"):
        values = {"x": [[1.0], [2.0]], "y": [[0.5], [0.5]]}
        values.update({name: torch.zeros(shape) for name, shape in NETWORK.parameter_shapes.items()})
        check_backward(student, NETWORK, values=values)


def test_cli_check_names_the_planted_mistake_of_the_example(capsys):
    target = str(ROOT / "examples" / "student_backward.py") + ":backward"
    assert main(["check", target, "--sizes", "3,4,2", "--activation", "sigmoid", "--bias"]) == 1
    out = capsys.readouterr().out
    assert "derivative_at_output (W1, b1)" in out and "verdict: WRONG" in out


@pytest.mark.parametrize(
    "target, message",
    [
        ("missing.py:backward", "no file 'missing.py'"),
        ("examples/student_backward.py:forward", "has no function 'forward'; it has: backward"),
        ("examples/student_backward.py", "is not FILE.py:FUNCTION"),
    ],
)
def test_cli_check_errors_are_one_line(target, message):
    result = subprocess.run(
        [sys.executable, "-m", "numeric.cli", "check", target, "--sizes", "3,4,2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_readme_lists_the_catalogue():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("| name | the mistake |\n|---|---|\n")[1].split("\n\n")[0]
    assert [row.split("`")[1] for row in table.splitlines()] == list(MISTAKES)


@settings(max_examples=10)
@given(network=networks(max_depth=3, max_width=4), seed=st.integers(0, 2**16))
def test_any_network_right_passes_and_sign_flipped_is_named(network, seed):
    """The plumbing on random architectures: chainrule's own gradients pass; negated, they are `sign`."""
    compiled = compile_gradients(derive(network))
    assert check_backward(compiled, network, seed=seed).ok
    flipped = check_backward(lambda x, y, p: {k: -v for k, v in compiled(x, y, p).items()}, network, seed=seed)
    if not flipped.ok:  # all gradients can be 0 (a dead relu network): then the flip changes nothing
        assert "sign" in {m.name for m in flipped.mistakes}, str(flipped)
