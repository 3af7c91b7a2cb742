"""Numbers in every step: each worked δ and gradient entry, and the float32 box, against exact references.

A number on a page is a claim. Each worked line ``δ⁽²⁾[1] = (0.9967191 − 1) · … = −1.0729×10⁻⁵`` is read back from
the text page: its arithmetic, redone here from the numbers it shows, must give the result it shows (to the five
digits shown), and that result must be the entry of an independent reference, backpropagation written here
with mpmath at 50 digits. One network sits near saturation (1 − a ≈ 10⁻⁹), where rounded inputs cancel: the
page must keep enough digits there. The float32 box is compared with torch's autograd in float32.
"""

from __future__ import annotations

import ast
import math
import operator
import re

import mpmath
import pytest
import torch

from symbolic import TUTORIAL, TUTORIAL_PRINTED, TUTORIAL_VALUES, Network, derive, sample_values
from symbolic._render import torch_style

mpmath.mp.dps = 50
SATURATED = {**TUTORIAL_VALUES, "W1": [[2.0], [3.0]], "W2": [[9.0, 10.0], [11.0, 12.0]]}  # a⁽²⁾ ≈ 1 − 10⁻⁹
TANH = Network([2, 3, 2], ["tanh", "sigmoid"], "half_sse")
CASES = {
    "tutorial": (TUTORIAL, TUTORIAL_VALUES),
    "saturated": (TUTORIAL, SATURATED),
    "tanh-sigmoid": (TANH, sample_values(TANH, seed=3)),
}
FUNCTIONS = {
    "sigmoid": (lambda z: 1 / (1 + mpmath.exp(-z)), lambda a: a * (1 - a)),
    "tanh": (mpmath.tanh, lambda a: 1 - a * a),
}


def _reference(network: Network, values) -> dict[str, list]:
    """Backpropagation by hand, in mpmath (one sample, half_sse): δ_L = (a − y) f'(z), δ_l = (Wᵀδ) ⊙ f'(z)."""
    mp = lambda rows: mpmath.matrix([[mpmath.mpf(repr(float(v))) for v in row] for row in rows])  # noqa: E731
    a, outputs, derivatives = mp(values["x"]), [mp(values["x"])], []
    for index, name in enumerate(network.activations, start=1):
        function, derivative = FUNCTIONS[name]
        z = mp(values[f"W{index}"]) * a
        a = z.apply(function)
        outputs.append(a)
        derivatives.append(a.apply(derivative))
    depth = network.depth
    delta = {depth: mpmath.matrix([(a[i] - mp(values["y"])[i]) * derivatives[-1][i] for i in range(a.rows)])}
    for index in range(depth - 1, 0, -1):
        back = mp(values[f"W{index + 1}"]).T * delta[index + 1]
        delta[index] = mpmath.matrix([back[i] * derivatives[index - 1][i] for i in range(back.rows)])
    result = {f"δ⁽{i}⁾": [delta[i][k] for k in range(delta[i].rows)] for i in delta}
    for index in range(1, depth + 1):
        result[f"W{index}"] = delta[index] * outputs[index - 1].T
    return result


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow}


def _arithmetic(printed: str) -> mpmath.mpf:
    """A worked line's middle side, as printed, computed here (numbers, + − ·, parentheses, ² only)."""
    source = printed.replace("−", "-").replace("·", "*").replace("²", "**2")
    source = re.sub(r"(\d)×10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)", lambda m: f"{m[1]}e{m[2].translate(_SUPERSCRIPTS)}", source)

    def value(node):
        if isinstance(node, ast.Constant):
            return mpmath.mpf(repr(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"not a number expression: {printed!r}")

    return value(ast.parse(source, mode="eval").body)


def _number(printed: str) -> float:
    printed = printed.replace("−", "-")
    if "×10" in printed:
        mantissa, exponent = printed.split("×10")
        return float(mantissa) * 10 ** int(exponent.translate(_SUPERSCRIPTS))
    return float(printed)


def _worked_lines(text: str) -> list[tuple[str, str, str]]:
    """(left side, worked arithmetic, result) of every worked line (a long one continues on the next line)."""
    start = text.index("Backward, entry by entry")
    lines = text[start:].split("\n")[1:]
    worked = []
    for k, line in enumerate(lines):
        if not line.startswith("  ") or line.strip().startswith("="):
            continue
        if re.match(r"  (δ⁽.⁾|∂L/∂W⁽.⁾) = \[", line):  # the vectors after the worked lines
            break
        sides = line.strip().split(" = ")
        if len(sides) == 2 and k + 1 < len(lines) and lines[k + 1].strip().startswith("= "):
            sides.append(lines[k + 1].strip()[2:])
        worked.append(tuple(sides))
    return worked


@pytest.mark.parametrize("name", CASES)
def test_each_worked_line_gives_its_result_and_the_result_is_exact(name):
    network, values = CASES[name]
    text = derive(network).text(values=values)
    reference = _reference(network, values)
    lines = _worked_lines(text)
    assert len(lines) >= 2 * network.depth
    for left, arithmetic, shown in lines:
        result = _number(shown)
        redone = _arithmetic(arithmetic)
        assert f"{float(redone):.4e}" == f"{result:.4e}", (left, arithmetic, shown, redone)  # to the 5 digits shown
        layer = int(left.split("⁽")[1][0].translate(_SUPERSCRIPTS))
        if left.startswith("δ"):
            exact = reference[f"δ⁽{layer}⁾"][int(left.split("[")[1].rstrip("]")) - 1]
        else:
            i, j = (int(v) for v in left.split("[")[1].rstrip("]").split(","))
            exact = reference[f"W{layer}"][i - 1, j - 1]
        assert f"{float(exact):.4e}" == f"{result:.4e}", (left, shown, exact)


def test_saturation_keeps_the_digits_that_cancel():
    """Near saturation a five-digit a⁽²⁾ (1.0000) would give 1 − a = 0: the page shows a⁽²⁾ to enough digits."""
    lines = _worked_lines(derive(TUTORIAL).text(values=SATURATED))
    first = next(arithmetic for left, arithmetic, _ in lines if left == "δ⁽²⁾[1]")
    assert re.search(r"0\.9999999\d{4,}", first), first
    tutorial = _worked_lines(derive(TUTORIAL).text(values=TUTORIAL_VALUES))
    assert any("0.73106" in arithmetic for _, arithmetic, _ in tutorial)  # where nothing cancels, five digits


def _torch_float32(network: Network, values) -> dict[str, torch.Tensor]:
    """The tutorial's own torch code, in float32: torch.sigmoid/torch.tanh (their fused backward), ½ Σ (a − y)²."""
    functions = {"sigmoid": torch.sigmoid, "tanh": torch.tanh}
    tensors = {key: torch.tensor(value, dtype=torch.float32) for key, value in values.items()}
    params = {key: tensors[key].clone().requires_grad_(True) for key in network.parameter_shapes}
    a = tensors["x"]
    for index, name in enumerate(network.activations, start=1):
        a = functions[name](params[f"W{index}"] @ a)
    loss = 0.5 * ((a - tensors["y"]) ** 2).sum()
    loss.backward()
    return {key: p.grad for key, p in params.items()}


def _box(text: str) -> str:
    """The PyTorch box of a text page as one line (its sentences are wrapped in the box)."""
    box = text[text.index("Checked with PyTorch") : text.rindex("┘")]
    return " ".join(line.strip("│ ") for line in box.splitlines())


def _printed(box: str, key: str, which: str) -> list[float]:
    after = box.split(f"{key}.grad = ")[1]
    if which == "exact":
        after = after.split("exact ")[1]
    depth, end = 0, 0
    while True:  # the bracketed list, to its closing bracket
        depth += {"[": 1, "]": -1}.get(after[end], 0)
        if depth == 0:
            break
        end += 1
    printed = after[: end + 1]
    return [float(v) for v in re.findall(r"-?\d\.\d{4}e[-+]\d\d", printed)]


@pytest.mark.parametrize("name", ["tutorial", "tanh-sigmoid"])
def test_the_pytorch_box_prints_what_torch_computes_in_float32(name):
    """Entry by entry torch's float32 autograd, up to float32's own noise: one rounding of a tanh or an exp may
    differ between NumPy and torch, and an entry made of cancelled digits (1 − a² at a ≈ 1) shows it, so the
    noise is measured against the parameter's largest entry. The exact values beside them are the derivation's."""
    network, values = CASES[name]
    box = _box(derive(network).text(values=values))
    exact = derive(network).evaluate(values)
    for key, gradient in _torch_float32(network, values).items():
        shown, reference = _printed(box, key, "float32"), gradient.ravel().tolist()
        scale = max(abs(v) for v in reference)
        assert len(shown) == len(reference)
        for page, torch_value in zip(shown, reference):
            assert abs(page - torch_value) <= 1e-4 * abs(torch_value) + 1e-6 * scale, (key, shown, reference)
        assert _printed(box, key, "exact") == [float(f"{float(v):.4e}") for row in exact[key] for v in row]


def test_the_tutorial_s_box_says_what_the_tutorial_printed_and_why():
    box = _box(derive(TUTORIAL).text(values=TUTORIAL_VALUES))
    for key in ("W1", "W2"):  # the tutorial's own printout, to the digit, and torch's today
        assert f"{key}.grad = {torch_style(TUTORIAL_PRINTED[key])} in float32" in box
        assert torch_style(_torch_float32(TUTORIAL, TUTORIAL_VALUES)[key].tolist()) == torch_style(
            TUTORIAL_PRINTED[key]
        )
    assert f"exact {torch_style(derive(TUTORIAL).evaluate(TUTORIAL_VALUES)['W1'])}" in box
    a = derive(TUTORIAL).intermediates(TUTORIAL_VALUES)["a2"]
    digits = round(-math.log10(1 - max(row[0] for row in a)))  # the cancellation, computed here
    assert digits == 4 and f"cancels about {digits} of them" in box and "0.99987" in box


def test_two_equal_numbers_stay_two_terms():
    """a·y₂ + a·y₃ at y₂ = y₃ = 0 is worked as two products, as the line above it writes them, not as 2·a·0."""
    from sympy import Add, symbols

    from symbolic._render import worked_step

    a, y2, y3 = symbols("a y2 y3")
    tree = worked_step(a * y2 + a * y3, {a: 0.47086, y2: 0.0, y3: 0.0}, 0.0)
    assert isinstance(tree, Add) and len(tree.args) == 2, tree


def test_a_wide_relu_layer_is_worked_through_a_unit_that_is_on():
    """In a layer too wide to show every unit, the worked δ is one that is not zero (a relu unit that is off gives
    δ = 0 and a row of zero gradients, which teaches nothing), and it is that unit's exact δ."""
    network = Network([4, 5, 3], ["relu", "softmax"], "cross_entropy", bias=True, reduction="mean")
    values = sample_values(network, seed=1)
    derivation = derive(network)
    deltas = [float(row[0]) for row in derivation.intermediates(values)["delta1"]]
    assert deltas[0] == 0 and any(deltas), deltas  # the first unit is off: the case this test is about
    page = derivation.text(values=values)
    worked = page.split("entry by entry, from")[1]
    unit, shown = re.search(r"δ⁽¹⁾\[(\d)\] = [^\n]*\n\s+= ([^\n]+)", worked).groups()
    assert deltas[int(unit) - 1] != 0, (unit, deltas)
    assert float(shown) == pytest.approx(deltas[int(unit) - 1], rel=1e-4)
    assert re.search(r"^\s*B = 1$", page, re.M)  # the mean's B, named where the numbers are


def test_the_box_prints_a_gradient_as_torch_prints_it():
    """torch_style against torch's own printing of the same float32 tensor (its brackets, digits, exponent)."""
    for key, rows in _torch_float32(TUTORIAL, TUTORIAL_VALUES).items():
        printed = re.sub(r"\s+", "", str(rows)).removeprefix("tensor(").removesuffix(")")
        assert torch_style(rows.tolist()).replace(" ", "") == printed, key
