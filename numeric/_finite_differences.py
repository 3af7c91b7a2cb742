"""Sampled finite differences of a whole network in one batched forward pass (``verify``'s "sample" mode).

Each probe is a direction v in one parameter (or in x): a random unit direction per parameter, and a few
single entries. Its central difference (L(θ + εv) − L(θ − εv)) / 2ε must equal ⟨g, v⟩ for the gradient g
under test. Run one probe at a time, each would be two forwards of the whole network: O(depth) probes ×
O(depth) layers (width 100, 200 layers: over 79 s). Here every perturbed copy rides along one forward pass,
joining it at the layer of its parameter (before that it equals the unperturbed pass): z ± ε·(V a) for a
weight, z ± ε·v for a bias. The pass costs O(depth) torch calls, the copies' matrix products batched.

The forward is the autograd reference's (``to_torch``'s activation modules, ``reference_loss``), run without
autograd: an evaluation of the loss that shares no code with the compiled gradients under test; sigmoid + bce
and softmax + cross_entropy read the logits instead (``_loss_of_logits``), so that the finite differences
can still judge a gradient where autograd's loss is NaN/inf.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812 - the usual spelling

from symbolic import LOSSES, Network

from ._torch_models import _activation_module, reference_loss

STEP = 1e-6  # ε, gradcheck's default eps, along unit directions
RTOL = 1e-5  # gradcheck's default rtol


@dataclass(frozen=True)
class Probe:
    """One directional derivative: the tensor ``name`` moved along a unit direction (``entry`` None: a random
    one) or along one entry (``entry``: its flat index)."""

    name: str
    entry: int | None = None


@dataclass(frozen=True)
class ProbeResult:
    probe: Probe
    numerical: float  # the central difference
    analytical: float  # ⟨g, v⟩ of the gradient under test
    tolerance: float

    @property
    def ok(self) -> bool:
        # NaN on either side fails (a comparison with NaN is False)
        return abs(self.numerical - self.analytical) <= self.tolerance


def plan_probes(shapes: Mapping[str, tuple[int, ...]], entries: int, generator: torch.Generator) -> tuple[Probe, ...]:
    """A random direction per tensor of ``shapes``, then ``entries`` single entries: each of a tensor drawn
    uniformly (so that a bias gets its chance beside a 16M-entry weight), at a uniform entry of it."""
    names = list(shapes)
    probes = [Probe(name) for name in names]
    for _ in range(entries):
        name = names[int(torch.randint(len(names), (1,), generator=generator))]
        probes.append(Probe(name, int(torch.randint(math.prod(shapes[name]), (1,), generator=generator))))
    return tuple(probes)


CHUNK_ENTRIES = 2**18  # entries of a weight's random direction drawn at a time: 2 MB, not 134 MB for 4096x4096


def _direction(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random unit direction shaped like ``like``: drawn in float32 (three times faster than float64; the
    same numbers serve both sides of the check, so their precision does not matter), then in ``like``'s dtype."""
    direction = torch.randn(like.shape, generator=generator, dtype=torch.float32).to(like.dtype).to(like.device)
    return direction.div_(torch.linalg.vector_norm(direction))


def _weight_direction(
    gradient: torch.Tensor, source: torch.Tensor, generator: torch.Generator
) -> tuple[float, torch.Tensor]:
    """⟨g, V⟩ and a Vᵀ for a random unit direction V shaped like the weight ``gradient`` [rows, cols], V drawn
    a block of rows at a time (the blocks follow from the generator's seed) and normalised at the end, so that
    no weight-sized direction is ever held; ``source`` is the layer's input a [B, cols]."""
    rows, cols = gradient.shape
    block = max(1, CHUNK_ENTRIES // max(cols, 1))
    dot, squares = 0.0, 0.0
    moved = source.new_empty((source.shape[0], rows))
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        part = torch.randn((stop - start, cols), generator=generator, dtype=torch.float32).to(source.dtype)
        part = part.to(source.device)
        dot += float(torch.dot(gradient[start:stop].reshape(-1), part.reshape(-1)))
        squares += float(torch.dot(part.reshape(-1), part.reshape(-1)))
        moved[:, start:stop] = source @ part.T
    norm = squares**0.5
    return dot / norm, moved.div_(norm)


def _loss_of_logits(network: Network) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The loss computed from the last layer's z, where torch has a form that cannot overflow: sigmoid with
    bce (binary_cross_entropy_with_logits) and softmax with cross_entropy (log_softmax). The reference's
    σ then log turns log(0) into NaN when |z| ≈ 40 (softmax: a gap of about 750), where the loss is finite;
    finite differences of these forms still judge a gradient there. None for every other pairing."""
    output, loss = network.activations[-1], network.loss_rule
    if LOSSES.get(loss.name) != loss:
        return None
    if output == "sigmoid" and loss.name in ("bce", "mean_bce"):
        units = network.sizes[-1] if loss.name == "mean_bce" else 1

        def per_sample_sum(z, target):
            return F.binary_cross_entropy_with_logits(z, target, reduction="sum") / units

    elif output == "softmax" and loss.name == "cross_entropy":

        def per_sample_sum(z, target):
            return -(target * F.log_softmax(z, dim=-1)).sum()

    else:
        return None
    if network.reduction == "mean":
        return lambda z, target: per_sample_sum(z, target) / z.shape[0]
    return per_sample_sum


def sampled_finite_differences(
    network: Network,
    x: torch.Tensor,
    y: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    gradients: Mapping[str, torch.Tensor],
    probes: Iterable[Probe],
    generator: torch.Generator,
    atol: Callable[[float], float],
    rtol: float = RTOL,
    step: float = STEP,
    layers=None,
) -> tuple[ProbeResult, ...]:
    """Each probe's central difference of the reference loss against ⟨gradients[name], v⟩, in float64.

    x [n_in, B], y [n_out, B] and params in chainrule's layout; ``gradients`` holds the gradient under test
    of every probed name ("x": ∂L/∂x). ``atol(loss)``: the absolute tolerance at the unperturbed reference
    loss (rounding in a central difference grows with it). ``layers`` wraps the range of layers (a progress bar).
    """
    with torch.no_grad():
        return _run(network, x, y, params, gradients, probes, generator, atol, rtol, step, layers)


def _run(network, x, y, params, gradients, probes, generator, atol, rtol, step, layers) -> tuple[ProbeResult, ...]:
    x, y = x.detach().double(), y.detach().double()
    params = {name: value.detach().double() for name, value in params.items()}
    by_name: dict[str, list[Probe]] = {}
    for probe in probes:
        by_name.setdefault(probe.name, []).append(probe)
    order: list[Probe] = []  # probes in the order of their copies (a + and a − copy each)
    analytical: list[float] = []

    def shift(probe: Probe, value: torch.Tensor, source: torch.Tensor | None) -> torch.Tensor:
        """ε times the change of a layer's z (rows: samples) when ``value`` moves along the probe's unit
        direction v: ε·(a Vᵀ) for a weight fed ``source`` = a, ε·vᵀ for x and a bias (``source`` None); and
        ⟨g, v⟩ of the gradient under test recorded beside it."""
        order.append(probe)
        gradient = gradients[probe.name].detach().double().reshape(-1)
        if probe.entry is not None:  # a single entry: no parameter-sized one-hot matrix is made
            analytical.append(float(gradient[probe.entry]))
            row, column = divmod(probe.entry, value.shape[1])
            if source is None:
                moved = value.new_zeros(value.shape)
                moved[row, column] = step
                return moved.T
            moved = source.new_zeros((source.shape[0], value.shape[0]))
            moved[:, row] = step * source[:, column]
            return moved
        if source is not None:  # a weight: V a made block by block, V never whole
            along, moved = _weight_direction(gradients[probe.name].detach().double(), source, generator)
            analytical.append(along)
            return moved.mul_(step)
        direction = _direction(value, generator)
        # a dot product of the flat views: no product tensor as large as the parameter
        analytical.append(float(torch.dot(gradient, direction.reshape(-1))))
        return step * direction.T

    stable = _loss_of_logits(network)
    base = x.T  # samples as rows, as the reference runs them
    batch = base.shape[0]
    pending = []  # the copies joining at this layer, each [B, width]
    for probe in by_name.get("x", []):
        moved = shift(probe, x, None)
        pending += [base + moved, base - moved]
    copies = torch.stack(pending) if pending else base.new_zeros((0, *base.shape))
    steps = range(1, network.depth + 1)
    for layer in layers(steps) if layers is not None else steps:
        weight, bias = params[f"W{layer}"], params.get(f"b{layer}")
        z = base @ weight.T
        shifted = copies @ weight.T
        if bias is not None:
            z, shifted = z + bias.T, shifted + bias.T
        pending = []
        for probe in by_name.get(f"W{layer}", []):
            moved = shift(probe, weight, base)  # (W ± εV) a = W a ± ε V a
            pending += [z + moved, z - moved]
        for probe in by_name.get(f"b{layer}", []):
            moved = shift(probe, bias, None)
            pending += [z + moved, z - moved]
        if pending:
            shifted = torch.cat([shifted, torch.stack(pending)])
        if layer == network.depth and stable is not None:  # the loss reads the logits z
            base, copies = z, shifted
            break
        activation = _activation_module(network.activation_rules[layer - 1])
        width = z.shape[1]
        base = activation(z)
        copies = activation(shifted.reshape(-1, width)).reshape(-1, batch, width)
    targets = y.T
    loss = stable if stable is not None else lambda out, target: reference_loss(network, out, target)
    losses = [float(loss(copy, targets)) for copy in copies]
    absolute = atol(float(loss(base, targets)))
    results = []
    for k, probe in enumerate(order):
        numerical = (losses[2 * k] - losses[2 * k + 1]) / (2 * step)
        tolerance = absolute + rtol * abs(numerical)
        results.append(ProbeResult(probe, numerical, analytical[k], tolerance))
    return tuple(results)
