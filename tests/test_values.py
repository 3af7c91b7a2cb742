"""Example values: one NumPy generator, each tensor drawn whole, the same numbers on a page and in verify."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import symbolic._memory
import symbolic._values
from numeric import random_values
from symbolic import Network, ResourceError, sample_arrays, sample_values

NETWORKS = [
    Network([3, 4, 2], ["tanh", "sigmoid"], "bce", bias=True),
    Network([5, 3], "softmax", "cross_entropy"),
    Network([2, 6, 6, 3], ["relu", "elu", "identity"], "mse", bias=True, reduction="mean"),
    Network([4, 2], "softplus", "half_sse"),
]


class _Counting:
    """A numpy Generator that counts the draws made through it."""

    def __init__(self, generator: np.random.Generator, calls: list[str]):
        self._generator, self._calls = generator, calls

    def __getattr__(self, name):
        method = getattr(self._generator, name)

        def counted(*args, **kwargs):
            self._calls.append(name)
            return method(*args, **kwargs)

        return counted


def test_each_tensor_is_one_draw(monkeypatch):
    """Vectorized: one generator call per tensor (x, y, each parameter), whatever the sizes; the old loop made
    one call per entry."""
    calls: list[str] = []
    real = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda seed: _Counting(real(seed), calls))
    network = Network([300, 200, 10], ["tanh", "sigmoid"], "half_sse", bias=True)
    values = sample_arrays(network, seed=3, batch=50)
    assert len(calls) == len(values) == 2 + len(network.parameter_shapes)


def test_a_million_entries_are_drawn_in_well_under_a_second():
    network = Network([1000, 1000], "tanh", "half_sse")
    start = time.perf_counter()
    values = sample_arrays(network, seed=0, batch=4)
    assert time.perf_counter() - start < 1.0  # one number at a time took about 2 s
    assert values["W1"].shape == (1000, 1000)


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
@pytest.mark.parametrize("seed", [0, 7])
def test_the_page_and_verify_get_the_same_numbers(network, seed):
    page = sample_values(network, seed=seed, batch=3)
    for dtype in (torch.float64, torch.float32):
        tensors = random_values(network, 3, seed, dtype=dtype)
        assert list(tensors) == list(page)
        for name, rows in page.items():
            assert torch.equal(tensors[name], torch.tensor(rows, dtype=dtype)), (name, dtype)


def test_the_documented_generator_draws_x_first():
    """x is N(0, 1) from numpy.random.default_rng(seed), rounded to two decimals: numpy's own rounding."""
    network = Network([3, 2], "sigmoid", "bce")
    expected = np.round(np.random.default_rng(5).standard_normal((3, 4)), 2)
    assert np.array_equal(sample_arrays(network, seed=5, batch=4)["x"], expected)
    # two decimals exactly: the page prints what was drawn
    assert all(len(repr(v).split(".")[1]) <= 2 for row in sample_values(network, 5, 4)["x"] for v in row)
    assert not np.array_equal(sample_arrays(network, seed=6, batch=4)["x"], expected)


def _image(activation: str) -> tuple[float, float]:
    """The range of an element-wise torch activation, read off a fine grid (its inf and sup)."""
    module = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": torch.relu,
        "softplus": torch.nn.functional.softplus,
        "elu": torch.nn.functional.elu,
        "silu": torch.nn.functional.silu,
        "gelu": torch.nn.functional.gelu,
    }[activation]
    values = module(torch.linspace(-60, 60, 400_001, dtype=torch.float64))
    return values.min().item(), values.max().item()


@pytest.mark.parametrize("activation", sorted(symbolic._values.REACHABLE_TARGETS))
@pytest.mark.parametrize("loss", ["half_sse", "mse"])
def test_real_targets_lie_where_the_output_activation_reaches(activation, loss):
    low, high = _image(activation)
    y = sample_arrays(Network([2, 3], activation, loss), seed=1, batch=200)["y"]
    assert low < y.min() and y.max() < high, (low, y.min(), y.max(), high)


def test_distribution_and_probability_targets():
    softmax_sse = sample_arrays(Network([2, 4], "softmax", "sse"), seed=2, batch=30)["y"]
    cross_entropy = sample_arrays(Network([2, 4], "softmax", "cross_entropy"), seed=2, batch=30)["y"]
    for y in (softmax_sse, cross_entropy):  # one class per sample: a distribution per column
        assert np.array_equal(y.sum(axis=0), np.ones(30)) and set(np.unique(y)) == {0.0, 1.0}
    for name in ("bce", "mean_bce", "bce_with_logits"):
        activation = "identity" if "logits" in name else "sigmoid"
        y = sample_arrays(Network([2, 3], activation, name), seed=2, batch=30)["y"]
        assert 0 < y.min() and y.max() < 1


def test_a_draw_that_cannot_fit_is_refused_before_drawing(monkeypatch):
    monkeypatch.setattr(symbolic._memory, "available_memory", lambda: 2**20)  # 1 MiB left
    drawn = []
    monkeypatch.setattr(np.random, "default_rng", lambda seed: drawn.append(seed))
    network = Network([300, 300], "tanh", "half_sse")  # 90,000 weights: 0.7 MB, plus x and y
    with pytest.raises(ResourceError) as caught:
        random_values(network, 100, 0)
    message = str(caught.value)
    assert "\n" not in message and "1.00 GiB" not in message and "GiB" in message
    needed = 8 * (network.parameter_count + (300 + 300) * 100)
    assert caught.value.needed == needed and caught.value.available == 2**20
    assert drawn == []
    assert isinstance(caught.value, MemoryError)  # plain handlers of MemoryError catch it too


def test_available_memory_is_at_most_the_machine():
    import os

    available = symbolic._memory.available_memory()
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert available is None or 0 <= available <= total
