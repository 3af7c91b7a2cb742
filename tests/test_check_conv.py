"""check_layer_backward for a hand-written convolution, max-pooling and residual backward, CS231n's style (issue 18).

The students are files written here (tmp_path), in NumPy with CS231n's naive loops, one mistake planted by a
constant at their top; none shares code with the checker's catalogue, which writes each mistake with torch's own
layers (autograd of conv2d, unfold/fold). The convolution's "kernel not flipped" is planted in a second student
who writes dx as the full convolution of dout with the kernel (the textbook's way), where the flip is a step.
Each planted catalogue mistake must be named, each mistake outside the catalogue must be ``unknown`` (never a
wrong name), and correct code must pass.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
from torch.nn import functional

import numeric._check_conv as check_conv
import numeric._check_layer as check_layer
from numeric import check_layer_backward
from numeric._check_backward import UNKNOWN, _agrees
from numeric._check_conv import LAYERS, _collisions
from numeric._check_layer import RTOL
from numeric._user_code import load_module
from numeric.cli import main
from symbolic import InputError, InputTypeError

CONV = """
import numpy as np

MISTAKE = {mistake!r}


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, H_out, W_out))
    for n in range(N):
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
                    out[n, f, i, j] = np.sum(window * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros((N,) + w.shape) if MISTAKE == "dw_per_sample" else np.zeros_like(w)
    sx = 1 if MISTAKE in ("stride_both", "stride_dx") else stride  # the steps of dx's windows
    sw = 1 if MISTAKE in ("stride_both", "stride_dw") else stride  # and of dw's
    for n in range(N):
        if MISTAKE == "dw_last_sample":
            dw = np.zeros_like(w)  # reset for every sample: the last one's is left
        for f in range(F):
            for i in range(H_out):
                for j in range(W_out):
                    window = x_pad[n, :, i * sw : i * sw + HH, j * sw : j * sw + WW]
                    if MISTAKE == "dw_per_sample":
                        dw[n, f] += window * dout[n, f, i, j]
                    else:
                        dw[f] += window * dout[n, f, i, j]
                    dx_pad[n, :, i * sx : i * sx + HH, j * sx : j * sx + WW] += w[f] * dout[n, f, i, j]
    axes = {{"db_spatial_only": (2, 3), "db_n_only": 0, "db_height_kept": (0, 3)}}.get(MISTAKE, (0, 2, 3))
    db = dout.sum(axis=axes)
    if MISTAKE == "pad_kept":
        dx = dx_pad
    elif MISTAKE == "pad_negative_slice":  # right at pad 1, empty at pad 0
        dx = dx_pad[:, :, pad:-pad, pad:-pad]
    elif MISTAKE == "pad_cropped_top_left":
        dx = dx_pad[:, :, :H, :W]
    else:
        dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    if MISTAKE == "dw_sign":
        dw = -dw
    if MISTAKE == "db_mean":
        db = db / N
    return dx, dw, db
"""

# the same layer, dx written as the full convolution of the dilated, padded dout with the flipped kernel
CONV_AS_CONVOLUTION = """
import numpy as np

FLIP = {flip!r}


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    F, C, HH, WW = w.shape
    H_out = 1 + (x_pad.shape[2] - HH) // stride
    W_out = 1 + (x_pad.shape[3] - WW) // stride
    out = np.empty((x.shape[0], F, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            out[:, :, i, j] = np.einsum("nchw,fchw->nf", window, w) + b
    return out, (x, w, conv_param)


def conv_backward_naive(dout, cache):
    x, w, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, F, H_out, W_out = dout.shape
    _, C, HH, WW = w.shape
    dilated = np.zeros((N, F, (H_out - 1) * stride + 1, (W_out - 1) * stride + 1))
    dilated[:, :, ::stride, ::stride] = dout
    full = np.pad(dilated, ((0, 0), (0, 0), (HH - 1, HH - 1), (WW - 1, WW - 1)))
    kernel = w[:, :, ::-1, ::-1] if FLIP else w
    dx_pad = np.empty((N, C, full.shape[2] - HH + 1, full.shape[3] - WW + 1))
    for a in range(dx_pad.shape[2]):
        for c in range(dx_pad.shape[3]):
            dx_pad[:, :, a, c] = np.einsum("nfhw,fchw->nc", full[:, :, a : a + HH, c : c + WW], kernel)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dw = np.zeros_like(w)
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            dw += np.einsum("nf,nchw->fchw", dout[:, :, i, j], window)
    H, W = x.shape[2:]
    return dx_pad[:, :, pad : pad + H, pad : pad + W], dw, dout.sum(axis=(0, 2, 3))
"""

MAXPOOL = """
import numpy as np

MISTAKE = {mistake!r}


def max_pool_forward_naive(x, pool_param):
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    out = np.zeros((N, C, 1 + (H - ph) // s, 1 + (W - pw) // s))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            out[:, :, i, j] = x[:, :, i * s : i * s + ph, j * s : j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H_out, W_out = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * s : i * s + ph, j * s : j * s + pw]
                    g = dout[n, c, i, j]
                    if MISTAKE == "average":
                        dx[n, c, i * s : i * s + ph, j * s : j * s + pw] += g / (ph * pw)
                        continue
                    if MISTAKE == "copied":
                        dx[n, c, i * s : i * s + ph, j * s : j * s + pw] += g
                        continue
                    if MISTAKE == "assign_window":
                        dx[n, c, i * s : i * s + ph, j * s : j * s + pw] = (window == window.max()) * g
                        continue
                    k = window.argmin() if MISTAKE == "argmin" else window.argmax()
                    a, b = (ph - 1, pw - 1) if MISTAKE == "last" else np.unravel_index(k, window.shape)
                    if MISTAKE == "assign_max":
                        dx[n, c, i * s + a, j * s + b] = g
                    else:
                        dx[n, c, i * s + a, j * s + b] += 2 * g if MISTAKE == "doubled" else g
    return dx
"""

RESIDUAL = """
import numpy as np

MISTAKE = {mistake!r}


def residual_forward(x, w, b):
    z = x @ w + b
    return x + np.maximum(z, 0), (x, w, z)


def residual_backward(dout, cache):
    x, w, z = cache
    dz = dout if MISTAKE == "no_mask" else dout * (z > 0)
    dw = dz.T @ x if MISTAKE == "dw_transposed" else x.T @ dz
    db = dz.mean(axis=0) if MISTAKE == "db_mean" else dz.sum(axis=0)
    branch = dz @ w if MISTAKE == "w_not_transposed" else dz @ w.T
    if MISTAKE == "no_mask_in_dx":  # relu's derivative left out of dx only: dw and db have it
        branch = dout @ w.T
    if MISTAKE == "skip_dropped":
        dx = branch
    elif MISTAKE == "branch_dropped":
        dx = dout.copy()
    elif MISTAKE == "branch_sign":
        dx = dout - branch
    else:
        dx = dout + branch
    return dx, dw, db
"""

TEMPLATES = {"conv": CONV, "maxpool": MAXPOOL, "residual": RESIDUAL}
BACKWARD = {name: spec.backward_name for name, spec in LAYERS.items()}
# each planted mistake -> the catalogue's name for it (None: a mistake the catalogue does not hold)
PLANTED = {
    "conv": {
        "db_spatial_only": "db_not_summed",
        "db_n_only": "db_not_summed",
        "db_height_kept": "db_not_summed",
        "stride_both": "stride_ignored",
        "stride_dx": "stride_ignored",
        "stride_dw": "stride_ignored",
        "pad_kept": "padding_not_cropped",
        "pad_cropped_top_left": "padding_cropped_wrong",
        "pad_negative_slice": "padding_cropped_wrong",
        "dw_per_sample": "dw_not_summed",
        "dw_last_sample": "dw_not_summed",
    },
    "maxpool": {
        "average": "gradient_spread",
        "copied": "gradient_spread",
        "argmin": "wrong_entry",
        "last": "wrong_entry",
        "assign_max": "overlap_overwritten",
        "assign_window": "overlap_overwritten",
    },
    "residual": {
        "skip_dropped": "skip_dropped",
        "branch_dropped": "branch_dropped",
        "no_mask": "relu_mask_missing",
        "w_not_transposed": "w_not_transposed",
        "dw_transposed": "dw_transposed",
    },
}
# mistakes the catalogue does not hold, and the output each one makes wrong
UNKNOWN_PLANTED = {
    "conv": {"dw_sign": "dw", "db_mean": "db"},
    "maxpool": {"doubled": "dx"},
    "residual": {"db_mean": "db", "branch_sign": "dx"},
}


def write_student(tmp_path: Path, layer: str, mistake: str | None = None) -> Path:
    path = tmp_path / f"{layer}_{mistake or 'right'}.py"
    path.write_text(TEMPLATES[layer].format(mistake=mistake))
    return path


def check_file(path: Path, layer: str, **options):
    module, _, _ = load_module(f"{path}:{BACKWARD[layer]}")
    return check_layer_backward(getattr(module, BACKWARD[layer]), layer, **options)


def wrong_outputs(report) -> set[str]:
    return {name for name, c in report.errors.items() if not c.ok}


# ---------------------------------------------------------------------------------------------------------------
# the draws, the reference and the catalogue's own machinery


def cases(layer: str, seed: int = 0):
    return LAYERS[layer].cases(torch.Generator().manual_seed(seed))


def test_the_draws_collide_with_nothing_and_the_guard_catches_what_it_should():
    for name, spec in LAYERS.items():
        assert len(spec.settings) == 2 and all(_collisions(name, s) == [] for s in spec.settings), name
    conv = [dict(s) for s in LAYERS["conv"].settings]
    assert [(s["stride"], s["pad"]) for s in conv] == [(2, 1), (1, 0)]
    assert all(s["H"] != s["W"] and s["HH"] != s["WW"] and len({s["N"], s["C"], s["F"]}) == 3 for s in conv)
    pool = [dict(s) for s in LAYERS["maxpool"].settings]
    overlapping = [s["stride"] < min(s["pool_height"], s["pool_width"]) for s in pool]
    apart = [s["stride"] >= max(s["pool_height"], s["pool_width"]) for s in pool]
    assert overlapping == [True, False] and apart == [False, True]
    base = conv[0]
    for change in ({"C": 2}, {"F": 2}, {"W": 9}, {"WW": 7}, {"N": 1}, {"H": 10}):
        assert _collisions("conv", {**base, **change}), change
    assert _collisions("maxpool", {**pool[0], "pool_width": 3})
    assert _collisions("residual", {"N": 5, "D": 5})


def test_the_pooling_draws_have_no_ties_and_the_overlapping_one_shares_maxima():
    overlapping, apart = cases("maxpool")
    for case in (overlapping, apart):
        assert case.x.unique().numel() == case.x.numel()
    # at the overlapping draw an entry is the largest of several windows: an overwritten gradient differs there
    windows = check_conv._windows(overlapping)
    ones = check_conv._one_hot(overlapping, windows.argmax(2))
    n, c, h, w = overlapping.x.shape
    ph, pw, stride = check_conv._pool_param(overlapping)
    counts = functional.fold(ones.reshape(n, c * ph * pw, -1), (h, w), (ph, pw), stride=stride)
    assert counts.max() >= 2
    windows = check_conv._windows(apart)
    ones = check_conv._one_hot(apart, windows.argmax(2))
    assert ones.sum() == windows.shape[0] * windows.shape[1] * windows.shape[3]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_the_reference_is_torchs_layer_and_its_gradient_matches_finite_differences(layer):
    """The reference's out is torch's own layer; its gradient agrees with central differences along random
    directions, <dout, (f(t + hv) − f(t − hv)) / 2h> = <grad, v> (gradcheck's full Jacobian takes minutes here).
    h = 1e-7 moves max-pooling's entries by far less than their spacing (2 / x.numel(), no ties): no arg-max
    changes."""
    spec = LAYERS[layer]
    generator = torch.Generator().manual_seed(1)
    for case in cases(layer):
        out, grads = spec.reference_of(case)
        torch.testing.assert_close(out, spec.function(*case.tensors, case.param), rtol=0, atol=0)
        assert list(grads) == list(spec.outputs)
        for k, name in enumerate(spec.outputs):
            for _ in range(3):
                v = torch.randn(case.tensors[k].shape, generator=generator, dtype=torch.float64)
                h = 1e-7

                def f(step: float, k: int = k, v: torch.Tensor = v, case=case) -> torch.Tensor:
                    tensors = list(case.tensors)
                    tensors[k] = tensors[k] + step * v
                    return spec.function(*tensors, case.param)

                numeric = ((f(h) - f(-h)) * case.dout).sum() / (2 * h)
                torch.testing.assert_close(numeric, (grads[name] * v).sum(), rtol=1e-6, atol=1e-6)


def test_the_catalogues_routing_with_the_argmax_is_max_poolings_gradient():
    """The variants route through unfold/fold; with the arg-max, that machinery gives autograd's gradient."""
    for case in cases("maxpool"):
        ours = check_conv._to_entry(case, "argmax")["dx"]
        torch.testing.assert_close(ours, LAYERS["maxpool"].reference_of(case)[1]["dx"], rtol=1e-12, atol=1e-12)
        # and the window-by-window writer, adding where it writes, is too (its = is the mistake)
        assert check_conv._overwritten(case, whole_window=False)["dx"].shape == case.x.shape


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_every_variant_changes_an_output_and_no_two_names_give_the_same_one(layer):
    """A variant equal to the right layer would name a right student; two names with equal outputs would let a
    student get the other's name. At the draws, every variant changes an output, and any two of different names
    that change the same output differ there by more than float32's tolerance."""
    spec = LAYERS[layer]
    draws = cases(layer)
    right = [spec.reference_of(c)[1] for c in draws]
    outputs = list(zip(*(spec.variants(c) for c in draws)))  # per variant: its (name, explanation, grads) per draw

    def changes(per_draw, name):
        return any(not _agrees(v[2][name], r[name], 1e-7) for v, r in zip(per_draw, right))

    for per_draw in outputs:
        assert any(changes(per_draw, name) for name in spec.outputs), per_draw[0][:2]
    for ours, theirs in itertools.combinations(outputs, 2):
        if ours[0][0] == theirs[0][0]:
            continue
        for name in spec.outputs:
            if changes(ours, name) and changes(theirs, name):
                differ = any(not _agrees(a[2][name], b[2][name], 1e-3) for a, b in zip(ours, theirs))
                assert differ, (ours[0][:2], theirs[0][:2], name)


# ---------------------------------------------------------------------------------------------------------------
# verdicts


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_correct_students_pass(tmp_path, layer):
    report = check_file(write_student(tmp_path, layer), layer)
    assert report.ok and report.mistakes == (), str(report)
    assert "verdict: OK" in str(report)
    assert all(c.rtol == RTOL[torch.float64] for c in report.errors.values())
    assert all(c.max_rel_error < 1e-12 for c in report.errors.values())


def test_the_textbooks_convolution_with_the_flipped_kernel_passes_and_without_the_flip_is_named(tmp_path):
    right = tmp_path / "conv_flipped.py"
    right.write_text(CONV_AS_CONVOLUTION.format(flip=True))
    report = check_file(right, "conv")
    assert report.ok, str(report)
    wrong = tmp_path / "conv_not_flipped.py"
    wrong.write_text(CONV_AS_CONVOLUTION.format(flip=False))
    report = check_file(wrong, "conv")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "kernel_not_flipped")], str(report)
    assert wrong_outputs(report) == {"dx"}


@pytest.mark.parametrize("layer, planted", [(layer, p) for layer in sorted(PLANTED) for p in sorted(PLANTED[layer])])
def test_each_planted_mistake_is_named(tmp_path, layer, planted):
    report = check_file(write_student(tmp_path, layer, planted), layer)
    assert not report.ok
    expected = PLANTED[layer][planted]
    names = {m.name for m in report.mistakes}
    assert names == {expected}, str(report)
    # named on exactly the outputs that are wrong (a wrong shape is wrong too: its numbers cannot be compared)
    assert {m.parameter for m in report.mistakes} == wrong_outputs(report)
    assert len({m.explanation for m in report.mistakes}) == 1, str(report)
    assert f"{expected} (" in str(report) and "verdict: WRONG" in str(report)


def test_every_catalogue_name_is_planted():
    assert check_layer.ALL_LAYERS["batchnorm"].mistakes == check_layer.MISTAKES
    for layer, spec in LAYERS.items():
        assert check_layer.ALL_LAYERS[layer].mistakes == spec.mistakes
        planted = set(PLANTED[layer].values())
        if layer == "conv":
            planted.add("kernel_not_flipped")  # planted in the textbook's student, above
        assert planted == set(spec.mistakes), layer


@pytest.mark.parametrize(
    "layer, planted", [(layer, p) for layer in sorted(UNKNOWN_PLANTED) for p in sorted(UNKNOWN_PLANTED[layer])]
)
def test_a_mistake_the_catalogue_does_not_hold_is_unknown(tmp_path, layer, planted):
    report = check_file(write_student(tmp_path, layer, planted), layer)
    output = UNKNOWN_PLANTED[layer][planted]
    assert [(m.parameter, m.name) for m in report.mistakes] == [(output, UNKNOWN)], str(report)
    assert wrong_outputs(report) == {output}
    c = report.errors[output]
    assert f"largest difference {c.max_abs_error:.3e}, {c.max_rel_error:.3e} relative" in str(report)


@pytest.mark.parametrize("planted", ["stride_both", "pad_kept", "pad_cropped_top_left"])
def test_a_student_right_only_at_stride_1_and_pad_0_is_caught(tmp_path, monkeypatch, planted):
    """Stride ignored is right at stride 1, padding kept or cropped wrong is right at pad 0: a checker drawing
    only that convolution would say OK. The stride-2, pad-1 draw catches them."""
    module, _, _ = load_module(f"{write_student(tmp_path, 'conv', planted)}:conv_backward_naive")
    assert not check_layer_backward(module.conv_backward_naive, "conv").ok
    spec = LAYERS["conv"]
    assert (spec.settings[1]["stride"], spec.settings[1]["pad"]) == (1, 0)
    only_stride_one = dataclasses.replace(spec, settings=(spec.settings[1],))
    monkeypatch.setattr(check_layer, "ALL_LAYERS", {**check_layer.ALL_LAYERS, "conv": only_stride_one})
    assert check_layer_backward(module.conv_backward_naive, "conv").ok  # the false OK the first draw prevents


def test_a_mistake_that_would_change_outputs_the_student_got_right_is_not_named(tmp_path):
    """relu's derivative left out of dx only: relu_mask_missing gives this dx, but it would change dw and db too,
    which the student has right: not that mistake, so unknown, saying why."""
    report = check_file(write_student(tmp_path, "residual", "no_mask_in_dx"), "residual")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", UNKNOWN)], str(report)
    assert "relu_mask_missing would give this dx, but it also changes db, dw, which are right" in str(report)


def test_the_variant_that_changes_only_the_wrong_output_is_the_one_named(tmp_path):
    """dx from the windows stepped by 1 (stride ignored), dw with the stride: only the dx-only variant explains it;
    the variant for both would change dw, which is right."""
    report = check_file(write_student(tmp_path, "conv", "stride_dx"), "conv")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "stride_ignored")], str(report)
    assert "in dx:" in report.mistakes[0].explanation


# ---------------------------------------------------------------------------------------------------------------
# torch students


def test_torch_students_given_tensors_pass_and_their_mistakes_are_named():
    def conv_forward_naive(x, w, b, conv_param):
        out = functional.conv2d(x, w, b, stride=conv_param["stride"], padding=conv_param["pad"])
        return out, (x, w, conv_param)

    def conv_backward_naive(dout, cache):
        x, w, p = cache
        dx = torch.nn.grad.conv2d_input(x.shape, w, dout, stride=p["stride"], padding=p["pad"])
        dw = torch.nn.grad.conv2d_weight(x, w.shape, dout, stride=p["stride"], padding=p["pad"])
        return dx, dw, dout.sum((0, 2, 3))

    assert check_layer_backward(conv_backward_naive, "conv", forward=conv_forward_naive, arrays="torch").ok

    def unflipped(dout, cache):
        x, w, p = cache
        _, dw, db = conv_backward_naive(dout, cache)
        return conv_backward_naive(dout, (x, w.flip(2, 3), p))[0], dw, db

    report = check_layer_backward(unflipped, "conv", forward=conv_forward_naive, arrays="torch")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "kernel_not_flipped")], str(report)

    def max_pool_forward_naive(x, pool_param):
        kernel, stride = (pool_param["pool_height"], pool_param["pool_width"]), pool_param["stride"]
        out, index = functional.max_pool2d(x, kernel, stride, return_indices=True)
        return out, (x, index, kernel, stride)

    def max_pool_backward_naive(dout, cache):  # each window's dout at its largest entry, summed where they overlap
        x, _, kernel, stride = cache
        n, c = x.shape[:2]
        windows = functional.unfold(x, kernel, stride=stride).reshape(n, c, kernel[0] * kernel[1], -1)
        spread = (windows == windows.amax(2, keepdim=True)) * dout.reshape(n, c, 1, -1)
        return functional.fold(spread.reshape(n, -1, spread.shape[-1]), x.shape[2:], kernel, stride=stride)

    assert check_layer_backward(max_pool_backward_naive, "maxpool", forward=max_pool_forward_naive, arrays="torch").ok

    def unpooled(dout, cache):
        x, index, kernel, stride = cache
        return functional.max_unpool2d(dout, index, kernel, stride, output_size=x.shape[2:])

    report = check_layer_backward(unpooled, "maxpool", forward=max_pool_forward_naive, arrays="torch")
    # max_unpool2d writes each window's dout at its arg-max, so overlapping windows overwrite: right only where
    # windows do not overlap (the second draw), and the checker names it
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "overlap_overwritten")], str(report)

    def residual_forward(x, w, b):
        z = x @ w + b
        return x + torch.relu(z), (x, w, z)

    def residual_backward(dout, cache):
        x, w, z = cache
        dz = dout * (z > 0)
        return dout + dz @ w.T, x.T @ dz, dz.sum(0)

    assert check_layer_backward(residual_backward, "residual", forward=residual_forward, arrays="torch").ok

    def no_skip(dout, cache):
        dx, dw, db = residual_backward(dout, cache)
        return dx - dout, dw, db

    report = check_layer_backward(no_skip, "residual", forward=residual_forward, arrays="torch")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "skip_dropped")], str(report)


def test_a_float32_student_is_compared_at_float32s_tolerance(tmp_path):
    path = tmp_path / "maxpool32.py"
    path.write_text(MAXPOOL.format(mistake=None).replace("    return dx\n", "    return dx.astype(np.float32)\n"))
    report = check_file(path, "maxpool")
    assert report.ok and report.errors["dx"].rtol == RTOL[torch.float32], str(report)


# ---------------------------------------------------------------------------------------------------------------
# bad input: one line, the signature chainrule expects


def _right(layer: str) -> dict:
    namespace: dict = {}
    exec(TEMPLATES[layer].format(mistake=None), namespace)  # the test's own text
    return namespace


def test_api_errors_say_the_signature_expected():
    conv = _right("conv")
    with pytest.raises(InputError, match=r"conv_forward_naive\(x, w, b, conv_param\) builds the cache"):
        check_layer_backward(lambda dout, cache: None, "conv")  # no forward beside it

    def f(dout):
        return dout

    with pytest.raises(InputTypeError, match=r"f\(dout\) cannot be called as f\(dout, cache\): chainrule expects "):
        check_layer_backward(f, "conv", forward=conv["conv_forward_naive"])
    pool = _right("maxpool")
    with pytest.raises(InputTypeError, match=r"expects max_pool_forward_naive\(x, pool_param\) -> \(out, cache\)"):
        check_layer_backward(pool["max_pool_backward_naive"], "maxpool", forward=lambda x, p, q: x)
    with pytest.raises(InputTypeError, match=r"must return \(dx, dw, db\), as CS231n's does; got a tuple of 2"):
        check_layer_backward(lambda dout, cache: (dout, dout), "conv", forward=conv["conv_forward_naive"])
    with pytest.raises(InputError, match=r"raised at x \[2, 5, 9, 10\], w \[8, 5, 7, 6\], stride 2, pad 1 "):
        check_layer_backward(lambda dout, cache: 1 / 0, "conv", forward=conv["conv_forward_naive"])


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_cli_checks_a_layer_and_exits_0_or_1(tmp_path, capsys, layer):
    code, out, err = cli(capsys, f"{write_student(tmp_path, layer)}:{BACKWARD[layer]}", "--layer", layer)
    assert code == 0 and err == "" and "verdict: OK" in out
    planted = sorted(PLANTED[layer])[0]
    code, out, err = cli(capsys, f"{write_student(tmp_path, layer, planted)}:{BACKWARD[layer]}", "--layer", layer)
    assert code == 1 and f"{PLANTED[layer][planted]} (" in out and "verdict: WRONG" in out


BAD_FILES = {
    "no_forward": (
        "residual",
        "def residual_backward(dout, cache):\n    return dout, dout, dout\n",
        "has no function residual_forward(x, w, b): --layer residual needs it",
    ),
    "no_backward": (
        "conv",
        CONV.replace("def conv_backward_naive(", "def conv_backward("),
        "has no function 'conv_backward_naive'; it has: conv_backward, conv_forward_naive (--layer conv "
        "expects conv_forward_naive(x, w, b, conv_param) -> (out, cache) and conv_backward_naive(dout, cache) -> "
        "(dx, dw, db))",
    ),
    "backward_arity": (
        "maxpool",
        MAXPOOL.replace("def max_pool_backward_naive(dout, cache):", "def max_pool_backward_naive(dout, x, p):"),
        "cannot be called as max_pool_backward_naive(dout, cache)",
    ),
    "forward_arity": (
        "maxpool",
        MAXPOOL.replace("def max_pool_forward_naive(x, pool_param):", "def max_pool_forward_naive(x):"),
        "(--layer maxpool expects max_pool_forward_naive(x, pool_param) -> (out, cache) and "
        "max_pool_backward_naive(dout, cache) -> dx)",
    ),
    "raises": (
        "residual",
        RESIDUAL.replace("    x, w, z = cache\n", "    raise KeyError('z')\n"),
        "KeyError: 'z' (during the call residual_backward(dout, cache))",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_cli_bad_input_is_one_line_with_exit_2(tmp_path, capsys, case):
    layer, source, message = BAD_FILES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(source.format(mistake=None) if "{mistake" in source else source)
    code, out, err = cli(capsys, f"{path}:{BACKWARD[layer]}", "--layer", layer)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("chainrule: error: ") and "Traceback" not in err
    assert message in err, err


def test_the_example_student_makes_one_catalogued_mistake():
    example = Path(__file__).resolve().parent.parent / "examples" / "student_conv.py"
    module, _, _ = load_module(f"{example}:conv_backward_naive")
    report = check_layer_backward(module.conv_backward_naive, "conv")
    assert [(m.parameter, m.name) for m in report.mistakes] == [("dx", "kernel_not_flipped")], str(report)
