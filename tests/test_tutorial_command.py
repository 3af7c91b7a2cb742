"""The tutorial command prints computed numbers: each one is checked here against a reference computed apart.

The reference: the tutorial's network written out in mpmath at 40 digits (forward pass, loss, and each gradient
entry as mpmath.diff of the loss), and a float32 torch model for the compiled float32 column. The tutorial's own
printed numbers appear in the command's "tutorial" column only, and are compared, not shown as chainrule's.
Every number is read from the printed text and compared to the precision it is printed with, so a value
printed in the wrong place (z1 where a1 belongs), a stale one or a copied one fails.
"""

from __future__ import annotations

import contextlib
import io
import re

import mpmath
import pytest
import torch

from numeric.cli import main
from symbolic import TUTORIAL_PRINTED

# the tutorial's network and values, as its text gives them (not read from chainrule's tables)
X, Y = [1], [1, 0]
W1, W2 = [[1], [2]], [[3, 4], [5, 6]]
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]\d+)?")


def _forward(w1, w2):
    """z1, a1, z2, a2 and the loss ½ Σ (a2 − y)² in mpmath."""
    sigmoid = lambda v: 1 / (1 + mpmath.exp(-v))  # noqa: E731
    z1 = [sum(w * x for w, x in zip(row, X)) for row in w1]
    a1 = [sigmoid(v) for v in z1]
    z2 = [sum(w * a for w, a in zip(row, a1)) for row in w2]
    a2 = [sigmoid(v) for v in z2]
    return z1, a1, z2, a2, sum((a - t) ** 2 for a, t in zip(a2, Y)) / 2


def _reference() -> dict[str, list[mpmath.mpf]]:
    with mpmath.workdps(40):
        _, a1, _, a2, loss = _forward(W1, W2)
        flat = [v for row in W1 for v in row] + [v for row in W2 for v in row]

        def loss_at(*weights):
            return _forward([[weights[0]], [weights[1]]], [list(weights[2:4]), list(weights[4:6])])[-1]

        gradient = [mpmath.diff(loss_at, flat, tuple(int(k == i) for k in range(6))) for i in range(6)]
        return {"y1": a1, "y2": a2, "loss": [loss], "gradient": gradient}


def _float32_autograd() -> list[float]:
    """The tutorial's own code: float32 torch, loss.backward()."""
    x = torch.tensor([X], dtype=torch.float32).T
    y = torch.tensor([Y], dtype=torch.float32).T
    w1 = torch.tensor(W1, dtype=torch.float32, requires_grad=True)
    w2 = torch.tensor(W2, dtype=torch.float32, requires_grad=True)
    loss = 0.5 * ((torch.sigmoid(w2 @ torch.sigmoid(w1 @ x)) - y) ** 2).sum()
    loss.backward()
    return [*w1.grad.flatten().tolist(), *w2.grad.flatten().tolist()]


def _unit(text: str) -> float:
    """One unit of the last digit printed in ``text`` (0.7311: 1e-4; 1.2243265e-04: 1e-11)."""
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".")[1])
    return 10.0 ** (int(exponent or 0) - decimals)


def _close(text: str, reference: float, units: float = 0.5) -> bool:
    """``text`` is ``reference`` rounded to the digits printed (``units``: how many units of the last digit off)."""
    return abs(float(text) - float(reference)) <= units * _unit(text) * (1 + 1e-9)


@pytest.fixture(scope="module")
def printed() -> str:
    """What ``chainrule tutorial`` prints (run once for the module's tests)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["tutorial"])
    assert code == 0, out.getvalue()
    return out.getvalue()


def test_network_and_values_lines_are_the_tutorials(printed):
    lines = printed.splitlines()
    assert lines[1].strip() == "z1 = W1 x, y1 = σ(z1), z2 = W2 y1, y2 = σ(z2), L = Σ (y2 − y)²/2"
    assert lines[2].strip() == f"x = [{X}], y = {[[v] for v in Y]}, W1 = {W1}, W2 = {W2}"


@pytest.mark.parametrize("name, row", [("y1", "y1 = a1"), ("y2", "y2 = a2"), ("loss", "loss")])
def test_forward_values_are_computed(printed, name, row):
    line = next(line for line in printed.splitlines() if line.strip().startswith(row + " "))
    ours, theirs = line.split("tutorial:")
    ours_numbers, theirs_numbers = NUMBER.findall(ours.split("=")[-1]), NUMBER.findall(theirs)
    reference = _reference()[name]
    assert len(ours_numbers) == len(reference), line
    for text, value in zip(ours_numbers, reference):
        assert _close(text, value), (line, text, value)
    expected = TUTORIAL_PRINTED[name]
    expected = [v for row_ in expected for v in row_] if isinstance(expected, list) else [expected]
    assert [float(t) for t in theirs_numbers] == expected  # the reference column: the tutorial's own numbers


def test_gradient_table_is_computed(printed):
    reference, float32 = _reference()["gradient"], _float32_autograd()
    rows = [line.split() for line in printed.splitlines() if line.strip().startswith("dL/dW")]
    assert [row[0] for row in rows] == [
        "dL/dW1[1,1]",
        "dL/dW1[2,1]",
        *(f"dL/dW2[{i},{j}]" for i in (1, 2) for j in (1, 2)),
    ]
    tutorial = [v for name in ("W1", "W2") for row in TUTORIAL_PRINTED[name] for v in row]
    for row, exact, single, theirs in zip(rows, reference, float32, tutorial):
        _, tutorial_column, closed_form, compiled32, compiled64, autograd64 = row
        assert float(tutorial_column) == theirs, row  # shown as printed by the tutorial
        for text in (closed_form, compiled64, autograd64):  # float64 and exact: right to the last printed digit
            assert _close(text, exact), (row, text, exact)
        assert _close(compiled32, single, units=1), (row, compiled32, single)  # float32 rounding may differ by 1
        assert _close(tutorial_column, single, units=1), (row, tutorial_column, single)
    assert "the tutorial's printed numbers: all 11 agree" in printed


def test_a_tutorial_number_that_disagrees_is_named_and_fails(monkeypatch, capsys):
    """The tutorial's numbers are compared: one changed on its page is named, and the command exits 1."""
    import symbolic

    changed = {**TUTORIAL_PRINTED, "W1": [[1.2243e-04], [7.9005e-05]], "y1": [[0.7311], [0.8818]]}
    monkeypatch.setattr(symbolic, "TUTORIAL_PRINTED", changed)
    assert main(["tutorial"]) == 1
    assert "the tutorial's printed numbers: y1 = a1, dL/dW1[2,1] differ" in capsys.readouterr().out
