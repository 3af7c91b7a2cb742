"""The benchmark's contestants compute the same gradients, and its hardware bound counts the right FLOPs.

No timings here: those live in benchmarks/bench.py. The implementations that compile (torch.compile,
JAX, inductor) are left out to keep the suite fast; bench.py checks every contestant's gradients anyway.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from numeric import autograd_gradients

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"
_SPEC = importlib.util.spec_from_file_location("bench", BENCH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["bench"] = bench  # dataclasses look their module up there
_SPEC.loader.exec_module(bench)

SMALL = list({case.label: replace(case, batch=5) for case in bench.CASES if max(case.network.sizes) < 1000}.values())
PLAIN = ["autograd", "torch.func.grad", "fused hand-written", "chainrule", "chainrule one pass"]
PLAIN += ["chainrule c"] if bench.c_compiler_available() else []  # cc builds it in a second or two a network


@pytest.mark.parametrize("case", SMALL, ids=lambda case: case.key)
@pytest.mark.parametrize("name", PLAIN)
def test_contestants_compute_autograds_gradients(case, name):
    data = bench.make_data(case)
    reference = autograd_gradients(case.network, data.x, data.y, data.params)
    result = bench.as_torch(bench.IMPLEMENTATIONS[name](case.network, data)())
    assert result.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(result[key], reference[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", SMALL, ids=lambda case: case.key)
def test_bound_counts_the_flops_of_the_products_autograd_runs(case):
    data = bench.make_data(case)
    step = bench.autograd_step(case.network, data)
    with FlopCounterMode(display=False) as counter:
        step()
    counted = sum(count for operation, count in counter.get_flop_counts()["Global"].items() if "mm" in str(operation))
    assert bench.matmul_flops(case.network, case.batch) == counted
