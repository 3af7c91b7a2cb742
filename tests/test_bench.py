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

NETWORKS = [case for case in bench.CASES if case.network is not None]
SMALL = list({case.label: replace(case, batch=5) for case in NETWORKS if max(case.network.sizes) < 1000}.values())
MODULES = [replace(case, batch=3) for case in bench.CASES if case.network is None]  # torch models (issue 18)
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


@pytest.mark.parametrize("case", SMALL, ids=lambda case: case.key)
def test_chunked_products_are_the_products_of_the_whole_batch(case):
    """The "products, chunked" floor runs the FLOPs of the whole batch's products, in chunks of 2 samples."""
    data = bench.make_data(case)
    for chunk in (None, 2):
        with FlopCounterMode(display=False) as counter:
            bench.products_probe(case, data, chunk)()
        assert counter.get_total_flops() == bench.matmul_flops(case.network, case.batch), chunk


@pytest.mark.parametrize("case", MODULES, ids=lambda case: case.key)
@pytest.mark.parametrize("name", PLAIN)
def test_module_cases_compute_autograds_gradients_or_say_unsupported(case, name):
    """The torch models: each contestant computes what .backward() leaves in .grad, or says it cannot run the
    model (the Network-only contestants: chainrule's chunked and C variants, the hand-fused recursion)."""
    data = bench.make_data(case)
    model, loss = case.module(), case.loss()
    loss(model(data.x_rows), data.y_rows).backward()
    reference = {key: value.grad for key, value in model.named_parameters()}
    try:
        step = bench.make_step(name, case, data)
    except bench.Unsupported:
        assert name not in ("autograd", "torch.func.grad", "chainrule", "chainrule inductor"), name
        return
    result = bench.as_torch(step())
    assert result.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(result[key], reference[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", MODULES, ids=lambda case: case.key)
def test_jax_translation_of_the_module_cases(case):
    """JAX's column on the torch models runs its own translation of each module: it must compute autograd's."""
    pytest.importorskip("jax")
    data = bench.make_data(case)
    reference = bench.as_torch(bench.make_step("autograd", case, data)())
    result = bench.as_torch(bench.make_step("JAX jit(grad)", case, data)())
    assert result.keys() == reference.keys()
    for key in reference:
        torch.testing.assert_close(result[key], reference[key], rtol=1e-4, atol=1e-6)
