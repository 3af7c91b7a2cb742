"""The convolution, max-pooling and residual layers that check_layer_backward checks, in CS231n's style.

Each layer is a ``_LayerSpec``: the student's signatures, the two draws, the reference (torch autograd of torch's
own layer in float64) and the catalogue of classic mistakes, each written as the right backward with one step
changed. ``numeric._check_layer`` runs the student's functions and gives the verdict with the same rules as for
BatchNorm and LayerNorm: a mistake is named only when it reproduces the student's numbers at both draws and
leaves alone every output the student got right, else ``unknown``.

The signatures (CS231n's assignment 2 for the first two; images are [N, C, H, W])::

    out, cache = conv_forward_naive(x, w, b, conv_param)        # w [F, C, HH, WW], b [F]; {"stride", "pad"}
    dx, dw, db = conv_backward_naive(dout, cache)
    out, cache = max_pool_forward_naive(x, pool_param)          # {"pool_height", "pool_width", "stride"}
    dx = max_pool_backward_naive(dout, cache)
    out, cache = residual_forward(x, w, b)                      # out = x + relu(x @ w + b); x [N, D], w [D, D]
    dx, dw, db = residual_backward(dout, cache)

Why the draws are what they are (each guarded by ``_collisions``, checked when this module is imported): every
axis of every array a draw makes (N, C, F, H, W, HH, WW, H', W', the padded H + 2·pad and W + 2·pad, the window's
height and width) has its own size, none of them 1. Then a gradient summed over a wrong axis, a kernel or image
read transposed, or a padded dx, has a shape or numbers of its own: no mistake is right by luck, and no two
mistakes look alike. The convolution is drawn once with stride 2 and pad 1 and once with stride 1 and pad 0 (a
stride or pad hard-coded, or ignored, shows at one of them); max-pooling once with overlapping windows (3×2,
stride 1: entries shared by windows, where an overwritten gradient differs from an added one) and once without
(2×3, stride 3); x's entries are all different (no ties: the arg-max is one entry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch.nn import functional

from ._check_backward import _shape_text


@dataclass(frozen=True)
class _Case:
    """One draw: what the student's forward gets, and the upstream gradient its backward gets."""

    tensors: tuple[torch.Tensor, ...]  # the forward's array arguments, in order (x first), float64
    param: Mapping[str, int] | None  # the forward's last argument (conv_param, pool_param), None when it has none
    dout: torch.Tensor
    shown: str = ""  # the draw as the report says it (set by _LayerSpec.cases)

    @property
    def x(self) -> torch.Tensor:
        return self.tensors[0]


Outputs = dict[str, torch.Tensor]


class _Variant(NamedTuple):
    name: str
    explanation: str
    changed: Callable[[_Case], Outputs]  # the outputs the mistake changes, computed with it


def _vjp(function: Callable[..., torch.Tensor], tensors: tuple[torch.Tensor, ...], dout: torch.Tensor) -> tuple:
    """function(*tensors) and its vector-Jacobian product with dout, by torch autograd."""
    leaves = tuple(t.detach().clone().requires_grad_() for t in tensors)
    with torch.enable_grad():
        out = function(*leaves)
        grads = torch.autograd.grad(out, leaves, dout)
    return out.detach(), grads


@dataclass(frozen=True)
class _LayerSpec:
    name: str  # the --layer choice
    forward_name: str
    backward_name: str
    forward_arguments: tuple[str, ...]  # the forward's parameters, as CS231n names them
    outputs: tuple[str, ...]  # what the backward returns, in order
    reference: str  # the reference, as the report says it
    function: Callable[..., torch.Tensor]  # torch's own layer: function(*case.tensors, case.param) -> out
    settings: tuple[Mapping[str, int], ...]  # per draw: the sizes and the forward's parameters
    make_case: Callable[[torch.Generator, Mapping[str, int]], _Case]
    catalogue: tuple[_Variant, ...]
    describe: Callable[[Mapping[str, int]], str]  # a draw as the report's title says it
    mistakes: Mapping[str, str]  # what each name means

    @property
    def forward_signature(self) -> str:
        return f"{self.forward_name}({', '.join(self.forward_arguments)})"

    @property
    def backward_signature(self) -> str:
        returns = self.outputs[0] if len(self.outputs) == 1 else f"({', '.join(self.outputs)})"
        return f"{self.backward_name}(dout, cache) -> {returns}"

    def cases(self, generator: torch.Generator) -> list[_Case]:
        return [replace(self.make_case(generator, s), shown=self.describe(s)) for s in self.settings]

    def arguments(self, case: _Case) -> tuple[tuple[torch.Tensor, ...], Mapping[str, int] | None]:
        return case.tensors, case.param

    def at(self, case: _Case) -> str:
        return case.shown

    def shown(self, case: _Case) -> str:
        return case.shown

    def reference_of(self, case: _Case) -> tuple[torch.Tensor, Outputs]:
        out, grads = _vjp(lambda *t: self.function(*t, case.param), case.tensors, case.dout)
        return out, dict(zip(self.outputs, grads))

    def variants(self, case: _Case) -> list[tuple[str, str, Outputs]]:
        """Each catalogued mistake's outputs at ``case``: the reference's, with the ones it changes replaced."""
        right = self.reference_of(case)[1]
        return [(v.name, v.explanation, {**right, **v.changed(case)}) for v in self.catalogue]

    def title(self, function: str, sizes: tuple[str, ...]) -> str:
        return f"{function}(dout, cache) checked against torch autograd of {self.reference} in float64, at " + (
            " and ".join(sizes)
        )


def _normal(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------------------------
# the convolution: x [N, C, H, W], w [F, C, HH, WW], b [F], out [N, F, H', W'], H' = 1 + (H + 2·pad − HH) / stride


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, param: Mapping[str, int]) -> torch.Tensor:
    return functional.conv2d(x, w, b, stride=param["stride"], padding=param["pad"])


def _out_size(size: int, window: int, stride: int, pad: int = 0) -> int:
    return 1 + (size + 2 * pad - window) // stride


def _conv_sizes(s: Mapping[str, int]) -> dict[str, int]:
    """Every axis a convolution's draw makes, by name."""
    sizes = {k: s[k] for k in ("N", "C", "F", "H", "W", "HH", "WW")}
    sizes["H'"] = _out_size(s["H"], s["HH"], s["stride"], s["pad"])
    sizes["W'"] = _out_size(s["W"], s["WW"], s["stride"], s["pad"])
    if s["pad"]:
        sizes["H + 2·pad"], sizes["W + 2·pad"] = s["H"] + 2 * s["pad"], s["W"] + 2 * s["pad"]
    return sizes


def _conv_case(generator: torch.Generator, s: Mapping[str, int]) -> _Case:
    x = _normal(generator, s["N"], s["C"], s["H"], s["W"])
    w = _normal(generator, s["F"], s["C"], s["HH"], s["WW"])
    b = _normal(generator, s["F"])
    sizes = _conv_sizes(s)
    dout = _normal(generator, s["N"], s["F"], sizes["H'"], sizes["W'"])
    return _Case((x, w, b), {"stride": s["stride"], "pad": s["pad"]}, dout)


def _conv_describe(s: Mapping[str, int]) -> str:
    x, w = _shape_text((s["N"], s["C"], s["H"], s["W"])), _shape_text((s["F"], s["C"], s["HH"], s["WW"]))
    return f"x {x}, w {w}, stride {s['stride']}, pad {s['pad']}"


def _flipped_kernel(case: _Case) -> Outputs:
    """dx as the full correlation of dout with w itself, where the convolution's is with w flipped (rotated 180°)."""
    x, w, b = case.tensors
    _, (dx,) = _vjp(lambda x: _conv(x, w.flip(2, 3), b, case.param), (x,), case.dout)
    return {"dx": dx}


def _stride_one(case: _Case, outputs: tuple[str, ...]) -> Outputs:
    """The backward's windows placed at i, j instead of i·stride, j·stride: stride 1's backward, with dout in the
    top-left H' × W' of its output."""
    x, w, b = case.tensors
    param = {**case.param, "stride": 1}
    n, f, h, wd = case.dout.shape
    dout = torch.zeros(
        n,
        f,
        _out_size(x.shape[2], w.shape[2], 1, param["pad"]),
        _out_size(x.shape[3], w.shape[3], 1, param["pad"]),
        dtype=x.dtype,
    )
    dout[:, :, :h, :wd] = case.dout
    _, (dx, dw) = _vjp(lambda x, w: _conv(x, w, b, param), (x, w), dout)
    return {name: value for name, value in (("dx", dx), ("dw", dw)) if name in outputs}


def _padded_dx(case: _Case) -> torch.Tensor:
    """The gradient with respect to the padded x (x_pad = np.pad(x, pad)), before the padding is cropped."""
    x, w, b = case.tensors
    pad = case.param["pad"]
    padded = functional.pad(x, (pad, pad, pad, pad))
    _, (dx,) = _vjp(lambda xp: _conv(xp, w, b, {**case.param, "pad": 0}), (padded,), case.dout)
    return dx


def _cropped(case: _Case, start: int) -> Outputs:
    """dx_pad cropped to H × W from ``start`` (0: the top-left; 2·pad: the bottom-right) instead of from pad."""
    h, w = case.x.shape[2:]
    return {"dx": _padded_dx(case)[:, :, start : start + h, start : start + w]}


def _per_sample_dw(case: _Case) -> torch.Tensor:
    """[N, F, C, HH, WW]: each sample's contribution to dw."""
    x, w, b = case.tensors

    def one(i: int) -> torch.Tensor:
        return _vjp(lambda w: _conv(x[i : i + 1], w, b, case.param), (w,), case.dout[i : i + 1])[1][0]

    return torch.stack([one(i) for i in range(len(x))])


_CONV_OUTPUTS = ("dx", "dw", "db")
_CONV_CATALOGUE = (
    _Variant(
        "kernel_not_flipped",
        "dx is the full correlation of dout with w where it is the full convolution (the correlation with w "
        "rotated by 180°, w[:, :, ::-1, ::-1])",
        _flipped_kernel,
    ),
    _Variant(
        "db_not_summed",
        "db is summed over the spatial axes only, not over N: shape [N, F]",
        lambda c: {"db": c.dout.sum((2, 3))},
    ),
    _Variant(
        "db_not_summed",
        "db is summed over N only, not over the spatial axes: shape [F, H', W']",
        lambda c: {"db": c.dout.sum(0)},
    ),
    _Variant(
        "db_not_summed",
        "db is summed over N and the width, not the height: shape [F, H']",
        lambda c: {"db": c.dout.sum((0, 3))},
    ),
    _Variant(
        "db_not_summed",
        "db is summed over N and the height, not the width: shape [F, W']",
        lambda c: {"db": c.dout.sum((0, 2))},
    ),
    _Variant(
        "stride_ignored",
        "the backward pass ignores the stride: its windows start at (i, j) where the forward's start at "
        "(i·stride, j·stride), in dx and dw",
        lambda c: _stride_one(c, ("dx", "dw")),
    ),
    _Variant(
        "stride_ignored",
        "the backward pass ignores the stride in dx: its windows start at (i, j) where the forward's start at "
        "(i·stride, j·stride)",
        lambda c: _stride_one(c, ("dx",)),
    ),
    _Variant(
        "stride_ignored",
        "the backward pass ignores the stride in dw: its windows start at (i, j) where the forward's start at "
        "(i·stride, j·stride)",
        lambda c: _stride_one(c, ("dw",)),
    ),
    _Variant(
        "padding_not_cropped",
        "dx is the gradient of the padded x, [N, C, H + 2·pad, W + 2·pad]: the padding is not cropped off",
        lambda c: {"dx": _padded_dx(c)},
    ),
    _Variant(
        "padding_cropped_wrong",
        "dx is cropped from the padded gradient at the top-left, dx_pad[:, :, :H, :W], where the padding is on "
        "both sides: dx_pad[:, :, pad:pad + H, pad:pad + W]",
        lambda c: _cropped(c, 0),
    ),
    _Variant(
        "padding_cropped_wrong",
        "dx is cropped from the padded gradient at the bottom-right, dx_pad[:, :, 2·pad:, 2·pad:], where the padding "
        "is on both sides: dx_pad[:, :, pad:pad + H, pad:pad + W]",
        lambda c: _cropped(c, 2 * c.param["pad"]),
    ),
    _Variant(
        "padding_cropped_wrong",
        "dx is cropped as dx_pad[:, :, pad:-pad, pad:-pad], which is empty when pad is 0 (-0 is 0): right is "
        "dx_pad[:, :, pad:pad + H, pad:pad + W]",
        lambda c: {"dx": _padded_dx(c)[:, :, c.param["pad"] : -c.param["pad"], c.param["pad"] : -c.param["pad"]]},
    ),
    _Variant(
        "dw_not_summed",
        "dw is not summed over the samples: one kernel gradient per sample, shape [N, F, C, HH, WW]",
        lambda c: {"dw": _per_sample_dw(c)},
    ),
    _Variant(
        "dw_not_summed",
        "dw is the last sample's only: each sample's dw overwrites the one before (dw = ... where dw += ... is right)",
        lambda c: {"dw": _per_sample_dw(c)[-1]},
    ),
)
CONV_MISTAKES: Mapping[str, str] = MappingProxyType(
    {
        "kernel_not_flipped": "dx correlates dout with w where it convolves (w rotated by 180°)",
        "db_not_summed": "db not summed over N, or over the spatial axes",
        "stride_ignored": "the backward's windows step by 1, not by the stride",
        "padding_not_cropped": "dx returned with the padded shape",
        "padding_cropped_wrong": "dx cropped from the padded gradient at the wrong side",
        "dw_not_summed": "dw not summed over N (one per sample, or the last sample's)",
    }
)


# ---------------------------------------------------------------------------------------------------------------
# max-pooling: x [N, C, H, W], windows pool_height × pool_width every stride, out [N, C, H', W']


def _pool_param(case: _Case) -> tuple[int, int, int]:
    p = case.param
    return p["pool_height"], p["pool_width"], p["stride"]


def _max_pool(x: torch.Tensor, param: Mapping[str, int]) -> torch.Tensor:
    return functional.max_pool2d(x, (param["pool_height"], param["pool_width"]), param["stride"])


def _pool_sizes(s: Mapping[str, int]) -> dict[str, int]:
    sizes = {k: s[k] for k in ("N", "C", "H", "W", "pool_height", "pool_width")}
    sizes["H'"] = _out_size(s["H"], s["pool_height"], s["stride"])
    sizes["W'"] = _out_size(s["W"], s["pool_width"], s["stride"])
    return sizes


def _pool_case(generator: torch.Generator, s: Mapping[str, int]) -> _Case:
    shape = (s["N"], s["C"], s["H"], s["W"])
    count = s["N"] * s["C"] * s["H"] * s["W"]
    # all entries different (no ties: the arg-max of a window is one entry), spread over [−1, 1)
    x = (torch.randperm(count, generator=generator, dtype=torch.float64) * 2 / count - 1).reshape(shape)
    sizes = _pool_sizes(s)
    dout = _normal(generator, s["N"], s["C"], sizes["H'"], sizes["W'"])
    param = {k: s[k] for k in ("pool_height", "pool_width", "stride")}
    return _Case((x,), param, dout)


def _pool_describe(s: Mapping[str, int]) -> str:
    windows = f"{s['pool_height']}×{s['pool_width']} windows"
    return f"x {_shape_text((s['N'], s['C'], s['H'], s['W']))}, {windows}, stride {s['stride']}"


def _windows(case: _Case) -> torch.Tensor:
    """[N, C, ph·pw, L]: each window's entries (row-major within it), windows in row-major order."""
    ph, pw, stride = _pool_param(case)
    n, c = case.x.shape[:2]
    return functional.unfold(case.x, (ph, pw), stride=stride).reshape(n, c, ph * pw, -1)


def _routed(case: _Case, weights: torch.Tensor) -> Outputs:
    """dx: each window's dout times ``weights`` [N, C, ph·pw, L] given to its entries, summed where windows overlap."""
    ph, pw, stride = _pool_param(case)
    n, c, h, w = case.x.shape
    spread = weights * case.dout.reshape(n, c, 1, -1)
    return {"dx": functional.fold(spread.reshape(n, c * ph * pw, -1), (h, w), (ph, pw), stride=stride)}


def _one_hot(case: _Case, index: torch.Tensor) -> torch.Tensor:
    windows = _windows(case)
    return torch.zeros_like(windows).scatter_(2, index.unsqueeze(2), 1.0)


def _to_entry(case: _Case, pick: str) -> Outputs:
    windows = _windows(case)
    size = windows.shape[2]
    index = {
        "argmax": lambda: windows.argmax(2),
        "argmin": lambda: windows.argmin(2),
        "first": lambda: torch.zeros_like(windows[:, :, 0], dtype=torch.long),
        "last": lambda: torch.full_like(windows[:, :, 0], size - 1, dtype=torch.long),
    }[pick]()
    return _routed(case, _one_hot(case, index))


def _overwritten(case: _Case, whole_window: bool) -> Outputs:
    """dx written window by window in row-major order with = where += is right: a later window's write replaces
    an earlier one's where they share entries (the max entry only, or the whole window with its zeros). A loop,
    as the student's: fold and index_add sum where windows meet, and index_put's order with repeated indices is
    not defined."""
    ph, pw, stride = _pool_param(case)
    x, dout = case.x, case.dout
    dx = torch.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            rows, cols = slice(i * stride, i * stride + ph), slice(j * stride, j * stride + pw)
            window = x[:, :, rows, cols]
            mask = window == window.amax((2, 3), keepdim=True)
            routed = mask * dout[:, :, i, j, None, None]
            if whole_window:
                dx[:, :, rows, cols] = routed
            else:
                dx[:, :, rows, cols] = torch.where(mask, routed, dx[:, :, rows, cols])
    return {"dx": dx}


def _averaged(case: _Case, scale: float) -> Outputs:
    windows = _windows(case)
    return _routed(case, torch.full_like(windows, scale))


_POOL_CATALOGUE = (
    _Variant(
        "gradient_spread",
        "each window's dout is spread over its pool_height·pool_width entries, as average pooling's is, where "
        "max pooling routes it to the window's largest entry",
        lambda c: _averaged(c, 1.0 / (_pool_param(c)[0] * _pool_param(c)[1])),
    ),
    _Variant(
        "gradient_spread",
        "each window's dout is copied to every entry of the window, where max pooling routes it to the largest",
        lambda c: _averaged(c, 1.0),
    ),
    _Variant(
        "wrong_entry",
        "each window's dout goes to its smallest entry (argmin) where it goes to the largest (argmax)",
        lambda c: _to_entry(c, "argmin"),
    ),
    _Variant(
        "wrong_entry",
        "each window's dout goes to its last (bottom-right) entry where it goes to the largest",
        lambda c: _to_entry(c, "last"),
    ),
    _Variant(
        "wrong_entry",
        "each window's dout goes to its first (top-left) entry where it goes to the largest",
        lambda c: _to_entry(c, "first"),
    ),
    _Variant(
        "overlap_overwritten",
        "dx[window][max] = dout where += is right: where windows overlap, a later window's gradient replaces an "
        "earlier one's at an entry that is the largest of both",
        lambda c: _overwritten(c, whole_window=False),
    ),
    _Variant(
        "overlap_overwritten",
        "dx[window] = (window == max)·dout where += is right: each window's write, zeros included, replaces the "
        "gradient earlier overlapping windows gave",
        lambda c: _overwritten(c, whole_window=True),
    ),
)
POOL_MISTAKES: Mapping[str, str] = MappingProxyType(
    {
        "gradient_spread": "the gradient spread to every entry of the window (averaged, or copied unscaled)",
        "wrong_entry": "the gradient routed to another entry of the window (smallest, first, last), not the largest",
        "overlap_overwritten": "overlapping windows' gradients overwritten instead of added",
    }
)


# ---------------------------------------------------------------------------------------------------------------
# the residual block: out = x + relu(x @ w + b), x [N, D], w [D, D] (square: the block's output is added to x)


def _residual(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, param: None) -> torch.Tensor:
    return x + torch.relu(x @ w + b)


def _residual_case(generator: torch.Generator, s: Mapping[str, int]) -> _Case:
    n, d = s["N"], s["D"]
    # w scaled by 1/√D and b small: x @ w + b of order 1, about half of it positive (the mask matters)
    x, w, b = _normal(generator, n, d), _normal(generator, d, d) / d**0.5, 0.1 * _normal(generator, d)
    return _Case((x, w, b), None, _normal(generator, n, d))


def _branch(case: _Case, mask: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The branch's upstream gradient g = dout·relu'(z) (dout itself without the mask), with x and w."""
    x, w, b = case.tensors
    g = case.dout * (x @ w + b > 0) if mask else case.dout
    return g, x, w


def _no_mask(case: _Case) -> Outputs:
    g, x, w = _branch(case, mask=False)
    return {"dx": case.dout + g @ w.T, "dw": x.T @ g, "db": g.sum(0)}


_RESIDUAL_CATALOGUE = (
    _Variant(
        "skip_dropped",
        "dx is the branch's gradient only, (dout·relu'(z)) @ wᵀ: the skip connection's dout is not added",
        lambda c: {"dx": _branch(c)[0] @ _branch(c)[2].T},
    ),
    _Variant(
        "branch_dropped",
        "dx = dout: the branch's gradient (dout·relu'(z)) @ wᵀ is not added to the skip connection's",
        lambda c: {"dx": c.dout.clone()},
    ),
    _Variant(
        "relu_mask_missing",
        "relu's derivative is left out: the branch takes dout where it takes dout·(z > 0)",
        _no_mask,
    ),
    _Variant(
        "w_not_transposed",
        "the branch's dx is (dout·relu'(z)) @ w where it is @ wᵀ (w is square, so the shape does not tell)",
        lambda c: {"dx": c.dout + _branch(c)[0] @ _branch(c)[2]},
    ),
    _Variant(
        "dw_transposed",
        "dw = (dout·relu'(z))ᵀ @ x where it is xᵀ @ (dout·relu'(z)) (w is square, so the shape does not tell)",
        lambda c: {"dw": _branch(c)[0].T @ _branch(c)[1]},
    ),
)
RESIDUAL_MISTAKES: Mapping[str, str] = MappingProxyType(
    {
        "skip_dropped": "the skip connection's gradient dropped: dx = the branch's only",
        "branch_dropped": "the branch's gradient dropped: dx = dout",
        "relu_mask_missing": "relu's derivative left out of the branch",
        "w_not_transposed": "the branch's dx multiplied by w instead of wᵀ",
        "dw_transposed": "dw transposed",
    }
)


# ---------------------------------------------------------------------------------------------------------------
# the layers, their draws and the guard on them


def _sizes_of(name: str, setting: Mapping[str, int]) -> dict[str, int]:
    if name == "conv":
        return _conv_sizes(setting)
    if name == "maxpool":
        return _pool_sizes(setting)
    return {"N": setting["N"], "D": setting["D"]}


def _collisions(name: str, setting: Mapping[str, int]) -> list[str]:
    """Why a draw could let a wrong backward pass: two axes of one size (a sum over the wrong one keeps the shape,
    a transposed kernel or image fits), an axis of size 1 (a sum over it is its entry), a stride or pad that is
    not a whole number of steps (the forward's floor would hide rows)."""
    sizes = _sizes_of(name, setting)
    found = [f"{axis} = 1" for axis, size in sizes.items() if size < 2]
    by_size: dict[int, list[str]] = {}
    for axis, size in sizes.items():
        by_size.setdefault(size, []).append(axis)
    found += [f"{' == '.join(axes)} == {size}" for size, axes in by_size.items() if len(axes) > 1]
    if name == "conv":
        for size, window in (("H", "HH"), ("W", "WW")):
            if (setting[size] + 2 * setting["pad"] - setting[window]) % setting["stride"]:
                found.append(f"the stride does not divide {size} + 2·pad − {window}")
    if name == "maxpool":
        for size, window in (("H", "pool_height"), ("W", "pool_width")):
            if (setting[size] - setting[window]) % setting["stride"]:
                found.append(f"the stride does not divide {size} − {window}")
    return found


LAYERS: Mapping[str, _LayerSpec] = MappingProxyType(
    {
        "conv": _LayerSpec(
            "conv",
            "conv_forward_naive",
            "conv_backward_naive",
            ("x", "w", "b", "conv_param"),
            _CONV_OUTPUTS,
            "F.conv2d",
            _conv,
            (
                {"N": 2, "C": 5, "F": 8, "H": 9, "W": 10, "HH": 7, "WW": 6, "stride": 2, "pad": 1},
                {"N": 3, "C": 2, "F": 7, "H": 11, "W": 10, "HH": 4, "WW": 5, "stride": 1, "pad": 0},
            ),
            _conv_case,
            _CONV_CATALOGUE,
            _conv_describe,
            CONV_MISTAKES,
        ),
        "maxpool": _LayerSpec(
            "maxpool",
            "max_pool_forward_naive",
            "max_pool_backward_naive",
            ("x", "pool_param"),
            ("dx",),
            "F.max_pool2d",
            _max_pool,
            (
                {"N": 4, "C": 5, "H": 10, "W": 7, "pool_height": 3, "pool_width": 2, "stride": 1},
                {"N": 6, "C": 7, "H": 11, "W": 15, "pool_height": 2, "pool_width": 3, "stride": 3},
            ),
            _pool_case,
            _POOL_CATALOGUE,
            _pool_describe,
            POOL_MISTAKES,
        ),
        "residual": _LayerSpec(
            "residual",
            "residual_forward",
            "residual_backward",
            ("x", "w", "b"),
            _CONV_OUTPUTS,
            "x + relu(x @ w + b)",
            _residual,
            ({"N": 7, "D": 5}, {"N": 6, "D": 11}),
            _residual_case,
            _RESIDUAL_CATALOGUE,
            lambda s: f"x {_shape_text((s['N'], s['D']))}",
            RESIDUAL_MISTAKES,
        ),
    }
)


def _settings_are_safe() -> None:  # pragma: no cover - a guard on the module's own constants
    bad = {
        name: found
        for name, spec in LAYERS.items()
        for setting in spec.settings
        if (found := _collisions(name, setting))
    }
    if bad:
        raise AssertionError(f"the draws collide: {bad}")
    for spec in LAYERS.values():
        assert {v.name for v in spec.catalogue} == set(spec.mistakes), "every variant's name is explained"


_settings_are_safe()
