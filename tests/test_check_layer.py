"""check_layer_backward: a hand-written BatchNorm / LayerNorm backward in CS231n's style (issue 18, item 5).

The students are files written here (tmp_path), in NumPy as CS231n's assignment 2 has them, with one mistake
planted by a constant at their top. The BatchNorm student is the staged computational graph (CS231n's first
way), the LayerNorm student the short closed form (its "alt" way): two independent writings, neither sharing
code with the checker's catalogue. Each planted catalogue mistake must be named, each mistake the catalogue does
not hold must be ``unknown`` (never a wrong name), and correct code must pass.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import numeric._check_layer as check_layer
from numeric import check_layer_backward
from numeric._check_backward import UNKNOWN
from numeric._check_layer import EPS, LAYERS, MISTAKES, OUTPUTS, RTOL, SIZES, _collisions, _formula
from numeric._user_code import load_module
from numeric.cli import main
from symbolic import InputError, InputTypeError

BATCHNORM = """
import numpy as np

MISTAKE = {mistake!r}
DTYPE = {dtype}
AX = 1 if MISTAKE == "axis_confused_layer" else 0  # the axis normalized over: the samples
AXB = 1 if MISTAKE == "axis_confused_staged" else AX  # the backward's


def batchnorm_forward(x, gamma, beta, bn_param):
    x, gamma, beta = x.astype(DTYPE), gamma.astype(DTYPE), beta.astype(DTYPE)
    eps = 0.0 if MISTAKE == "eps_both" else bn_param.get("eps", 1e-5)
    n = x.shape[AX]
    mu = x.mean(axis=AX, keepdims=True)
    xmu = x - mu
    ddof = 1 if MISTAKE in ("unbiased_both", "unbiased_forward") else 0
    var = (xmu**2).sum(axis=AX, keepdims=True) / (n - ddof)
    sqrtvar = np.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    out = gamma * xhat + beta
    return out, (xhat, gamma, xmu, ivar, sqrtvar, var, eps)


def batchnorm_backward(dout, cache):
    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache
    dout = dout.astype(DTYPE)
    n = dout.shape[1] if MISTAKE == "collision" else dout.shape[AXB]  # collision: the width, right when N == D
    dbeta = dout.sum(axis=1 if MISTAKE == "param_sum_axis_dbeta" else 0)
    dgammax = dout if MISTAKE == "dgamma_missing_xhat" else dout * xhat
    dgamma = dgammax.sum(axis=1 if MISTAKE == "param_sum_axis_dgamma" else 0)
    dxhat = dout if MISTAKE == "dx_missing_gamma" else dout * gamma
    if MISTAKE == "axis_confused_backward":  # CS231n's short form, copied from layernorm with its axis
        d = dout.shape[1]
        dx = ivar / d * (d * dxhat - dxhat.sum(1, keepdims=True) - xhat * (dxhat * xhat).sum(1, keepdims=True))
        return dx, dgamma, dbeta
    if MISTAKE == "eps_backward":  # sigma recomputed from the cached var, without eps
        sqrtvar = np.sqrt(var)
        ivar = 1.0 / sqrtvar
    divar = (dxhat * xmu).sum(axis=AXB, keepdims=True)
    dxmu1 = dxhat * ivar
    dsqrtvar = -1.0 / sqrtvar**2 * divar
    dvar = 0.5 * ivar * dsqrtvar
    count = n - 1 if MISTAKE in ("unbiased_backward", "unbiased_both") else n
    dsq = np.ones_like(dout) / count * dvar
    dxmu2 = 0 * dsq if MISTAKE == "variance_path_dropped" else 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -dx1.sum(axis=AXB, keepdims=True)
    if MISTAKE == "term_dropped":  # dmu without dvar * (-2/N) * sum(x - mu): a term that is zero
        dmu = -dxmu1.sum(axis=AXB, keepdims=True)
    dx2 = np.ones_like(dout) / n * dmu
    dx = dx1 if MISTAKE == "mean_path_dropped" else dx1 + dx2
    if MISTAKE == "dx_over_d":
        dx = dx / dout.shape[1]
    if MISTAKE == "sign_dbeta":
        dbeta = -dbeta
    return dx, dgamma, dbeta
"""

LAYERNORM = """
import numpy as np

MISTAKE = {mistake!r}
DTYPE = {dtype}
AX = 0 if MISTAKE == "axis_confused_layer" else 1  # the axis normalized over: the features


def layernorm_forward(x, gamma, beta, ln_param):
    x, gamma, beta = x.astype(DTYPE), gamma.astype(DTYPE), beta.astype(DTYPE)
    eps = 0.0 if MISTAKE == "eps_both" else ln_param.get("eps", 1e-5)
    mu = x.mean(axis=AX, keepdims=True)
    ddof = 1 if MISTAKE in ("unbiased_both", "unbiased_forward") else 0
    var = x.var(axis=AX, keepdims=True, ddof=ddof)
    std = np.sqrt(var + eps)
    xhat = (x - mu) / std
    return gamma * xhat + beta, (x, mu, var, std, xhat, gamma)


def layernorm_backward(dout, cache):
    x, mu, var, std, xhat, gamma = cache
    dout = dout.astype(DTYPE)
    axis = 0 if MISTAKE == "axis_confused_backward" else AX
    d = dout.shape[0] if MISTAKE == "collision" else dout.shape[axis]  # collision: right when N == D
    dbeta = dout.sum(axis=1 if MISTAKE == "param_sum_axis_dbeta" else 0)
    dgamma = (dout if MISTAKE == "dgamma_missing_xhat" else dout * xhat).sum(
        axis=1 if MISTAKE == "param_sum_axis_dgamma" else 0
    )
    g = dout if MISTAKE == "dx_missing_gamma" else dout * gamma
    if MISTAKE == "eps_backward":  # sigma and xhat recomputed without eps
        std = np.sqrt(var)
        xhat = (x - mu) / std
    if MISTAKE == "eps_backward_cached":  # 1/sigma without eps, the cache's xhat
        std = np.sqrt(var)
    mean_g = 0 if MISTAKE == "mean_path_dropped" else g.sum(axis=axis, keepdims=True) / d
    count = d - 1 if MISTAKE in ("unbiased_backward", "unbiased_both") else d
    projection = 0 if MISTAKE == "variance_path_dropped" else xhat * (g * xhat).sum(axis=axis, keepdims=True) / count
    dx = (g - mean_g - projection) / std
    if MISTAKE == "dx_over_d":
        dx = dx / dout.shape[1]
    if MISTAKE == "sign_dbeta":
        dbeta = -dbeta
    return dx, dgamma, dbeta
"""

TEMPLATES = {"batchnorm": BATCHNORM, "layernorm": LAYERNORM}
# each planted mistake -> the catalogue's name for it; both students plant every one
PLANTED = {
    "mean_path_dropped": "mean_path_dropped",
    "variance_path_dropped": "variance_path_dropped",
    "unbiased_backward": "unbiased_variance",
    "unbiased_both": "unbiased_variance",
    "unbiased_forward": "unbiased_variance",
    "eps_both": "eps_left_out",
    "eps_backward": "eps_left_out",
    "param_sum_axis_dgamma": "param_sum_axis",
    "param_sum_axis_dbeta": "param_sum_axis",
    "axis_confused_backward": "axis_confused",
    "axis_confused_layer": "axis_confused",
    "dgamma_missing_xhat": "dgamma_missing_xhat",
    "dx_missing_gamma": "dx_missing_gamma",
    "collision": "count_from_other_axis",  # right only when N == D: see the collision test
}
LAYERNORM_ONLY = {"eps_backward_cached": "eps_left_out"}  # the closed form's own way to leave ε out


def write_student(tmp_path: Path, layer: str, mistake: str | None = None, dtype: str = "np.float64") -> Path:
    path = tmp_path / f"{layer}_{mistake or 'right'}_{dtype.removeprefix('np.')}.py"
    path.write_text(TEMPLATES[layer].format(mistake=mistake, dtype=dtype))
    return path


def check_file(path: Path, layer: str, **options):
    module, _, _ = load_module(f"{path}:{layer}_backward")
    return check_layer_backward(getattr(module, f"{layer}_backward"), layer, **options)


def wrong_outputs(report) -> set[str]:
    return {name for name, c in report.errors.items() if not c.ok}


# ---------------------------------------------------------------------------------------------------------------
# the reference and the catalogue's own formula


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_the_catalogues_formula_without_mistakes_is_autograds(layer):
    generator = torch.Generator().manual_seed(3)
    for shape in SIZES:
        values = check_layer._draw(generator, *shape)
        _, reference = check_layer._reference(LAYERS[layer], values)
        ours = _formula(values.x, values.gamma, values.dout, EPS, LAYERS[layer].axis)
        for name in OUTPUTS:
            torch.testing.assert_close(ours[name], reference[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_the_reference_normalizes_over_the_layers_own_axis(layer):
    """torch's layer, not our formula: its output has mean 0 and variance 1 (less ε) along the layer's axis."""
    values = check_layer._draw(torch.Generator().manual_seed(0), *SIZES[0])
    gamma, beta = torch.ones_like(values.gamma), torch.zeros_like(values.beta)
    out, _ = check_layer._reference(LAYERS[layer], check_layer._Values(values.x, gamma, beta, values.dout))
    axis = LAYERS[layer].axis
    torch.testing.assert_close(out.mean(axis), torch.zeros(out.shape[1 - axis], dtype=out.dtype), atol=1e-12, rtol=0)
    variance = out.var(axis, unbiased=False)
    assert (variance < 1).all() and (variance > 0.97).all()  # var/(var + ε) with var ≈ 1e-3: ε shows


def test_the_sizes_collide_with_nothing_and_a_square_batch_is_caught():
    assert all(_collisions(shape) == [] for shape in SIZES)
    assert any(n > d for n, d in SIZES) and any(n < d for n, d in SIZES)
    for colliding in ((5, 5), (2, 7), (7, 1), (6, 7), (8, 4), (4, 8)):
        assert _collisions(colliding), colliding


# ---------------------------------------------------------------------------------------------------------------
# verdicts


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_correct_students_pass(tmp_path, layer):
    report = check_file(write_student(tmp_path, layer), layer)
    assert report.ok and report.mistakes == (), str(report)
    assert "verdict: OK" in str(report)
    assert all(c.rtol == RTOL[torch.float64] for c in report.errors.values())


@pytest.mark.parametrize(
    "layer, planted",
    [(layer, planted) for layer in sorted(LAYERS) for planted in sorted(PLANTED)]
    + [("layernorm", planted) for planted in sorted(LAYERNORM_ONLY)],
)
def test_each_planted_mistake_is_named(tmp_path, layer, planted):
    report = check_file(write_student(tmp_path, layer, planted), layer)
    assert not report.ok
    expected = {**PLANTED, **LAYERNORM_ONLY}[planted]
    names = {m.name for m in report.mistakes if m.name != "shape"}
    assert names == {expected}, str(report)
    # a mistake is named on exactly the outputs that are wrong
    assert {m.parameter for m in report.mistakes if m.name == expected} == wrong_outputs(report)
    # one way of making it, said once for every output it explains (the forward's N − 1 changes dx and dgamma)
    assert len({m.explanation for m in report.mistakes if m.name == expected}) == 1, str(report)
    assert f"{expected} (" in str(report) and "verdict: WRONG" in str(report)


def test_every_catalogue_name_is_planted_in_both_students():
    assert set(PLANTED.values()) == set(MISTAKES)


@pytest.mark.parametrize("layer", sorted(LAYERS))
@pytest.mark.parametrize("unknown, output", [("sign_dbeta", "dbeta"), ("dx_over_d", "dx")])
def test_a_mistake_the_catalogue_does_not_hold_is_unknown(tmp_path, layer, unknown, output):
    report = check_file(write_student(tmp_path, layer, unknown), layer)
    assert not report.ok
    assert [(m.parameter, m.name) for m in report.mistakes] == [(output, UNKNOWN)], str(report)
    assert wrong_outputs(report) == {output}
    c = report.errors[output]
    assert f"largest difference {c.max_abs_error:.3e}, {c.max_rel_error:.3e} relative" in str(report)


def test_an_axis_confused_the_staged_way_is_never_given_another_name(tmp_path):
    """The staged graph summed over the features: the catalogue's axis_confused is the short form's, which this
    student's numbers do not equal, so the checker may say unknown, but no other name."""
    report = check_file(write_student(tmp_path, "batchnorm", "axis_confused_staged"), "batchnorm")
    assert not report.ok and report.mistakes
    assert {m.name for m in report.mistakes} <= {"axis_confused", UNKNOWN}, str(report)


def test_the_term_through_the_mean_into_the_variance_is_zero_so_dropping_it_passes(tmp_path):
    """The issue's "BatchNorm without the path through the mean into the variance": the term dvar·(−2/N)·Σ(x − μ)
    of dμ. Measured at the draws, it is rounding (Σ(x − μ) = 0 for every x); a student who drops it is right,
    and the checker must say so rather than name a mistake."""
    generator = torch.Generator().manual_seed(0)
    for shape in SIZES:
        v = check_layer._draw(generator, *shape)
        n = v.x.shape[0]
        centred = v.x - v.x.mean(0)
        sigma = torch.sqrt((centred**2).mean(0) + EPS)
        dxhat = v.dout * v.gamma
        dvar = (dxhat * centred).sum(0) * -0.5 * sigma**-3
        term = dvar * (-2 / n) * centred.sum(0)
        other = (-dxhat / sigma).sum(0)  # the rest of dμ
        assert term.abs().max() < 1e-12 * other.abs().max()
    report = check_file(write_student(tmp_path, "batchnorm", "term_dropped"), "batchnorm")
    assert report.ok, str(report)


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_student_right_only_when_n_equals_d_is_caught(tmp_path, layer, monkeypatch):
    """The student divides by the other axis's size (x.shape[1] for BatchNorm's N, x.shape[0] for LayerNorm's D).
    At N == D that is right: a checker drawing a square x would say OK. The checker's sizes do not collide."""
    path = write_student(tmp_path, layer, "collision")
    report = check_file(path, layer)
    assert not report.ok and wrong_outputs(report) == {"dx"}
    assert [m.name for m in report.mistakes] == ["count_from_other_axis"], str(report)
    monkeypatch.setattr(check_layer, "SIZES", ((5, 5), (8, 8)))  # what a colliding checker would draw
    assert check_file(path, layer).ok  # the false OK the sizes prevent


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_no_two_catalogued_mistakes_give_the_same_output(layer):
    """Else a student's numbers could get the other one's name: at the draws, any two variants of different names
    that change the same output differ there by more than float32's tolerance."""
    generator = torch.Generator().manual_seed(0)
    draws = [check_layer._draw(generator, *shape) for shape in SIZES]
    spec = LAYERS[layer]
    outputs = [(v, [check_layer._variant_outputs(v, spec, d) for d in draws]) for v in check_layer._CATALOGUE]
    right = [check_layer._reference(spec, d)[1] for d in draws]
    for (v, ours), (w, theirs) in itertools.combinations(outputs, 2):
        if v.name == w.name:
            continue
        for name in OUTPUTS:
            changes = [
                any(not check_layer._agrees(o[name], r[name], 1e-7) for o, r in zip(x, right)) for x in (ours, theirs)
            ]
            if all(changes):
                assert any(not check_layer._agrees(a[name], b[name], 1e-3) for a, b in zip(ours, theirs)), (v, w, name)


def test_a_mistake_that_would_change_an_output_the_student_got_right_is_not_named(tmp_path):
    """The backward recomputes the variance with N − 1 for dx, and takes the cache's x̂ for dgamma: dx equals the
    forward-N − 1 layer's, but that layer's dgamma is not the student's (right) one, so no name is given."""
    source = (
        TEMPLATES["layernorm"]
        .format(mistake=None, dtype="np.float64")
        .replace(
            "    g = dout if MISTAKE",
            "    var = x.var(axis=1, keepdims=True, ddof=1)\n    std = np.sqrt(var + 1e-5)\n"
            "    xhat = (x - mu) / std\n    g = dout if MISTAKE",
        )
    )
    path = tmp_path / "layernorm_refuted.py"
    path.write_text(source)
    report = check_file(path, "layernorm")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", UNKNOWN)], str(report)
    assert "unbiased_variance would give this dx, but it also changes dgamma, which is right" in str(report)


def test_float32_students_are_compared_at_float32s_tolerance(tmp_path):
    report = check_file(write_student(tmp_path, "batchnorm", dtype="np.float32"), "batchnorm")
    assert report.ok, str(report)
    assert all(c.rtol == RTOL[torch.float32] for c in report.errors.values())
    assert all(c.max_rel_error < RTOL[torch.float32] / 10 for c in report.errors.values())
    # ε moves the gradients far beyond float32's tolerance: still named
    report = check_file(write_student(tmp_path, "layernorm", "eps_both", dtype="np.float32"), "layernorm")
    assert {m.name for m in report.mistakes} == {"eps_left_out"}, str(report)
    assert report.errors["dx"].max_rel_error > 10 * RTOL[torch.float32]


def test_float16_is_wrong_by_its_dtype(tmp_path):
    report = check_file(write_student(tmp_path, "batchnorm", dtype="np.float16"), "batchnorm")
    assert not report.ok
    assert {m.name for m in report.mistakes} == {"dtype"}, str(report)


def test_a_torch_student_given_tensors_passes_and_its_mistake_is_named():
    def layernorm_forward(x, gamma, beta, ln_param):
        mu = x.mean(1, keepdim=True)
        var = x.var(1, unbiased=False, keepdim=True)
        xhat = (x - mu) / torch.sqrt(var + ln_param["eps"])
        return gamma * xhat + beta, (xhat, var + ln_param["eps"], gamma)

    def layernorm_backward(dout, cache):
        xhat, var, gamma = cache
        g = dout * gamma
        dx = (g - g.mean(1, keepdim=True) - xhat * (g * xhat).mean(1, keepdim=True)) / torch.sqrt(var)
        return dx, (dout * xhat).sum(0), dout.sum(0)

    assert check_layer_backward(layernorm_backward, "layernorm", forward=layernorm_forward, arrays="torch").ok

    def forgot_gamma(dout, cache):
        xhat, var, gamma = cache
        return layernorm_backward(dout, (xhat, var, torch.ones_like(gamma)))[0], *layernorm_backward(dout, cache)[1:]

    report = check_layer_backward(forgot_gamma, "layernorm", forward=layernorm_forward, arrays="torch")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "dx_missing_gamma")], str(report)


# ---------------------------------------------------------------------------------------------------------------
# bad input: one line, never a traceback


def _right(layer):
    namespace: dict = {}
    exec(TEMPLATES[layer].format(mistake=None, dtype="np.float64"), namespace)  # the test's own text
    return namespace


def test_shapes_and_nan_are_named_before_numbers():
    bn = _right("batchnorm")

    def keepdims(dout, cache):
        dx, dgamma, dbeta = bn["batchnorm_backward"](dout, cache)
        return dx, dgamma[None, :], dbeta

    report = check_layer_backward(keepdims, "batchnorm", forward=bn["batchnorm_forward"])
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dgamma", "shape")], str(report)
    assert "dgamma has shape [1, 5], expected [5]" in str(report)

    def nan(dout, cache):
        dx, dgamma, dbeta = bn["batchnorm_backward"](dout, cache)
        dx = dx.copy()
        dx[0, 0] = np.nan
        return dx, dgamma, dbeta

    report = check_layer_backward(nan, "batchnorm", forward=bn["batchnorm_forward"])
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "not_finite")], str(report)


def test_a_wrong_forward_with_a_right_backward_is_wrong():
    """The backward is checked through the student's own cache; a wrong out is still a wrong layer."""
    bn = _right("batchnorm")

    def shifted(x, gamma, beta, bn_param):
        out, cache = bn["batchnorm_forward"](x, gamma, beta, bn_param)
        return out + 1.0, cache

    report = check_layer_backward(bn["batchnorm_backward"], "batchnorm", forward=shifted)
    assert all(c.ok for c in report.errors.values()) and not report.forward.ok
    assert not report.ok and "verdict: WRONG" in str(report)
    assert "shifted's out differs from F.batch_norm(training=True)" in str(report)


def test_api_errors_are_chainrule_errors():
    bn = _right("batchnorm")
    forward = bn["batchnorm_forward"]
    with pytest.raises(InputTypeError, match=r"must return \(dx, dgamma, dbeta\), as CS231n's does; got a tuple of 2"):
        check_layer_backward(lambda dout, cache: (dout, dout), "batchnorm", forward=forward)
    with pytest.raises(InputTypeError, match=r"must return \(out, cache\), as CS231n's does; got ndarray"):
        check_layer_backward(bn["batchnorm_backward"], "batchnorm", forward=lambda x, g, b, p: x)
    with pytest.raises(InputError, match=r"raised at x of shape \[7, 5\] .*ZeroDivisionError"):
        check_layer_backward(lambda dout, cache: 1 / 0, "batchnorm", forward=forward)
    with pytest.raises(InputError, match=r"SystemExit: the code called sys.exit\(3\)"):
        check_layer_backward(lambda dout, cache: exit(3), "batchnorm", forward=forward)
    with pytest.raises(
        InputError, match="layer must be one of batchnorm, layernorm, conv, maxpool, residual; got 'groupnorm'"
    ):
        check_layer_backward(bn["batchnorm_backward"], "groupnorm", forward=forward)
    with pytest.raises(InputError, match=r"layernorm_forward\(x, gamma, beta, ln_param\) builds the cache"):
        check_layer_backward(bn["batchnorm_backward"], "layernorm")
    with pytest.raises(InputTypeError, match=r"dgamma returned by .* is not an array of numbers"):
        check_layer_backward(lambda dout, cache: (dout, "a", dout), "batchnorm", forward=forward)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_cli_checks_a_layer_and_exits_0_or_1(tmp_path, capsys, layer):
    code, out, err = cli(capsys, f"{write_student(tmp_path, layer)}:{layer}_backward", "--layer", layer)
    assert code == 0 and err == "" and "verdict: OK" in out
    path = write_student(tmp_path, layer, "mean_path_dropped")
    code, out, err = cli(capsys, f"{path}:{layer}_backward", "--layer", layer)
    assert code == 1 and "mean_path_dropped (dx)" in out and "verdict: WRONG" in out


BAD_FILES = {
    "no_forward": (
        "def batchnorm_backward(dout, cache):\n    return dout, dout, dout\n",
        "has no function batchnorm_forward",
    ),
    "raises": (
        BATCHNORM.replace("    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache\n", "    raise KeyError('mode')\n"),
        "KeyError: 'mode' (during the call batchnorm_backward(dout, cache))",
    ),
    "exits": (
        BATCHNORM.replace("    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache\n", "    import sys; sys.exit(0)\n"),
        "SystemExit: the code called sys.exit(0)",
    ),
    "hard_exit": (
        BATCHNORM.replace("    xhat, gamma, xmu, ivar, sqrtvar, var, eps = cache\n", "    import os; os._exit(0)\n"),
        "the code called os._exit(0)",
    ),
    "arity": (BATCHNORM.replace("return dx, dgamma, dbeta\n", "return dx, dgamma\n"), "got a tuple of 2"),
    "signature": (
        BATCHNORM.replace("def batchnorm_backward(dout, cache):", "def batchnorm_backward(dout):"),
        "cannot be called as batchnorm_backward(dout, cache)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_cli_bad_input_is_one_line_with_exit_2(tmp_path, capsys, case):
    source, message = BAD_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(source.format(mistake=None, dtype="np.float64") if "{mistake" in source else source)
    code, out, err = cli(capsys, f"{path}:batchnorm_backward", "--layer", "batchnorm")
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("chainrule: error: ") and "Traceback" not in err
    assert message in err, err


def test_cli_missing_function_and_network_options_are_refused(tmp_path, capsys):
    path = write_student(tmp_path, "batchnorm")
    code, _, err = cli(capsys, f"{path}:backward", "--layer", "batchnorm")
    assert code == 2 and "has no function 'backward'; it has: DTYPE, batchnorm_backward, batchnorm_forward" in err
    code, _, err = cli(capsys, f"{path}:batchnorm_backward", "--layer", "batchnorm", "--sizes", "3,4")
    assert code == 2 and "--sizes: not with --layer" in err
    code, _, err = cli(capsys, f"{path}:batchnorm_backward", "--layer", "groupnorm")
    assert code == 2 and "invalid choice: 'groupnorm'" in err
