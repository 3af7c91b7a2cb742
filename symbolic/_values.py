"""Reproducible example values for a network, without torch (``chainrule derive --seed`` uses them)."""

from __future__ import annotations

import random

from ._errors import InputError, InputTypeError
from ._network import Network

# Example values are drawn in Python, one number at a time: enough for any check, and refused beyond
# (a typo such as --batch 1000000000000 would otherwise fill the memory before failing).
MAX_SAMPLE_BATCH = 10_000


def sample_values(
    network: Network, seed: int = 0, batch: int = 1, *, inputs_only: bool = False
) -> dict[str, list[list[float]]]:
    """x, y and every parameter as nested lists (rows), rounded to two decimals so a page can show them.

    Weights are scaled by 1/sqrt(fan-in); targets suit the loss (``Loss.targets``: in (0, 1) for bce, one-hot
    per sample for cross_entropy). ``inputs_only`` draws x and y alone, the same as a full draw's (they are
    drawn first): a page too large to show numbers needs no more, and 25M weights take half a minute.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputTypeError(f"seed must be an integer; got {seed!r}")
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise InputTypeError(f"batch must be a positive integer; got {batch!r}")
    if not 1 <= batch <= MAX_SAMPLE_BATCH:
        raise InputError(f"batch must be a positive integer of at most {MAX_SAMPLE_BATCH:,} samples; got {batch!r}")
    rng = random.Random(seed)

    def matrix(rows: int, cols: int, draw) -> list[list[float]]:
        return [[round(draw(), 2) for _ in range(cols)] for _ in range(rows)]

    n_in, n_out = network.sizes[0], network.sizes[-1]
    values = {"x": matrix(n_in, batch, lambda: rng.gauss(0, 1))}
    targets = network.loss_rule.targets
    if targets == "probability":
        values["y"] = matrix(n_out, batch, lambda: rng.uniform(0.05, 0.95))
    elif targets == "distribution":
        # one-hot targets: a class per sample
        classes = [rng.randrange(n_out) for _ in range(batch)]
        values["y"] = [[1.0 if classes[b] == k else 0.0 for b in range(batch)] for k in range(n_out)]
    else:
        values["y"] = matrix(n_out, batch, lambda: rng.gauss(0, 1))
    if inputs_only:
        return values
    for name, (rows, cols) in network.parameter_shapes.items():
        scale = 1 / cols**0.5 if name.startswith("W") else 0.1
        values[name] = matrix(rows, cols, lambda scale=scale: rng.gauss(0, scale))
    return values
