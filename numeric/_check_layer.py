"""check_layer_backward: a hand-written layer backward, in CS231n's style, checked and diagnosed.

This module runs the student's functions and gives the verdict for every layer (``ALL_LAYERS``), and holds
BatchNorm and LayerNorm; the convolution, max-pooling and the residual block, with their draws and catalogues,
are in numeric/_check_conv.py (``_LayerSpec``: the same interface as ``_Layer`` here, ``_Spec``).

The student writes, in one file, the forward and backward of one layer with the signatures of CS231n's second
assignment (samples are ROWS here, as there: x is [N, D]; γ and β are [D])::

    out, cache = batchnorm_forward(x, gamma, beta, bn_param)   # bn_param = {"mode": "train", "eps": ...}
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    out, cache = layernorm_forward(x, gamma, beta, ln_param)   # ln_param = {"eps": ...}
    dx, dgamma, dbeta = layernorm_backward(dout, cache)

The student's forward builds the cache (chainrule cannot know what it holds); the three gradients are compared
with torch autograd of ``F.batch_norm(training=True)`` / ``F.layer_norm`` in float64, an independent reference.

The verdict never lies, as check_backward's does not:

* two draws at two shapes where N ≠ D and neither is 1 or 2, nor one more, one less, twice or half the other
  (``SIZES``, checked by ``_collisions``): a student who divides by the wrong axis's size, or sums over it, is
  right by luck when N == D; here that luck cannot happen.
* x has a small spread (about 0.03 around 0.5), so its variance (about 1e-3) is not large beside ε = 1e-5:
  ε left out moves the gradients by about 1e-2 relative, far above both tolerances.
* a mistake is named only when its gradients reproduce the student's at both draws, to the same tolerance, and
  it leaves alone every output the student got right; otherwise the output is ``unknown``, with its largest
  difference. Shape, dtype and nan/inf are named before numbers.

Not in the catalogue, on purpose: "BatchNorm without the path through the mean into the variance", i.e. the term
dvar·(−2/N)·Σ(x − μ) of dμ dropped. Σ(x − μ) over the normalized axis is zero for every x, so that term is zero
(rounding at the draws: about 1e-15 of the rest of dμ): a student who drops it is right, and the checker says OK
(tests/test_check_layer.py measures the term). The mistakes that the path through the mean and the variance does
give are catalogued: μ treated as a constant (``mean_path_dropped``) and σ treated as a constant
(``variance_path_dropped``).
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional

from symbolic import ChainruleError, InputError, InputTypeError, words

from ._check_backward import RTOL as _NETWORK_RTOL
from ._check_backward import UNKNOWN, Mistake, _agrees, _check_seed, _plain, _shape_text
from ._check_conv import LAYERS as CONV_LAYERS
from ._check_conv import _Case, _LayerSpec
from ._verify import Comparison, _error_table, compare

OUTPUTS = ("dx", "dgamma", "dbeta")
EPS = 1e-5  # CS231n's default ε, passed in bn_param / ln_param (a student who hard-codes it is right too)
# The tolerances, relative to the largest entry of the right output, by the dtype the student returns. float64:
# rounding in either way of writing the layer stays below 1e-12, the smallest catalogued mistake (ε) moves it by
# 1e-2. float32 (a student who casts): its rounding reaches about 1e-6 here, so 1e-4, still 100 times below ε's effect.
RTOL: Mapping[torch.dtype, float] = MappingProxyType({torch.float64: 1e-7, torch.float32: 1e-4})
PROBLEMS = ("shape", "dtype", "not_finite")
# the draws' [N, D]: no collision between N and D (see _collisions), one with N > D and one with N < D
SIZES: tuple[tuple[int, int], ...] = ((7, 5), (6, 11))
_SPREAD, _CENTRE = 0.03, 0.5  # x = 0.5 + 0.03·z: a variance of about 1e-3, so that ε = 1e-5 shows


@dataclass(frozen=True)
class _Layer:
    name: str
    axis: int  # the axis the forward normalizes over: 0 (the samples) for BatchNorm, 1 (the features) for LayerNorm
    param_name: str  # CS231n's name of the forward's fourth argument
    param: Mapping[str, object]  # its contents ("mode": "train": running statistics are not part of the gradient)
    reference: str  # the reference, as the report says it
    count: str  # the size of the normalized axis, as the explanations write it

    @property
    def forward_name(self) -> str:
        return f"{self.name}_forward"

    @property
    def backward_name(self) -> str:
        return f"{self.name}_backward"

    # what the checker asks of every layer (numeric/_check_conv.py's _LayerSpec has the same)
    outputs = OUTPUTS

    @property
    def forward_arguments(self) -> tuple[str, ...]:
        return ("x", "gamma", "beta", self.param_name)

    @property
    def forward_signature(self) -> str:
        return f"{self.forward_name}({', '.join(self.forward_arguments)})"

    @property
    def backward_signature(self) -> str:
        return f"{self.backward_name}(dout, cache) -> ({', '.join(self.outputs)})"

    def cases(self, generator: torch.Generator) -> list[_Values]:
        return [_draw(generator, *shape) for shape in SIZES]  # SIZES read now: a test may change it

    def arguments(self, values: _Values) -> tuple[tuple[torch.Tensor, ...], Mapping[str, object]]:
        return (values.x, values.gamma, values.beta), self.param

    def at(self, values: _Values) -> str:
        return f"x of shape {self.shown(values)}"

    def shown(self, values: _Values) -> str:
        return _shape_text(values.x.shape)

    def reference_of(self, values: _Values) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return _reference(self, values)

    def variants(self, values: _Values) -> list[tuple[str, str, dict[str, torch.Tensor]]]:
        return [(v.name, _explain(v, self), _variant_outputs(v, self, values)) for v in _CATALOGUE]

    @property
    def mistakes(self) -> Mapping[str, str]:
        return MISTAKES

    def title(self, function: str, sizes: tuple[str, ...]) -> str:
        return (
            f"{function}(dout, cache) checked against torch autograd of {self.reference} in float64, "
            f"x of shape {' and '.join(sizes)} (samples are rows)"
        )


LAYERS: Mapping[str, _Layer] = MappingProxyType(
    {
        "batchnorm": _Layer(
            "batchnorm",
            0,
            "bn_param",
            {"mode": "train", "eps": EPS, "momentum": 0.9},
            "F.batch_norm(training=True)",
            "N",
        ),
        "layernorm": _Layer("layernorm", 1, "ln_param", {"eps": EPS}, "F.layer_norm", "D"),
    }
)
_Spec = _Layer | _LayerSpec  # what the checker runs: a layer here, or one of numeric/_check_conv.py's
ARRAYS = ("numpy", "torch")  # what the student's functions are given: NumPy arrays (CS231n) or torch tensors


def _collisions(sizes: tuple[int, int]) -> list[str]:
    """Why [N, D] could let a wrong layer pass: N == D (an axis confused keeps every shape and, for a count, every
    number), N or D of 1 or 2 (a mean over 1 entry is the entry; N − 1 = 1), N = D ± 1 (the unbiased N − 1 equal to
    the other axis's count), N = 2D or D = 2N (a factor 2 from a doubled or halved count equal to the other's)."""
    n, d = sizes
    found = []
    if n == d:
        found.append(f"N == D == {n}")
    found += [f"{axis} = {value}" for axis, value in (("N", n), ("D", d)) if value in (1, 2)]
    if abs(n - d) == 1:
        found.append(f"N = {n} and D = {d} differ by one")
    if n == 2 * d or d == 2 * n:
        found.append(f"N = {n} and D = {d}: one is twice the other")
    return found


# ---------------------------------------------------------------------------------------------------------------
# The catalogue: each mistake is the layer's backward written from its derivation with one step changed. The
# derivation, staged as CS231n's computational graph and then summed up, with g = dout·γ (dx̂), M the size of the
# normalized axis, σ = √(var + ε), x̂ = (x − μ)/σ:
#     dx = (1/σ)·(g − mean(g) − x̂·Σ(g·x̂)/M)      (the mean path gives −mean(g), the variance path the last term)
#     dγ = Σ_samples dout·x̂,  dβ = Σ_samples dout
# Written by hand because each flag is one line of a student's derivation; tests/test_check_layer.py checks that
# with no flag set it equals the autograd reference.


def _formula(
    x: torch.Tensor,
    gamma: torch.Tensor,
    dout: torch.Tensor,
    eps: float,
    axis: int,
    *,
    forward_axis: int | None = None,
    backward_axis: int | None = None,
    forward_ddof: int = 0,
    backward_ddof: int = 0,
    forward_eps: bool = True,
    backward_eps: bool = True,
    cached_xhat: bool = False,
    count_axis: int | None = None,
    mean_path: bool = True,
    variance_path: bool = True,
    gamma_in_dx: bool = True,
    xhat_in_dgamma: bool = True,
    dgamma_axis: int = 0,
    dbeta_axis: int = 0,
) -> dict[str, torch.Tensor]:
    """dx, dγ, dβ of the layer normalizing over ``axis``, with the steps the keywords change (all off: right)."""
    a = axis if forward_axis is None else forward_axis
    b = a if backward_axis is None else backward_axis
    centred = x - x.mean(a, keepdim=True)
    var = (centred**2).sum(a, keepdim=True) / (x.shape[a] - forward_ddof)  # the forward's (the cache's) variance
    sigma_f = torch.sqrt(var + (eps if forward_eps else 0.0))
    xhat_f = centred / sigma_f
    sigma_b = torch.sqrt(var + (eps if backward_eps else 0.0))  # the backward's σ, recomputed from the cached var
    xhat_b = xhat_f if cached_xhat else centred / sigma_b
    g = dout * gamma if gamma_in_dx else dout
    dx = g
    count = x.shape[b if count_axis is None else count_axis]  # the M the backward divides by
    if mean_path:
        dx = dx - g.sum(b, keepdim=True) / count
    if variance_path:
        dx = dx - xhat_b * (g * xhat_b).sum(b, keepdim=True) / (count - backward_ddof)
    return {
        "dx": dx / sigma_b,
        "dgamma": (dout * xhat_f if xhat_in_dgamma else dout).sum(dgamma_axis),
        "dbeta": dout.sum(dbeta_axis),
    }


class _Variant(NamedTuple):
    name: str
    explanation: str  # {M}: the normalized axis's size (N or D); {axis}/{other}: the layer's axis and the other
    steps: Mapping[str, object]  # _formula's keywords; "other" stands for the axis the layer does not normalize


_CATALOGUE: tuple[_Variant, ...] = (
    _Variant(
        "mean_path_dropped",
        "μ treated as a constant: the path from x through the mean μ is left out (dx lacks −mean(dx̂)/σ)",
        {"mean_path": False},
    ),
    _Variant(
        "variance_path_dropped",
        "σ treated as a constant: the path from x through the variance is left out (dx lacks −x̂·mean(dx̂·x̂)/σ)",
        {"variance_path": False},
    ),
    _Variant(
        "unbiased_variance",
        "the backward pass differentiates the variance as if divided by {M} − 1 (2(x − μ)/({M} − 1)) where the "
        "forward pass divides by {M}",
        {"backward_ddof": 1},
    ),
    _Variant(
        "unbiased_variance",
        "the variance divides by {M} − 1 in both passes (np.var(ddof=1), torch.var's default) where the layer's is "
        "the mean over {M}",
        {"forward_ddof": 1, "backward_ddof": 1},
    ),
    _Variant(
        "unbiased_variance",
        "the forward pass's variance divides by {M} − 1 (np.var(ddof=1), torch.var's default) where it divides "
        "by {M}, as the backward pass does",
        {"forward_ddof": 1},
    ),
    _Variant(
        "eps_left_out",
        "ε is left out: σ = √var where √(var + ε) is right",
        {"forward_eps": False, "backward_eps": False},
    ),
    _Variant(
        "eps_left_out",
        "ε is left out of the backward pass's σ: √var where √(var + ε) is right",
        {"backward_eps": False},
    ),
    _Variant(
        "eps_left_out",
        "ε is left out of the backward pass's 1/σ (with the cache's x̂): √var where √(var + ε) is right",
        {"backward_eps": False, "cached_xhat": True},
    ),
    _Variant(
        "param_sum_axis",
        "dgamma is summed over the features (axis 1) instead of the samples (axis 0): γ has one entry per feature",
        {"dgamma_axis": 1},
    ),
    _Variant(
        "param_sum_axis",
        "dbeta is summed over the features (axis 1) instead of the samples (axis 0): β has one entry per feature",
        {"dbeta_axis": 1},
    ),
    _Variant(
        "axis_confused",
        "the backward pass sums over axis {other} ({other_layer}'s axis) where {layer} normalizes over axis {axis}",
        {"backward_axis": "other"},
    ),
    _Variant(
        "axis_confused",
        "the layer normalizes over axis {other} ({other_layer}'s axis) where {layer} normalizes over axis {axis}",
        {"forward_axis": "other"},
    ),
    _Variant(
        "count_from_other_axis",
        "the backward pass divides by the size of axis {other} where {M} is the size of axis {axis} "
        "(x.shape[{other}] for x.shape[{axis}]): right only when N == D",
        {"count_axis": "other"},
    ),
    _Variant(
        "dgamma_missing_xhat",
        "dgamma = Σ dout: the factor x̂ of γ·x̂ is left out (dgamma = Σ dout·x̂)",
        {"xhat_in_dgamma": False},
    ),
    _Variant("dx_missing_gamma", "dx̂ = dout: the factor γ of γ·x̂ is left out (dx̂ = dout·γ)", {"gamma_in_dx": False}),
)
# what each name means, whatever the layer (the variants' sentences say which step and which axis)
MISTAKES: Mapping[str, str] = MappingProxyType(
    {
        "mean_path_dropped": "μ treated as a constant: the gradient through the mean left out",
        "variance_path_dropped": "σ treated as a constant: the gradient through the variance left out",
        "unbiased_variance": "the variance divided by N − 1 (D − 1 for LayerNorm) in the forward or backward pass",
        "eps_left_out": "ε left out of σ = √(var + ε), in the forward or backward pass",
        "param_sum_axis": "dgamma or dbeta summed over the features (axis 1) instead of the samples (axis 0)",
        "axis_confused": "LayerNorm's axis confused with BatchNorm's, or BatchNorm's with LayerNorm's",
        "count_from_other_axis": "the backward's count (N for BatchNorm, D for LayerNorm) read from the other axis",
        "dgamma_missing_xhat": "dgamma = Σ dout, without x̂",
        "dx_missing_gamma": "dx without the factor γ",
    }
)
assert {v.name for v in _CATALOGUE} == set(MISTAKES), "every variant's name is explained in MISTAKES"
_LAYER_TITLES = {"batchnorm": "BatchNorm", "layernorm": "LayerNorm"}


def _explain(variant: _Variant, layer: _Layer) -> str:
    other = 1 - layer.axis
    other_layer = next(name for name, spec in LAYERS.items() if spec.axis == other)
    return variant.explanation.format(
        M=layer.count,
        axis=layer.axis,
        other=other,
        layer=_LAYER_TITLES[layer.name],
        other_layer=_LAYER_TITLES[other_layer],
    )


def _variant_outputs(variant: _Variant, layer: _Layer, draw: _Values) -> dict[str, torch.Tensor]:
    steps = {key: (1 - layer.axis if value == "other" else value) for key, value in variant.steps.items()}
    return _formula(draw.x, draw.gamma, draw.dout, EPS, layer.axis, **steps)


# ---------------------------------------------------------------------------------------------------------------
# the draws and the reference


@dataclass(frozen=True)
class _Values:
    x: torch.Tensor  # [N, D], float64
    gamma: torch.Tensor  # [D]
    beta: torch.Tensor  # [D]
    dout: torch.Tensor  # [N, D]

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.x.shape)  # type: ignore[return-value]


def _draw(generator: torch.Generator, n: int, d: int) -> _Values:
    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    x = _CENTRE + _SPREAD * normal(n, d)
    # γ between 0.5 and 2, away from 1, so that γ left out shows; β and dout of order 1
    gamma = 0.5 + 1.5 * torch.rand(d, generator=generator, dtype=torch.float64)
    return _Values(x, gamma, normal(d), normal(n, d))


def _reference(layer: _Layer, values: _Values) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """out and (dx, dγ, dβ) by torch autograd of torch's own layer, float64."""
    x, gamma, beta = (t.clone().requires_grad_() for t in (values.x, values.gamma, values.beta))
    with torch.enable_grad():
        if layer.name == "batchnorm":
            out = functional.batch_norm(x, None, None, gamma, beta, training=True, eps=EPS)
        else:
            out = functional.layer_norm(x, (x.shape[1],), gamma, beta, eps=EPS)
        grads = torch.autograd.grad(out, (x, gamma, beta), values.dout)
    return out.detach(), dict(zip(OUTPUTS, grads))


# ---------------------------------------------------------------------------------------------------------------
# the student's code


def _where(error: BaseException, function: Callable) -> str:
    """FILE:LINE of the innermost frame in the student's file (else the innermost frame)."""
    frames = traceback.extract_tb(error.__traceback__)
    own = getattr(getattr(function, "__code__", None), "co_filename", None)
    mine = [f for f in frames if f.filename == own] or frames
    if not mine:
        return "?"
    frame = mine[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _call(function: Callable, what: str, at: str, *arguments: object) -> object:
    """The student's function; whatever it raises (sys.exit too) as one line naming the call, the draw and where."""
    try:
        return function(*arguments)
    except MemoryError:  # the machine, not the student's mathematics: the CLI's exit 3
        raise
    except ChainruleError as error:  # the CLI's guard already said it in one line (UserCodeError), with file:line
        raise type(error)(f"at {at}: {error}") from error
    except (Exception, SystemExit) as error:
        if isinstance(error, SystemExit):
            said = f"SystemExit: the code called sys.exit({error.code!r})"
        else:
            said = " ".join(f"{type(error).__name__}: {error}".split())
        raise InputError(f"{what} raised at {at} ({_where(error, function)}): {said}") from None


def _unpack(result: object, count: int, what: str, names: str) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != count:
        got = (
            f"a {type(result).__name__} of {len(result)}"
            if isinstance(result, (tuple, list))
            else type(result).__name__
        )
        raise InputTypeError(f"{what} must return ({names}), as CS231n's does; got {got}")
    return tuple(result)


def _as_tensor(value: object, name: str, what: str) -> torch.Tensor:
    """The student's array as a CPU tensor, its dtype and shape kept (they are checked, not corrected)."""
    try:
        if isinstance(value, torch.Tensor):
            return _plain(value).detach().cpu()
        array = np.array(value)  # a copy: the student's array is not shared
        if array.dtype.kind not in "biuf":
            raise TypeError(f"dtype {array.dtype}")
        return torch.from_numpy(array)
    except MemoryError:
        raise
    except Exception as error:  # reading it may run the student's code too (an object's __array__)
        raise InputTypeError(f"{name} returned by {what} is not an array of numbers: {error}") from None


def _given(value: torch.Tensor, arrays: str) -> object:
    """A fresh copy for each call (the student may write into it), as the student's code expects it."""
    return value.numpy().copy() if arrays == "numpy" else value.clone()


@dataclass(frozen=True)
class _Draw:
    values: _Values | _Case
    out: torch.Tensor  # the student's forward output
    user: Mapping[str, torch.Tensor]
    reference_out: torch.Tensor
    reference: Mapping[str, torch.Tensor]


def _run(
    layer: _Spec, forward: Callable, backward: Callable, values: _Values | _Case, arrays: str, names: tuple
) -> _Draw:
    forward_name, backward_name = names
    at = layer.at(values)
    tensors, param = layer.arguments(values)
    arguments = [_given(t, arrays) for t in tensors] + ([] if param is None else [dict(param)])  # a copy each
    result = _call(forward, forward_name, at, *arguments)
    out, cache = _unpack(result, 2, forward_name, "out, cache")
    result = _call(backward, backward_name, at, _given(values.dout, arrays), cache)
    # max_pool_backward_naive returns dx alone, as CS231n's does
    gradients = (
        (result,)
        if len(layer.outputs) == 1
        else _unpack(result, len(layer.outputs), backward_name, ", ".join(layer.outputs))
    )
    user = {name: _as_tensor(value, name, backward_name) for name, value in zip(layer.outputs, gradients)}
    reference_out, reference = layer.reference_of(values)
    return _Draw(values, _as_tensor(out, "out", forward_name), user, reference_out, reference)


# ---------------------------------------------------------------------------------------------------------------
# the verdict


def _tolerance(value: torch.Tensor) -> float:
    """The student's dtype's tolerance; a dtype RTOL does not list is a problem, compared at its own precision."""
    return RTOL.get(value.dtype, _NETWORK_RTOL.get(value.dtype, 1e-4))


def _worst(name: str, pairs: list[tuple[torch.Tensor, torch.Tensor]], rtol: float) -> Comparison:
    return max((compare(name, theirs, ours, rtol) for theirs, ours in pairs), key=lambda c: c.max_rel_error)


def _problems(name: str, draws: list[_Draw]) -> list[tuple[str, str]]:
    """Shape, dtype, nan/inf of one output, before its numbers are compared (first draw that shows each)."""
    found = []
    for draw in draws:
        theirs, ours = draw.user[name], draw.reference[name]
        if theirs.shape != ours.shape:
            found.append(("shape", f"{name} has shape {_shape_text(theirs.shape)}, expected {_shape_text(ours.shape)}"))
            break
    dtype = draws[0].user[name].dtype
    if dtype not in RTOL:
        shown = str(dtype).removeprefix("torch.")
        found.append(("dtype", f"{name} is {shown}: a gradient in float64 (or float32) is expected"))
    for draw in draws:
        theirs, ours = draw.user[name], draw.reference[name]
        if theirs.shape == ours.shape and theirs.is_floating_point():
            bad = ~torch.isfinite(theirs) & torch.isfinite(ours)
            if bad.any():
                nan = int((bad & torch.isnan(theirs)).sum())
                said = f"{nan} nan and {int(bad.sum()) - nan} inf entries (of {theirs.numel()}) in {name}"
                found.append(("not_finite", said + " where the right gradient is finite"))
                break
    return found


class _Computed(NamedTuple):
    """One catalogued mistake (one way of making it), its outputs at each draw."""

    name: str
    explanation: str
    outputs: list[dict[str, torch.Tensor]]


def _diagnose(
    layer: _Spec, draws: list[_Draw], wrong: list[str], errors: Mapping[str, Comparison], skip: set[str]
) -> list[Mistake]:
    """For each wrong output, the catalogued mistakes that reproduce it at every draw (to the output's tolerance)
    and change no output the student got right; ``unknown`` with the largest difference when none does
    (``skip``: outputs whose problem is named already get no ``unknown``)."""
    tolerance = {name: _tolerance(draws[0].user[name]) for name in layer.outputs}
    float64 = RTOL[torch.float64]
    per_draw = [layer.variants(d.values) for d in draws]
    computed = [
        _Computed(first[0], first[1], [variants[k][2] for variants in per_draw]) for k, first in enumerate(per_draw[0])
    ]
    changed = [
        {n for n in layer.outputs if any(not _agrees(g[n], d.reference[n], float64) for g, d in zip(v.outputs, draws))}
        for v in computed
    ]

    def reproduces(k: int, name: str) -> bool:
        return all(_agrees(d.user[name], g[name], tolerance[name]) for d, g in zip(draws, computed[k].outputs))

    mistakes = []
    for name in wrong:
        found = [k for k in range(len(computed)) if name in changed[k] and reproduces(k, name)]
        refuted = [k for k in found if changed[k] - set(wrong)]
        kept = [k for k in found if k not in refuted]
        # a variant that gives every output it changes says how the student wrote it better than one that gives
        # this output only (dx and dgamma both from the forward's N − 1: that one's sentence on both)
        whole = [k for k in kept if all(reproduces(k, n) for n in changed[k])]
        named = {}  # one line per name: the first variant's explanation
        for k in whole or kept:
            named.setdefault(computed[k].name, computed[k].explanation)
        mistakes += [Mistake(name, mistake, explanation) for mistake, explanation in named.items()]
        if named or name in skip:
            continue
        c = errors[name]
        largest = f"largest difference {c.max_abs_error:.3e}, {c.max_rel_error:.3e} relative"
        if refuted:
            also = ", ".join(sorted(changed[refuted[0]] - set(wrong)))
            names = ", ".join(dict.fromkeys(computed[k].name for k in refuted))
            which = "which are right" if "," in also else "which is right"
            explanation = f"{names} would give this {name}, but it also changes {also}, {which} ({largest})"
        else:
            explanation = f"wrong, and none of the catalogued mistakes gives this {name} ({largest})"
        mistakes.append(Mistake(name, UNKNOWN, explanation))
    return mistakes


@dataclass(frozen=True)
class LayerReport:
    """The result of :func:`check_layer_backward`; ``ok`` when the backward's outputs (dx, dgamma, dbeta; dx, dw,
    db; dx) and the forward's out all match. ``str(report)`` explains; ``report.text(lang)`` says the table and the
    verdict in ``lang`` (the title and the mistakes' explanations are in English)."""

    layer: str
    function: str
    errors: Mapping[str, Comparison]  # each output: the student's against the reference (worst draw)
    forward: Comparison  # the student's forward out against torch's layer (worst draw)
    mistakes: tuple[Mistake, ...]  # empty when ok; PROBLEMS first, then the catalogue's names or "unknown"
    sizes: tuple[tuple[int, ...], ...]  # x's shape at each draw
    forward_function: str = ""  # the forward's name ("": the layer's, e.g. batchnorm_forward)
    draws: tuple[str, ...] = ()  # each draw as the title says it ((): x's shape, as BatchNorm's and LayerNorm's)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.errors.values()) and self.forward.ok and not self.mistakes

    def __str__(self) -> str:
        return self.text()

    def text(self, lang: str = "en") -> str:
        w = words(lang)
        spec = ALL_LAYERS[self.layer]
        forward = self.forward_function or spec.forward_name
        title = spec.title(self.function, self.draws or tuple(_shape_text(torch.Size(s)) for s in self.sizes))
        flagged = {m.parameter for m in self.mistakes}
        rows = [
            (name, c, w["entry_ok"] if c.ok and name not in flagged else w["wrong"]) for name, c in self.errors.items()
        ]
        rows.append((f"out ({forward})", self.forward, w["entry_ok"] if self.forward.ok else w["wrong"]))
        lines = [title, *_error_table({**w, "column_parameter": "output"} if lang == "en" else w, rows, 12)]
        if not self.forward.ok:
            lines.append(f"{forward}'s out differs from {spec.reference}: the backward's cache may be wrong too")
        if self.ok:
            names = list(self.errors)
            said = f"{', '.join(names[:-1])} and {names[-1]} match" if len(names) > 1 else f"{names[0]} matches"
            lines.append(w["verdict"].format(verdict=f"OK, {said} autograd's"))
            return "\n".join(lines)
        if self.mistakes:
            lines.append(w["diagnosis"])
            grouped: dict[tuple[str, str], list[str]] = {}
            for mistake in self.mistakes:
                grouped.setdefault((mistake.name, mistake.explanation), []).append(mistake.parameter)
            for (name, explanation), outputs in grouped.items():
                lines.append(
                    w["diagnosis_line"].format(name=name, parameters=", ".join(outputs), explanation=explanation)
                )
        lines.append(w["verdict"].format(verdict=w["wrong"]))
        return "\n".join(lines)


def _expected(layer: _Spec) -> str:
    return f"chainrule expects {layer.forward_signature} -> (out, cache) and {layer.backward_signature}"


def _forward_of(function: Callable, layer: _Spec) -> Callable:
    """The student's forward beside ``function``: in the module it was defined in."""
    found = getattr(function, "__globals__", {}).get(layer.forward_name)
    if not callable(found):
        raise InputError(
            f"{layer.forward_signature} builds the cache for "
            f"{getattr(function, '__name__', 'the backward')}(dout, cache), and none was found beside it; "
            f"define it in the same file or pass forward= ({_expected(layer)})"
        )
    return found


def _check_arity(function: Callable, name: str, arguments: tuple[str, ...], layer: _Spec) -> None:
    """A function that cannot take the layer's arguments, said before it runs, with the signatures expected."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or an object without a signature: let the call tell
        return
    try:
        signature.bind(*(None for _ in arguments))
    except TypeError:
        raise InputTypeError(
            f"{name}{signature} cannot be called as {name}({', '.join(arguments)}): {_expected(layer)}"
        ) from None


def check_layer_backward(
    function: Callable,
    layer: str,
    *,
    forward: Callable | None = None,
    seed: int = 0,
    arrays: str = "numpy",
) -> LayerReport:
    """Check a hand-written layer backward with CS231n's signature, and name its mistake when a catalogued one
    gives the same numbers. The layers (``ALL_LAYERS``):

    * ``"batchnorm"``, ``"layernorm"``: ``batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)``. Samples are
      ROWS, as in CS231n: x is [N, D], γ and β are [D]; BatchNorm normalizes each feature over the batch
      (training mode), LayerNorm each sample over its features. The cache comes from the student's own forward,
      ``batchnorm_forward(x, gamma, beta, bn_param)`` / ``layernorm_forward(x, gamma, beta, ln_param)``, given
      bn_param = {"mode": "train", "eps": 1e-5, "momentum": 0.9} or ln_param = {"eps": 1e-5}, run at two
      shapes (``SIZES``) where N ≠ D, compared with ``F.batch_norm(training=True)`` / ``F.layer_norm``.
    * ``"conv"``: ``conv_backward_naive(dout, cache) -> (dx, dw, db)``, its cache from
      ``conv_forward_naive(x, w, b, conv_param)``; x [N, C, H, W], w [F, C, HH, WW], b [F], conv_param
      {"stride", "pad"}; compared with ``F.conv2d``.
    * ``"maxpool"``: ``max_pool_backward_naive(dout, cache) -> dx``, its cache from
      ``max_pool_forward_naive(x, pool_param)``, pool_param {"pool_height", "pool_width", "stride"}; compared
      with ``F.max_pool2d``.
    * ``"residual"``: ``residual_backward(dout, cache) -> (dx, dw, db)``, its cache from
      ``residual_forward(x, w, b)`` computing out = x + relu(x @ w + b), x [N, D], w [D, D], b [D].

    ``forward``: the student's forward (None: the one defined beside ``function``). The functions get NumPy
    arrays (``arrays="numpy"``, CS231n's) or torch tensors (``"torch"``), float64, and may return either; they
    are run at two draws (numeric/_check_conv.py says why the convolution's, pooling's and residual's are what
    they are) and compared with torch autograd of torch's own layer in float64: relative tolerance 1e-7 for a
    float64 result, 1e-4 for a float32 one (``RTOL``); any other dtype is WRONG.

    The report's ``mistakes`` lists ``(output, name, explanation)``: names are keys of the layer's catalogue,
    ``ALL_LAYERS[layer].mistakes`` (``MISTAKES`` for BatchNorm and LayerNorm), ``"unknown"`` (with the largest
    difference), or one of ``PROBLEMS``.
    """
    if not callable(function):
        raise InputTypeError(f"check_layer_backward takes the backward function first; got {type(function).__name__}")
    if layer not in ALL_LAYERS:
        raise InputError(f"layer must be one of {', '.join(ALL_LAYERS)}; got {layer!r}")
    if arrays not in ARRAYS:
        raise InputError(f"arrays must be one of {', '.join(ARRAYS)}; got {arrays!r}")
    _check_seed(seed)
    spec = ALL_LAYERS[layer]
    if forward is None:
        forward = _forward_of(function, spec)
    elif not callable(forward):
        raise InputTypeError(f"forward must be the function {spec.forward_name}; got {type(forward).__name__}")
    names = (getattr(forward, "__name__", spec.forward_name), getattr(function, "__name__", spec.backward_name))
    _check_arity(forward, names[0], spec.forward_arguments, spec)
    _check_arity(function, names[1], ("dout", "cache"), spec)
    generator = torch.Generator().manual_seed(seed)
    cases = spec.cases(generator)
    draws = [_run(spec, forward, function, case, arrays, names) for case in cases]
    outputs = spec.outputs
    errors = {
        name: _worst(name, [(d.user[name], d.reference[name]) for d in draws], _tolerance(draws[0].user[name]))
        for name in outputs
    }
    forward_error = _worst("out", [(d.out, d.reference_out) for d in draws], _tolerance(draws[0].out))
    problems = {name: _problems(name, draws) for name in outputs}
    wrong = [name for name in outputs if not errors[name].ok]  # by their numbers (a wrong dtype's may be right)
    # a named problem says enough: float16's rounding at these draws (about 1e-2) would make "unknown" say nothing
    skip = {name for name, found in problems.items() if found}
    catalogue = _diagnose(spec, draws, wrong, errors, skip) if wrong else []
    explained = {m.parameter for m in catalogue if m.name != UNKNOWN}
    named = [
        Mistake(name, kind, said)
        for name, found in problems.items()
        for kind, said in found
        if not (kind == "shape" and name in explained)  # a catalogued mistake that gives this shape says more
    ]
    sizes = tuple(tuple(case.x.shape) for case in cases)
    shown = tuple(spec.shown(case) for case in cases)
    return LayerReport(layer, names[1], errors, forward_error, tuple(named + catalogue), sizes, names[0], shown)


def _sizes_are_safe() -> None:  # pragma: no cover - a guard on the module's own constant
    bad = {shape: _collisions(shape) for shape in SIZES if _collisions(shape)}
    if bad:
        raise AssertionError(f"SIZES collide: {bad}")


_sizes_are_safe()

# every layer check_layer_backward checks: BatchNorm and LayerNorm here, the convolution, max-pooling and the
# residual block in numeric/_check_conv.py (the same interface: _Spec)
ALL_LAYERS: Mapping[str, _Spec] = MappingProxyType({**LAYERS, **CONV_LAYERS})

__all__ = ["ALL_LAYERS", "LAYERS", "MISTAKES", "PROBLEMS", "RTOL", "SIZES", "LayerReport", "check_layer_backward"]
