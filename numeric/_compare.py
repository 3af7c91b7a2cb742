"""How far a gradient is from its reference: ``compare`` and its ``Comparison``, and the default tolerances.

(Moved here from ``_verify`` so that ``_model_verify``, which ``verify`` calls for a Model, can use them without
an import circle; ``_verify`` imports them back.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Largest tolerated error, relative to the largest reference entry of the same parameter.
DEFAULT_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}


@dataclass(frozen=True)
class Comparison:
    """How far one parameter's gradient is from the reference, over the entries where the reference is finite.

    ``nonfinite_reference`` counts the entries where the reference is NaN/inf but ours is finite: they are left
    out of the errors, and the comparison is not ``ok`` on its own (``verify`` asks an exact reference).
    Where ours is NaN/inf and the reference finite (``nonfinite_ours``), the error is inf.
    """

    name: str
    max_abs_error: float
    max_rel_error: float  # max |ours - reference| / max |reference|
    rtol: float
    nonfinite_reference: int = 0
    nonfinite_ours: int = 0
    entries: int = 0

    @property
    def ok_where_finite(self) -> bool:
        """Within the tolerance where the reference is finite."""
        return self.max_rel_error <= self.rtol

    @property
    def ok(self) -> bool:
        return self.ok_where_finite and self.nonfinite_reference == 0


def _largest_difference(ours: torch.Tensor, reference: torch.Tensor, chunk: int = 2**20) -> float:
    """max |ours - reference| over flat tensors, a chunk at a time: no temporary as large as a 4096x4096 weight."""
    largest = 0.0
    for start in range(0, ours.numel(), chunk):
        part = torch.linalg.vector_norm(ours[start : start + chunk] - reference[start : start + chunk], float("inf"))
        value = part.item()
        if value != value:  # NaN: no larger value can follow
            return value
        largest = max(largest, value)
    return largest


def compare(name: str, ours: torch.Tensor, reference: torch.Tensor, rtol: float) -> Comparison:
    ours64, ref64 = ours.detach().double().cpu(), reference.detach().double().cpu()
    if ours64.shape != ref64.shape:
        return Comparison(name, float("inf"), float("inf"), rtol)
    entries = ours64.numel()
    if not entries:
        return Comparison(name, 0.0, 0.0, rtol)
    # the common case in two passes over the data (a 4096x4096 gradient: 0.2 s, not the masks' 1.7 s): a
    # finite largest difference means no NaN/inf on either side (NaN propagates, inf - inf is NaN)
    max_abs = _largest_difference(ours64.reshape(-1), ref64.reshape(-1))
    if math.isfinite(max_abs):
        scale = torch.linalg.vector_norm(ref64, float("inf")).item()
        return Comparison(name, max_abs, max_abs / scale if scale > 0 else max_abs, rtol, 0, 0, entries)
    ours_finite, ref_finite = torch.isfinite(ours64), torch.isfinite(ref64)
    difference = (ours64 - ref64).abs()
    # NaN/inf in the same places on both sides count as agreement (both saturated the same way)
    same_nonfinite = (~ours_finite) & (~ref_finite) & (torch.isnan(ours64) == torch.isnan(ref64))
    reference_only = ours_finite & ~ref_finite  # the reference broke where ours did not: not an error of ours
    difference = torch.where(same_nonfinite | reference_only, torch.zeros_like(difference), difference)
    scale = ref64[ref_finite].abs().max().item() if ref_finite.any() else 0.0
    max_abs = difference.max().item()
    max_rel = max_abs / scale if scale > 0 else max_abs
    if max_abs != max_abs:  # NaN where the reference is finite
        max_abs = max_rel = float("inf")
    counts = int(reference_only.sum()), int((~ours_finite & ref_finite).sum())
    return Comparison(name, max_abs, max_rel, rtol, *counts, entries)
