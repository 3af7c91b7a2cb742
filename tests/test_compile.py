"""The generated torch code: readable, fused where torch has kernels, and the same under torch.compile."""

from __future__ import annotations

import pytest
import sympy
import torch

from numeric import autograd_gradients, compile_gradients, random_values
from numeric._printer import TORCH_BACKWARD, MatrixTorchPrinter
from symbolic import ACTIVATIONS, Network, derive, matmul

ELEMENTWISE = [name for name, activation in ACTIVATIONS.items() if activation.elementwise]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_fused_backward_equals_the_tables_product(name):
    activation = ACTIVATIONS[name]
    g, z, a = sympy.symbols("g z a", real=True)
    step = activation.matrix_backward(z, a, g)  # a fused local step, or a plain product
    printer = MatrixTorchPrinter()
    fused = sympy.lambdify([g, z, a], step, modules=[{"torch": torch}], printer=printer)
    product = sympy.lambdify([g, z, a], g * activation.derivative(z, a), modules=[{"torch": torch}], printer=printer)
    if name in TORCH_BACKWARD:
        assert "torch.ops.aten" in printer.doprint(step)
    generator = torch.Generator().manual_seed(1)
    z_values = 3 * torch.randn(4, 6, generator=generator, dtype=torch.float64)
    g_values = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    forward = sympy.lambdify([z], activation.function(z), modules=[{"torch": torch}], printer=printer)
    a_values = forward(z_values) if name != "identity" else z_values
    torch.testing.assert_close(fused(g_values, z_values, a_values), product(g_values, z_values, a_values))


def test_bias_and_product_print_as_one_addmm():
    b, w, x = sympy.symbols("b W x", real=True)
    assert MatrixTorchPrinter().doprint(b + matmul(w, x)) == "torch.addmm(b, W, x)"


def test_source_is_straight_line_code_a_person_can_read():
    network = Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True)
    source = compile_gradients(derive(network)).source
    lines = source.strip().splitlines()
    assert lines[0].startswith("def ") and lines[-1].strip().startswith("return")
    assert not any(word in source for word in ("Lambda", "for ", "while ", "if ", "torch.transpose"))
    # one line per layer quantity: z, a, delta, grad_W, grad_b per layer
    assert len(lines) == 2 + 5 * network.depth


def test_matrix_and_elementwise_forms_agree():
    network = Network([2, 3, 3, 2], ["relu", "tanh", "sigmoid"], "bce", bias=True)
    derivation = derive(network)
    values = random_values(network, 7, 3)
    params = {name: values[name] for name in network.parameter_shapes}
    matrix = compile_gradients(derivation, "matrix")(values["x"], values["y"], params)
    elementwise = compile_gradients(derivation, "elementwise")(values["x"], values["y"], params)
    for name in params:
        torch.testing.assert_close(matrix[name], elementwise[name], rtol=1e-12, atol=1e-14)


def test_works_under_torch_compile():
    network = Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True)
    compiled = compile_gradients(derive(network))
    values = random_values(network, 5, 0, dtype=torch.float32)
    params = {name: values[name] for name in network.parameter_shapes}
    plain = compiled(values["x"], values["y"], params)
    optimised = torch.compile(compiled, fullgraph=True)(values["x"], values["y"], params)
    reference = autograd_gradients(network, values["x"], values["y"], params)
    for name in params:
        torch.testing.assert_close(optimised[name], plain[name], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(plain[name], reference[name], rtol=1e-5, atol=1e-6)
