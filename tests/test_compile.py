"""The generated torch code: readable, fused where torch has kernels, and the same under torch.compile."""

from __future__ import annotations

import re

import pytest
import sympy
import torch

from numeric import autograd_gradients, autograd_loss_and_gradients, compile_gradients, random_values
from numeric._printer import TORCH_BACKWARD, MatrixTorchPrinter, alias_namespace
from symbolic import ACTIVATIONS, InputError, InputTypeError, Network, derive, matmul

ELEMENTWISE = [name for name, activation in ACTIVATIONS.items() if activation.elementwise]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_fused_backward_equals_the_tables_product(name):
    activation = ACTIVATIONS[name]
    g, z, a = sympy.symbols("g z a", real=True)
    step = activation.matrix_backward(z, a, g)  # a fused local step, or a plain product
    printer = MatrixTorchPrinter()
    modules = [{"torch": torch, **alias_namespace()}]
    fused = sympy.lambdify([g, z, a], step, modules=modules, printer=printer)
    product = sympy.lambdify(
        [g, z, a], g * activation.derivative(z, a), modules=[{"torch": torch, **alias_namespace()}], printer=printer
    )
    if name in TORCH_BACKWARD:
        assert printer.doprint(step).startswith(TORCH_BACKWARD[name][0])  # the fused kernel's short name
    generator = torch.Generator().manual_seed(1)
    z_values = 3 * torch.randn(4, 6, generator=generator, dtype=torch.float64)
    g_values = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    forward = sympy.lambdify(
        [z], activation.function(z), modules=[{"torch": torch, **alias_namespace()}], printer=printer
    )
    a_values = forward(z_values) if name != "identity" else z_values
    torch.testing.assert_close(fused(g_values, z_values, a_values), product(g_values, z_values, a_values))


def test_bias_and_product_print_as_one_addmm():
    b, w, x = sympy.symbols("b W x", real=True)
    assert MatrixTorchPrinter().doprint(b + matmul(w, x)) == "torch.addmm(b, W, x)"


def test_source_is_straight_line_code_a_person_can_read():
    network = Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True)
    source = compile_gradients(derive(network)).source
    header, function = source.split("\n\n")
    imports, *aliases = header.splitlines()
    assert imports == "import torch"
    assert all(re.fullmatch(r"\w+ = torch\.[\w.]+  # \w+\(.+", line) for line in aliases), header
    lines = function.strip().splitlines()
    assert lines[0].startswith("def ") and lines[-1].strip().startswith("return")
    assert not any(word in source for word in ("Lambda", "for ", "while ", "if ", "torch.transpose"))
    # one line per layer quantity: z, a, delta, grad_W, grad_b per layer (besides the lines freeing them)
    assert len([line for line in lines if not line.strip().startswith("del ")]) == 2 + 5 * network.depth


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


def test_backend_inductor_equals_autograd_float64():
    network = Network([3, 5, 4, 2], ["relu", "tanh", "softmax"], "cross_entropy", bias=True)
    compiled = compile_gradients(derive(network), backend="inductor")
    values = random_values(network, 6, 0)
    params = {name: values[name] for name in network.parameter_shapes}
    reference_loss, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params)
    loss, with_loss = compiled.value_and_grad(values["x"], values["y"], params)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-10, atol=1e-12)
    for gradients in (compiled(values["x"], values["y"], params), with_loss):
        for name in params:
            torch.testing.assert_close(gradients[name], reference[name], rtol=1e-10, atol=1e-12)
    assert "backend='inductor'" in repr(compiled)


def test_unknown_backend_is_an_input_error():
    with pytest.raises(InputError, match=r"unknown backend 'cuda'.*inductor"):
        compile_gradients(derive(Network([1, 2, 2])), backend="cuda")


def test_gradients_are_values_even_for_parameters_that_require_grad():
    network = Network([2, 3, 2], ["sigmoid", "sigmoid"], "bce")
    values = random_values(network, 4, 0)
    params = {name: values[name].clone().requires_grad_(True) for name in network.parameter_shapes}
    gradients = compile_gradients(derive(network))(values["x"], values["y"], params)
    reference = autograd_gradients(network, values["x"], values["y"], params)
    for name in params:
        assert not gradients[name].requires_grad
        torch.testing.assert_close(gradients[name], reference[name], rtol=1e-10, atol=1e-12)


def test_inputs_are_checked_again_after_a_call_that_passed():
    # the check is skipped for a repeated signature only: every change of shape, dtype, device or names is seen
    network = Network([2, 3, 2], ["tanh", "sigmoid"], "bce", bias=True)
    compiled = compile_gradients(derive(network))
    values = random_values(network, 4, 0)
    x, y = values["x"], values["y"]
    params = {name: values[name] for name in network.parameter_shapes}
    compiled(x, y, params)
    compiled(x, y, params)
    bad_calls = {
        "x has shape": (x[:1], y, params),
        "y has shape": (x, y[:, :2], params),
        "W1 has dtype": (x, y, {**params, "W1": params["W1"].to(torch.int64)}),
        "b2 is torch.float32": (x, y, {**params, "b2": params["b2"].float()}),
        "missing": (x, y, {name: value for name, value in params.items() if name != "W2"}),
        "unknown": (x, y, {**params, "W3": params["W2"]}),
        "torch.Tensor": (x.tolist(), y, params),
    }
    for message, (bad_x, bad_y, bad_params) in bad_calls.items():
        with pytest.raises((InputError, InputTypeError), match=message):
            compiled(bad_x, bad_y, bad_params)
        with pytest.raises((InputError, InputTypeError), match=message):
            compiled.value_and_grad(bad_x, bad_y, bad_params)


def test_a_repeated_signature_skips_the_full_check(monkeypatch):
    import numeric._compiled

    calls = []
    real = numeric._compiled.check_inputs
    monkeypatch.setattr(numeric._compiled, "check_inputs", lambda *args: calls.append(1) or real(*args))
    network = Network([2, 3, 2], ["tanh", "sigmoid"], "bce")
    compiled = compile_gradients(derive(network))
    values = random_values(network, 4, 0)
    params = {name: values[name] for name in network.parameter_shapes}
    for _ in range(3):
        compiled(values["x"], values["y"], params)
        compiled.value_and_grad(values["x"], values["y"], params)
    assert len(calls) == 1
    compiled(values["x"][:, :2], values["y"][:, :2], params)  # a new batch size: checked again
    assert len(calls) == 2


@pytest.mark.parametrize("form", ["matrix", "elementwise"])
def test_the_source_runs_as_it_is_when_copied_into_a_file(form):
    """f.source is self-contained: run in an empty namespace it gives f's gradients."""
    network = Network([3, 4, 2], ["softplus", "sigmoid"], "bce", bias=True)
    compiled = compile_gradients(derive(network), form)
    values = random_values(network, 5, 2)
    params = {name: values[name] for name in network.parameter_shapes}
    namespace: dict = {}
    exec(compiled.source, namespace)  # the printed code of our own compiler, no user string
    copied = namespace["gradients"](values["x"], values["y"], *params.values())
    for name, value in zip(network.parameter_shapes, copied):
        torch.testing.assert_close(value, compiled(values["x"], values["y"], params)[name], rtol=0, atol=0)
