"""The tutorial's network: closed form, compiled function and autograd, against every reference we have."""

from __future__ import annotations

import pytest
import sympy
import torch

from numeric import as_tensors, autograd_gradients, compile_gradients
from symbolic import TUTORIAL, TUTORIAL_PRINTED, TUTORIAL_VALUES, derive, sigmoid


@pytest.fixture(scope="module")
def derivation():
    return derive(TUTORIAL)


def _substitution(derivation, values):
    env = {}
    for name, matrix in derivation.symbols.items():
        for i in range(matrix.rows):
            for j in range(matrix.cols):
                env[matrix[i, j]] = sympy.Float(values[name][i][j], 30)
    return env


def _params(tensors):
    return {name: tensors[name] for name in TUTORIAL.parameter_shapes}


def test_public_symbols_have_the_parameter_shapes(derivation):
    assert derivation.symbols["x"].shape == (1, 1)
    assert derivation.symbols["y"].shape == (2, 1)
    assert derivation.symbols["W1"].shape == (2, 1)
    assert derivation.symbols["W2"].shape == (2, 2)
    for name, shape in TUTORIAL.parameter_shapes.items():
        assert derivation.gradients[name].shape == shape


def test_closed_form_reproduces_the_tutorials_printed_numbers(derivation):
    env = _substitution(derivation, TUTORIAL_VALUES)
    assert float(sympy.N(derivation.loss.xreplace(env))) == pytest.approx(TUTORIAL_PRINTED["loss"], rel=1e-4)
    for name in ("W1", "W2"):
        numbers = derivation.gradients[name].xreplace(env).applyfunc(sympy.N)
        for (i, j), printed in ((ij, TUTORIAL_PRINTED[name][ij[0]][ij[1]]) for ij in _indices(numbers)):
            # the printed values are float32 results rounded to 5 digits
            assert float(numbers[i, j]) == pytest.approx(printed, rel=1e-4), (name, i, j)


def test_forward_values_match_the_tutorial(derivation):
    forward = derivation.intermediates(TUTORIAL_VALUES)
    for ours, printed in ((forward["a1"], TUTORIAL_PRINTED["y1"]), (forward["a2"], TUTORIAL_PRINTED["y2"])):
        assert [round(row[0], 4) for row in ours] == [row[0] for row in printed]


def test_closed_form_equals_float64_autograd(derivation):
    env = _substitution(derivation, TUTORIAL_VALUES)
    tensors = as_tensors(TUTORIAL_VALUES, torch.float64)
    reference = autograd_gradients(TUTORIAL, tensors["x"], tensors["y"], _params(tensors))
    for name in ("W1", "W2"):
        exact = derivation.gradients[name].xreplace(env).applyfunc(sympy.N)
        for i, j in _indices(exact):
            expected = reference[name][i, j].item()
            assert abs(float(exact[i, j]) - expected) <= 1e-12 * abs(expected), (name, i, j)


def test_compiled_float32_reproduces_the_printed_numbers(derivation):
    tensors = as_tensors(TUTORIAL_VALUES, torch.float32)
    ours = compile_gradients(derivation)(tensors["x"], tensors["y"], _params(tensors))
    for name in ("W1", "W2"):
        torch.testing.assert_close(
            ours[name], torch.tensor(TUTORIAL_PRINTED[name], dtype=torch.float32), rtol=1e-4, atol=0
        )


def test_closed_form_equals_sympy_diff_of_the_expanded_loss(derivation):
    """An independent symbolic reference: the loss written out by hand, differentiated by SymPy."""
    s = derivation.symbols
    x, y, w1, w2 = s["x"], s["y"], s["W1"], s["W2"]
    y1 = (w1 * x).applyfunc(sigmoid)
    y2 = (w2 * y1).applyfunc(sigmoid)
    expanded = sum((y2[k] - y[k]) ** 2 for k in range(2)) / 2
    assert sympy.expand(derivation.loss - expanded) == 0
    for name, matrix in (("W1", w1), ("W2", w2)):
        for i, j in _indices(matrix):
            by_sympy = sympy.diff(expanded, matrix[i, j])
            assert sympy.expand(derivation.gradients[name][i, j] - by_sympy) == 0, (name, i, j)


@pytest.mark.parametrize("form", ["matrix", "elementwise"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_equals_autograd_on_random_batches(derivation, form, dtype):
    compiled = compile_gradients(derivation, form=form)
    generator = torch.Generator().manual_seed(7)
    for batch in (1, 3, 64):
        x = torch.randn(1, batch, generator=generator, dtype=torch.float64).to(dtype)
        y = torch.rand(2, batch, generator=generator, dtype=torch.float64).to(dtype)
        params = {
            "W1": torch.randn(2, 1, generator=generator, dtype=torch.float64).to(dtype),
            "W2": torch.randn(2, 2, generator=generator, dtype=torch.float64).to(dtype),
        }
        ours = compiled(x, y, params)
        reference = autograd_gradients(TUTORIAL, x, y, params)
        tolerance = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-14)}
        for name in params:
            assert ours[name].dtype == dtype and ours[name].shape == params[name].shape
            torch.testing.assert_close(ours[name], reference[name], **tolerance[dtype])


def test_output_follows_the_inputs_dtype_and_device(derivation):
    compiled = compile_gradients(derivation)
    devices = ["cpu", "meta"]  # meta: a second device every torch has; shapes and dtypes, no data
    for device in devices:
        for dtype in (torch.float32, torch.float64):
            tensors = as_tensors(TUTORIAL_VALUES, dtype, device)
            ours = compiled(tensors["x"], tensors["y"], _params(tensors))
            for name in ("W1", "W2"):
                assert ours[name].dtype == dtype
                assert ours[name].device.type == device
                assert ours[name].shape == tensors[name].shape


def test_value_and_grad_returns_the_batch_loss(derivation):
    tensors = as_tensors(TUTORIAL_VALUES, torch.float64)
    loss, gradients = compile_gradients(derivation).value_and_grad(tensors["x"], tensors["y"], _params(tensors))
    exact = derivation.evaluate(TUTORIAL_VALUES)
    assert loss.shape == () and loss.item() == pytest.approx(exact["loss"], rel=1e-14)
    assert set(gradients) == {"W1", "W2"}


def _indices(matrix):
    return [(i, j) for i in range(matrix.rows) for j in range(matrix.cols)]
