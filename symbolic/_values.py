"""Reproducible example values for a network, without torch (``chainrule derive --seed`` and ``verify`` use them).

One NumPy generator, ``numpy.random.default_rng(seed)``, draws every tensor whole, in a fixed order (x, y,
then the parameters in network order): the page (``sample_values``, nested lists) and the numeric checks
(``numeric.random_values``, tensors made from the same arrays) show the same numbers for the same seed.
Drawing a tensor at once costs about 20 ns an entry; drawing Python floats one at a time cost 2 µs
(4096-4096-10 spent 100 s there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._errors import InputError, InputTypeError
from ._memory import require_memory
from ._network import Network

if TYPE_CHECKING:  # NumPy is imported where values are drawn: ``chainrule derive`` without --seed never pays for it
    import numpy as np

# Enough samples for any check; a typo such as --batch 1000000000000 is refused as bad input (the parameters,
# which no typo of batch makes large, are bounded by the memory: require_memory).
MAX_SAMPLE_BATCH = 10_000
# Values are rounded to two decimals so that a page can show them exactly.
DECIMALS = 2
# Targets a real-valued loss is trained towards, within what the output activation can reach (a sigmoid
# output never reaches -0.3): the open interval of each bounded or half-bounded activation, kept a little
# inside it. Activations missing here (identity, leaky_relu, user-defined ones) take N(0, 1).
REACHABLE_TARGETS: dict[str, tuple[float, float]] = {
    "sigmoid": (0.05, 0.95),
    "tanh": (-0.95, 0.95),
    "relu": (0.05, 2.0),
    "softplus": (0.05, 2.0),
    "elu": (-0.95, 2.0),
    "silu": (-0.25, 2.0),  # silu's least value is -0.278
    "gelu": (-0.15, 2.0),  # gelu's least value is -0.170
}
PROBABILITIES = (0.05, 0.95)  # bce-like losses: a probability per unit, never exactly 0 or 1


def check_seed_and_batch(seed: object, batch: object) -> None:
    import numpy as np

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputTypeError(f"seed must be an integer; got {seed!r}")
    if int(seed) < 0:
        raise InputError(f"seed must be a non-negative integer (numpy.random.default_rng); got {seed!r}")
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)):
        raise InputTypeError(f"batch must be a positive integer; got {batch!r}")
    if not 1 <= batch <= MAX_SAMPLE_BATCH:
        raise InputError(f"batch must be a positive integer of at most {MAX_SAMPLE_BATCH:,} samples; got {batch!r}")


def _one_hot(rng: np.random.Generator, n_out: int, batch: int) -> np.ndarray:
    """A class per sample (a column), as one-hot columns: a distribution that softmax approaches."""
    import numpy as np

    targets = np.zeros((n_out, batch))
    targets[rng.integers(n_out, size=batch), np.arange(batch)] = 1.0
    return targets


def _target_drawer(network: Network) -> Callable[[np.random.Generator, int, int], np.ndarray]:
    """How y is drawn: what the loss needs (probabilities, a distribution), else what the last layer reaches."""
    wanted = network.loss_rule.targets
    output = network.activations[-1]
    if wanted == "distribution" or (wanted == "real" and output == "softmax"):
        return _one_hot
    low_high = PROBABILITIES if wanted == "probability" else REACHABLE_TARGETS.get(output)
    if low_high is None:
        return lambda rng, rows, cols: rng.standard_normal((rows, cols))
    low, high = low_high
    return lambda rng, rows, cols: rng.uniform(low, high, (rows, cols))


def _rounded(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to DECIMALS in place: rint(v·100)/100 is the double nearest to k/100, printed short."""
    import numpy as np

    scale = 10.0**DECIMALS
    values *= scale
    np.rint(values, out=values)
    values /= scale
    return values


def sampled_bytes(network: Network, batch: int, inputs_only: bool = False) -> int:
    """The float64 bytes of a draw: x, y and (unless ``inputs_only``) every parameter."""
    entries = (network.sizes[0] + network.sizes[-1]) * batch
    return 8 * (entries if inputs_only else entries + network.parameter_count)


def sample_arrays(
    network: Network, seed: int = 0, batch: int = 1, *, inputs_only: bool = False
) -> dict[str, np.ndarray]:
    """x [n_in, B], y [n_out, B] and every parameter as float64 NumPy arrays, rounded to two decimals.

    x is N(0, 1); weights N(0, 1/fan-in), biases N(0, 0.01); y suits the loss (``Loss.targets``: in (0, 1)
    for bce-like losses, one-hot columns for cross-entropy) or, for a real-valued loss, what the output
    activation can reach (``REACHABLE_TARGETS``; softmax: one-hot). ``inputs_only`` draws x and y alone,
    the same as a full draw's (they are drawn first). A draw that cannot fit in memory is refused
    (ResourceError) before any of it is made.
    """
    import numpy as np

    check_seed_and_batch(seed, batch)
    require_memory(sampled_bytes(network, batch, inputs_only), f"drawing the values of {network.describe()}")
    rng = np.random.default_rng(int(seed))
    n_in, n_out = network.sizes[0], network.sizes[-1]
    values = {"x": _rounded(rng.standard_normal((n_in, batch)))}
    values["y"] = _rounded(_target_drawer(network)(rng, n_out, batch))
    if inputs_only:
        return values
    for name, (rows, cols) in network.parameter_shapes.items():
        scale = 1 / cols**0.5 if name.startswith("W") else 0.1
        values[name] = _rounded(rng.normal(0.0, scale, (rows, cols)))
    return values


def sample_values(
    network: Network, seed: int = 0, batch: int = 1, *, inputs_only: bool = False
) -> dict[str, list[list[float]]]:
    """``sample_arrays`` as nested lists (rows), for a page: x, y and every parameter, two decimals each.

    ``inputs_only`` draws x and y alone (a page too large to show numbers needs no more).
    """
    check_seed_and_batch(seed, batch)
    arrays = sample_arrays(network, seed, batch, inputs_only=inputs_only)
    return {name: array.tolist() for name, array in arrays.items()}
