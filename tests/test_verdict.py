"""A verdict that never lies (issue 16, item 1): check_backward draws at two batch sizes that collide with no width,
names a mistake only when it reproduces the student's numbers at both, names a wrong shape, dtype or nan/inf
entries before comparing numbers, and says "every gradient" only when every gradient is wrong that way.

The students below are hand-written in torch from the formulas, as a student writes them; each planted mistake
is expected to be named right or called ``unknown``, never given a wrong name.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from test_check_backward import NETWORK
from test_check_backward import student as student_3332
from test_chinese_report import NUMBER, _english_left
from torch import nn

from numeric import check_backward
from numeric._check_backward import PROBLEMS, UNKNOWN, _batch_sizes
from numeric.cli import main
from symbolic import InputError, InputTypeError, Network

# samples are columns: x is [4, B]; a student with the PyTorch habit reads B from x.shape[0] = 4
NET_453 = Network([4, 5, 3], ["tanh", "sigmoid"], "mse", bias=True, reduction="mean")


def student(x, y, p, mistake=None, loss="mse", mean=True):
    """A 2-layer tanh-sigmoid network's backward pass, from the lecture's formulas, with ``mistake`` planted."""
    a1 = torch.tanh(p["W1"] @ x + p["b1"])
    a2 = torch.sigmoid(p["W2"] @ a1 + p["b2"])
    batch = x.shape[0] if mistake == "batch_from_rows" else x.shape[1]
    if loss == "mse":  # L = (1/n_out) Σ (a2 − y)² per sample
        n_out = 1 if mistake == "forgot_one_over_n" else y.shape[0]
        dl_da2 = 2 * (a2 - y) / n_out
    else:  # half_sse: ½ Σ (a2 − y)²
        dl_da2 = (2 if mistake == "doubled" else 1) * (a2 - y)
    if mean:
        dl_da2 = dl_da2 / batch
    d2 = dl_da2 * (a2 if mistake == "sigma_prime_is_sigma" else a2 * (1 - a2))
    d1 = (p["W2"].T @ d2) * (1 - a1**2)
    if mistake == "hidden_delta_sign":
        d1 = -d1
    grads = {"W1": d1 @ x.T, "b1": d1.sum(1, keepdim=True), "W2": d2 @ a1.T, "b2": d2.sum(1, keepdim=True)}
    if mistake == "off_by_one_layer":
        grads["W2"] = d2 @ x.T  # the input of the layer below
    if mistake == "halved":
        grads = {name: 0.5 * g for name, g in grads.items()}
    if mistake == "transposed":
        grads["W2"] = grads["W2"].T
    if mistake == "float32":
        grads["W1"] = grads["W1"].float()
    if mistake == "nan":
        grads["W1"][0, 0] = math.nan
        grads["b2"][1, 0] = math.inf
    return grads


def _named(report) -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for mistake in report.mistakes:
        named.setdefault(mistake.parameter, set()).add(mistake.name)
    return named


def _wrong(report) -> set[str]:
    return {name for name, c in report.errors.items() if not c.ok}


def test_the_batch_sizes_collide_with_no_width():
    """Independent of the code's own set: every width, 1, 2, and mse's n/2 and 2n are avoided; two sizes."""
    for sizes in ([4, 5, 3], [3, 5, 4], [3, 3, 3, 2], [784, 128, 10], [1, 1], [6, 3, 12]):
        network = Network(sizes, "sigmoid", "mse")
        first, second = _batch_sizes(network)
        for batch in (first, second):
            assert batch >= 3 and batch not in sizes, (sizes, batch)
            assert all(batch != 2 * n and 2 * batch != n for n in sizes), (sizes, batch)
        assert first != second and _batch_sizes(network, first) == (first, second)  # second is never first
    assert _batch_sizes(NET_453, 4)[0] == 4 and _batch_sizes(NET_453, 4)[1] not in (4, 5, 3)


def test_batch_read_from_the_wrong_axis_is_not_a_false_ok():
    """The issue's false OK: B = x.shape[0] passed because the default batch 4 equalled the input width."""
    report = check_backward(lambda x, y, p: student(x, y, p, "batch_from_rows"), NET_453)
    assert not report.ok and _wrong(report) == set(NET_453.parameter_shapes)
    assert set(_named(report)) == set(NET_453.parameter_shapes)
    assert all(names == {UNKNOWN} for names in _named(report).values()), str(report)
    assert report.batches[0] not in NET_453.sizes and report.batches[1] not in NET_453.sizes


def test_batch_from_the_wrong_axis_fails_even_at_the_colliding_batch_the_user_asks_for():
    """batch=4 is the user's choice; the second draw, at a size that collides with nothing, catches it."""
    report = check_backward(lambda x, y, p: student(x, y, p, "batch_from_rows"), NET_453, batch=4)
    assert not report.ok and report.batches[0] == 4 and report.batches[1] not in (1, 2, 3, 4, 5)
    assert report.errors["W1"].max_rel_error > 0.1  # the second draw's error is in the table too


def test_the_right_student_passes_at_both_draws():
    for loss, mean in (("mse", True), ("half_sse", False), ("half_sse", True)):
        network = Network([4, 5, 3], ["tanh", "sigmoid"], loss, bias=True, reduction="mean" if mean else "sum")
        report = check_backward(lambda x, y, p, loss=loss, mean=mean: student(x, y, p, loss=loss, mean=mean), network)
        assert report.ok and report.mistakes == () and len(report.batches) == 2, str(report)


@pytest.mark.parametrize("batch", [None, 4])
def test_mse_without_its_one_over_n_is_not_batch_scale(batch):
    """mse over 4 outputs with its 1/n_out forgotten is a factor 4: at batch 4 that equalled batch_scale's B."""
    network = Network([3, 5, 4], ["tanh", "sigmoid"], "mse", bias=True, reduction="mean")
    report = check_backward(lambda x, y, p: student(x, y, p, "forgot_one_over_n"), network, batch=batch)
    assert not report.ok and "batch_scale" not in {m.name for m in report.mistakes}, str(report)
    assert all(names == {UNKNOWN} for names in _named(report).values()) and set(_named(report)) == _wrong(report)
    if batch == 4:  # the coincidence at batch 4 is said, with both batch sizes
        said = f"at batch 4 these numbers match batch_scale, at batch {report.batches[1]} they do not"
        assert said in str(report), str(report)


@pytest.mark.parametrize("batch", [None, 2])
def test_half_sse_doubled_is_not_batch_scale(batch):
    """2(a − y) for ½ Σ (a − y)² is a factor 2: at batch 2 that equalled batch_scale's B (mean)."""
    network = Network([4, 5, 3], ["tanh", "sigmoid"], "half_sse", bias=True, reduction="mean")
    report = check_backward(lambda x, y, p: student(x, y, p, "doubled", loss="half_sse"), network, batch=batch)
    assert not report.ok and {m.name for m in report.mistakes} == {UNKNOWN}, str(report)


def test_real_batch_scale_is_still_named_at_both_batch_sizes():
    """The confirmation does not lose the true diagnosis: a sum where the mean is taken, factor B at each B."""
    report = check_backward(lambda x, y, p: student(x, y, p, mean=False), NET_453)
    assert {m.name for m in report.mistakes} == {"batch_scale"} and set(_named(report)) == _wrong(report)
    assert "every gradient is B times the right one" in str(report)


def test_a_coincidence_names_only_the_mistakes_that_matched_at_the_batch_it_says():
    """A student whose numbers are `sign`'s at batch 4 and `batch_scale`'s at the other: unknown for every
    gradient, and the sentence for batch 4 names sign alone."""

    def changing(x, y, p):
        return student_3332(x, y, p, "sign" if x.shape[1] == 4 else "batch_scale")

    report = check_backward(changing, NETWORK, batch=4)
    assert {m.name for m in report.mistakes} == {UNKNOWN}, str(report)
    assert f"at batch 4 these numbers match sign, at batch {report.batches[1]} they do not" in str(report)
    assert f"at batch {report.batches[1]} these numbers match batch_scale" not in str(report)
    assert "match sign, batch_scale" not in str(report)


# mistakes the catalogue does not hold, at sizes that do not collide: unknown, or the problem's name
UNCATALOGUED = {
    "sigma_prime_is_sigma": {"W1": {UNKNOWN}, "b1": {UNKNOWN}, "W2": {UNKNOWN}, "b2": {UNKNOWN}},
    "forgot_one_over_n": {name: {UNKNOWN} for name in ("W1", "b1", "W2", "b2")},
    "batch_from_rows": {name: {UNKNOWN} for name in ("W1", "b1", "W2", "b2")},
    "halved": {name: {UNKNOWN} for name in ("W1", "b1", "W2", "b2")},
    "off_by_one_layer": {"W2": {"shape"}},
    "hidden_delta_sign": {"W1": {UNKNOWN}, "b1": {UNKNOWN}},  # flipped, but "sign" would flip W2 and b2 too
}


@pytest.mark.parametrize("mistake", sorted(UNCATALOGUED))
def test_mistakes_outside_the_catalogue_get_no_wrong_name(mistake):
    report = check_backward(lambda x, y, p: student(x, y, p, mistake), NET_453)
    assert not report.ok
    assert _named(report) == UNCATALOGUED[mistake], str(report)
    assert set(_named(report)) == _wrong(report)


def test_the_sign_of_some_gradients_is_not_every_gradient():
    """Only W3 and b3 flipped: `sign` for those two, and no "every gradient" in the report (en or zh)."""

    def last_layer_flipped(x, y, p):
        grads = student_3332(x, y, p)
        return {**grads, "W3": -grads["W3"], "b3": -grads["b3"]}

    report = check_backward(last_layer_flipped, NETWORK)
    # "sign" (ŷ − y flipped) would flip W1, W2 too, which are right here: not that mistake, and said why
    assert [(m.parameter, m.name) for m in report.mistakes] == [("W3", UNKNOWN), ("b3", UNKNOWN)]
    assert "every gradient" not in str(report) and "what sign gives" in str(report)
    assert "每个梯度的符号都错了" not in report.text("zh")
    hidden = check_backward(lambda x, y, p: student(x, y, p, "hidden_delta_sign"), NET_453)
    assert "every gradient" not in str(hidden) and "unknown (W1, b1)" in str(hidden)


def test_a_catalogued_mistake_with_another_beside_it_is_named_for_its_own_gradients():
    """Every sign flipped and b1 also scaled: `sign` for the flipped gradients (the others are wrong too, so
    nothing refutes it), said as explaining those only; b1 unknown."""

    def flipped_and_scaled(x, y, p):
        right = student(x, y, p)
        return {**{name: -g for name, g in right.items()}, "b1": 1.5 * right["b1"]}

    report = check_backward(flipped_and_scaled, NET_453)
    assert _named(report) == {"W1": {"sign"}, "W2": {"sign"}, "b2": {"sign"}, "b1": {UNKNOWN}}
    assert "the other gradients are not flipped" in str(report)


def test_the_whole_network_sign_still_says_every_gradient():
    report = check_backward(lambda x, y, p: student_3332(x, y, p, "sign"), NETWORK)
    assert {m.parameter for m in report.mistakes} == set(NETWORK.parameter_shapes) == _wrong(report)
    assert "so every gradient has the wrong sign" in str(report)


def test_the_diagnosis_is_over_the_wrong_parameters_only():
    """Two different mistakes in two layers: each named for its own parameters and for no other."""

    def two(x, y, p):
        right = student(x, y, p)
        scaled = student(x, y, p, "sigma_prime_is_sigma")
        return {**right, "W2": scaled["W2"], "b1": 1.5 * right["b1"]}

    report = check_backward(two, NET_453)
    assert _named(report) == {"W2": {UNKNOWN}, "b1": {UNKNOWN}} and _wrong(report) == {"W2", "b1"}
    assert [line for line in str(report).splitlines() if line.startswith("  unknown")] == [
        "  unknown (b1, W2): wrong, and none of the catalogued mistakes gives this gradient (see MISTAKES)"
    ]


def test_a_transposed_gradient_is_named_by_its_shape():
    report = check_backward(lambda x, y, p: student(x, y, p, "transposed"), NET_453)
    assert not report.ok and _named(report) == {"W2": {"shape"}} and _wrong(report) == {"W2"}
    assert "shape (W2): the gradient has shape [5, 3], expected [3, 5]: it is transposed" in str(report)
    assert "[5, 3]" in report.text("zh") and "[3, 5]" in report.text("zh") and "转置" in report.text("zh")
    off = check_backward(lambda x, y, p: student(x, y, p, "off_by_one_layer"), NET_453)
    assert "shape [3, 4], expected [3, 5]" in str(off) and "transposed" not in str(off)


def test_a_float32_gradient_is_a_dtype_problem_not_a_number_problem():
    """Right maths in float32 where float64 was given: WRONG, named as dtype, its numbers within float32's."""
    report = check_backward(lambda x, y, p: student(x, y, p, "float32"), NET_453)
    assert not report.ok and _named(report) == {"W1": {"dtype"}}, str(report)
    assert report.errors["W1"].ok and report.errors["W1"].rtol == pytest.approx(1e-4)  # the maths is right
    assert "the gradient is float32 where the values were float64" in str(report)
    assert re.search(r"^W1 .*1e-04  WRONG$", str(report), re.MULTILINE)
    assert "float32" in report.text("zh") and "float64" in report.text("zh")

    def float32_and_off(x, y, p):
        grads = student(x, y, p, "float32")
        return {**grads, "W1": 1.5 * grads["W1"]}

    both = check_backward(float32_and_off, NET_453)  # a wrong dtype does not hide wrong numbers
    assert _named(both) == {"W1": {"dtype", UNKNOWN}}


def test_nan_and_inf_entries_are_counted():
    report = check_backward(lambda x, y, p: student(x, y, p, "nan"), NET_453)
    assert _named(report) == {"W1": {"not_finite"}, "b2": {"not_finite"}}, str(report)
    assert "not_finite (W1): 1 nan and 0 inf entries (of 20) where the right gradient is finite" in str(report)
    assert "not_finite (b2): 0 nan and 1 inf entries (of 3)" in str(report)


def test_a_string_in_values_is_an_input_type_error():
    values = {"x": "1, 2", "y": [[0.5]]}
    with pytest.raises(InputTypeError, match=r"values\['x'\] must be a tensor or nested lists of numbers"):
        check_backward(student, NET_453, values=values)
    with pytest.raises(InputTypeError, match=r"values\['y'\] must be a tensor"):
        check_backward(student, NET_453, values={"x": [[1.0]], "y": [["a"]]})
    with pytest.raises(InputTypeError, match="values must be a dict"):
        check_backward(student, NET_453, values=[1, 2])
    values = {"x": torch.zeros(4, 3), "y": torch.zeros(3, 3)}
    values.update({name: torch.zeros(shape) for name, shape in NET_453.parameter_shapes.items()})
    with pytest.raises(InputError, match="batch=5, but the x of values has 3 samples"):
        check_backward(student, NET_453, values=values, batch=5)


def test_given_values_are_confirmed_on_a_second_draw_with_the_same_parameters():
    """values at batch 4 (colliding with the width 4): the second draw, same W and b, other x and y, catches B =
    x.shape[0]; the student sees the user's parameters both times."""
    torch.manual_seed(1)
    values = {"x": torch.randn(4, 4), "y": torch.rand(3, 4)}
    values.update({name: torch.randn(shape) for name, shape in NET_453.parameter_shapes.items()})
    seen = []

    def recording(x, y, p):
        seen.append((x.shape[1], p["W1"].clone()))
        return student(x, y, p, "batch_from_rows")

    report = check_backward(recording, NET_453, values=values)
    assert not report.ok and report.batches[0] == 4 and report.batches[1] not in (1, 2, 3, 4, 5)
    assert [batch for batch, _ in seen] == list(report.batches)
    assert all(torch.equal(w1, values["W1"].double()) for _, w1 in seen)
    assert check_backward(student, NET_453, values=values).ok


def test_a_student_that_assumes_the_batch_size_fails_in_one_line():
    def fixed(x, y, p):  # works at batch 4 only
        grads = student(x, y, p)
        return {**grads, "b1": grads["b1"] + 0 * (x + torch.zeros(4, 4, dtype=x.dtype)).sum()}

    with pytest.raises(InputError, match=r"raised at batch \d+ \(test_verdict.py:\d+\): RuntimeError"):
        check_backward(fixed, NET_453, batch=4)


# check_backward's default tolerances: float64 1e-10, float32 1e-4 (of the largest entry)
def test_a_float64_gradient_off_by_1e_8_relative_is_wrong():
    def close(x, y, p):
        grads = student(x, y, p)
        return {**grads, "W2": grads["W2"] + 1e-8 * grads["W2"].abs().max()}

    report = check_backward(close, NET_453)
    assert not report.ok and _wrong(report) == {"W2"}
    assert report.errors["W2"].max_rel_error == pytest.approx(1e-8, rel=1e-3)


def _torch_student(inputs, targets, params, scale=1.0, batch_axis=0):
    """nn.Linear(4, 5), ReLU, nn.Linear(5, 3) with nn.CrossEntropyLoss() (mean), rows are samples."""
    h = torch.relu(inputs @ params["0.weight"].T + params["0.bias"])
    logits = h @ params["2.weight"].T + params["2.bias"]
    onehot = nn.functional.one_hot(targets, logits.shape[1]).to(logits.dtype)
    d2 = (torch.softmax(logits, 1) - onehot) / inputs.shape[batch_axis]
    d1 = (d2 @ params["2.weight"]) * (h > 0)
    return {"0.weight": d1.T @ inputs, "0.bias": d1.sum(0), "2.weight": scale * (d2.T @ h), "2.bias": d2.sum(0)}


def _model(dtype):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).to(dtype)
    return model, torch.randn(6, 4, dtype=dtype), torch.tensor([0, 2, 1, 1, 0, 2])


def test_a_float32_model_gradient_off_by_1e_3_relative_is_wrong():
    model, inputs, targets = _model(torch.float32)
    right = check_backward(_torch_student, model, nn.CrossEntropyLoss(), inputs, targets)
    assert right.ok and right.errors["2.weight"].rtol == pytest.approx(1e-4), str(right)
    off = check_backward(
        lambda i, t, p: _torch_student(i, t, p, 1 + 1e-3), model, nn.CrossEntropyLoss(), inputs, targets
    )
    assert not off.ok and _wrong(off) == {"2.weight"}, str(off)


def test_a_float64_gradient_of_a_float32_model_is_a_dtype_problem_said_as_such():
    model, inputs, targets = _model(torch.float32)

    def promoted(i, t, p):
        return {**_torch_student(i, t, p), "0.bias": _torch_student(i, t, p)["0.bias"].double()}

    report = check_backward(promoted, model, nn.CrossEntropyLoss(), inputs, targets)
    assert not report.ok and _named(report) == {"0.bias": {"dtype"}}, str(report)
    assert "the gradient is float64 where the values were float32: a gradient has its parameter's dtype" in str(report)
    assert "cannot hold" not in str(report)
    integer = check_backward(lambda x, y, p: {**student(x, y, p), "b2": torch.zeros(3, 1, dtype=torch.int64)}, NET_453)
    assert _named(integer) == {"b2": {"dtype", UNKNOWN}} and "int64 where the values were float64" in str(integer)


def test_the_model_form_confirms_on_a_second_batch_too():
    """Four samples on a 4-input model: dividing by inputs.shape[1] passed; the second draw (class indices,
    like the user's targets) catches it."""
    model, inputs, targets = _model(torch.float64)
    inputs, targets = inputs[:4], targets[:4]
    report = check_backward(
        lambda i, t, p: _torch_student(i, t, p, batch_axis=1), model, nn.CrossEntropyLoss(), inputs, targets
    )
    assert not report.ok and report.batches[0] == 4 and report.batches[1] not in (1, 2, 3, 4, 5)
    assert {m.name for m in report.mistakes} == {UNKNOWN}
    assert check_backward(_torch_student, model, nn.CrossEntropyLoss(), inputs, targets).ok


def test_the_new_sentences_in_chinese_hold_no_english_and_the_same_numbers():
    reports = [
        check_backward(lambda x, y, p, m=m: student(x, y, p, m), NET_453)
        for m in ("transposed", "off_by_one_layer", "float32", "nan", "hidden_delta_sign")
    ]
    reports.append(
        check_backward(
            lambda x, y, p: student(x, y, p, "forgot_one_over_n"),
            Network([3, 5, 4], ["tanh", "sigmoid"], "mse", bias=True, reduction="mean"),
            batch=4,
        )
    )
    reports.append(check_backward(lambda x, y, p: student(x, y, p, mean=False), NET_453))
    reports.append(check_backward(lambda x, y, p: {**student(x, y, p), "b2": student(x, y, p)["b2"].long()}, NET_453))
    reports.append(
        check_backward(lambda x, y, p: {**student(x, y, p, mean=False), "W1": student(x, y, p)["W1"]}, NET_453)
    )
    reports.append(
        check_backward(lambda x, y, p: {**student(x, y, p, mean=False), "W1": 1.5 * student(x, y, p)["W1"]}, NET_453)
    )
    reports.append(
        check_backward(lambda x, y, p: {**{n: -g for n, g in student(x, y, p).items()}, "b1": p["b1"]}, NET_453)
    )
    keys = {note.key for report in reports for note in report.notes.values()}
    assert {"problem_shape", "problem_shape_transposed", "problem_dtype", "problem_dtype_other"} <= keys
    assert "problem_not_finite" in keys
    assert {"mistake_sign_partial", "mistake_coincidence", "mistake_batch_scale_partial"} <= keys, keys
    assert "mistake_refuted" in keys
    for report in reports:
        english, chinese = report.text("en"), report.text("zh")
        assert _english_left(chinese, report.network, (*report.errors, *PROBLEMS, "int64")) == "", chinese
        assert NUMBER.findall(chinese) == NUMBER.findall(english), (english, chinese)


STUDENT_FILE = """
import torch


def backward(x, y, params):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    a1 = torch.tanh(W1 @ x + b1)
    a2 = torch.sigmoid(W2 @ a1 + b2)
    B = x.shape[{axis}]
    delta2 = 2 * (a2 - y) / y.shape[0] / B * a2 * (1 - a2)
    delta1 = (W2.T @ delta2) * (1 - a1**2)
    return {{"W1": delta1 @ x.T, "b1": delta1.sum(1, keepdim=True), "W2": {w2},
            "b2": delta2.sum(1, keepdim=True)}}
"""
CLI_NETWORK = ["--sizes", "4,5,3", "--activation", "tanh,sigmoid", "--loss", "mse", "--bias", "--reduction", "mean"]


@pytest.mark.parametrize(
    "axis, w2, code, said",
    [
        (1, "delta2 @ a1.T", 0, "verdict: OK, every gradient matches"),
        (0, "delta2 @ a1.T", 1, "unknown (W1, b1, W2, b2)"),  # B = x.shape[0]: a false OK at --batch 4 before
        (1, "(delta2 @ a1.T).T", 1, "shape (W2): the gradient has shape [5, 3], expected [3, 5]: it is transposed"),
    ],
)
def test_cli_check_verdicts(tmp_path, capsys, axis, w2, code, said):
    path = tmp_path / "student.py"
    path.write_text(STUDENT_FILE.format(axis=axis, w2=w2), encoding="utf-8")
    assert main(["check", f"{path}:backward", *CLI_NETWORK]) == code
    out = capsys.readouterr().out
    assert said in out, out
    assert out.splitlines()[-1] == ("verdict: OK, every gradient matches" if code == 0 else "verdict: WRONG")


@pytest.mark.parametrize(
    "rtol, error",
    [
        ("x", InputTypeError),
        (True, InputTypeError),
        (math.inf, InputError),
        (-1.0, InputError),
        (math.nan, InputError),
        (0.0, InputError),
    ],
)
def test_a_tolerance_that_would_pass_anything_or_nothing_is_refused(rtol, error):
    """rtol=True read as 1 passed an all-zero gradient; inf passes anything; nan and -1 fail everything."""
    zeros = lambda x, y, p: {name: torch.zeros_like(value) for name, value in p.items()}  # noqa: E731
    with pytest.raises(error, match="rtol"):
        check_backward(zeros, NET_453, rtol=rtol)


@pytest.mark.parametrize("seed, error", [(-5, InputError), (2**64, InputError), ("a", InputTypeError)])
def test_the_api_takes_the_seeds_the_cli_takes(seed, error):
    with pytest.raises(error, match="seed"):
        check_backward(student, NET_453, seed=seed)


def test_complex_values_and_an_empty_batch_are_refused():
    from numeric import random_values

    values = random_values(NET_453, 3, 0)
    with pytest.raises(InputTypeError, match="complex"):
        check_backward(student, NET_453, values={**values, "x": values["x"].to(torch.complex128)})
    with pytest.raises(InputError, match="no samples"):
        check_backward(student, NET_453, values={**values, "x": values["x"][:, :0], "y": values["y"][:, :0]})


class _Raising(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise ZeroDivisionError("boom in __torch_function__")


class _RaisingDict(dict):
    def items(self):
        raise KeyError("evil items")


def test_returned_objects_that_run_code_are_read_in_one_line_or_read_right():
    """A dict whose items() raises is the user's error in one line; a tensor subclass is read as the plain tensor
    it holds (its __torch_function__ never runs), sparse as dense: a right gradient so returned is right."""
    with pytest.raises(InputTypeError, match="KeyError"):
        check_backward(lambda x, y, p: _RaisingDict(student(x, y, p)), NET_453)
    subclass = lambda x, y, p: {n: g.as_subclass(_Raising) for n, g in student(x, y, p).items()}  # noqa: E731
    assert check_backward(subclass, NET_453).ok
    sparse = lambda x, y, p: {n: g.to_sparse() for n, g in student(x, y, p).items()}  # noqa: E731
    assert check_backward(sparse, NET_453).ok
    wrong = lambda x, y, p: {n: (2 * g).to_sparse() for n, g in student(x, y, p).items()}  # noqa: E731
    assert not check_backward(wrong, NET_453).ok
