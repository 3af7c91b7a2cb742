"""The contestants: each makes a step() computing {name: gradient} for a case, in its own layout."""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy
import torch
from bench_cases import Case, Data

from numeric import REFERENCE_LOSSES, compile_gradients, from_torch, to_torch
from numeric._c._build import find_compiler
from numeric._torch_graph import read_model
from numeric._torch_models import _loss_from_module, to_torch_layout, torch_batch
from symbolic import ChainruleError, Network, derive
from symbolic._model import Model


class Unsupported(Exception):
    """A contestant that cannot run a case: its cells say "unsupported"."""


def autograd_step(network: Network, data: Data) -> Callable[[], dict]:
    """What PyTorch users run: nn.Sequential, a loss, samples as rows, torch.autograd.grad."""
    model = to_torch(network, data.params)
    loss = REFERENCE_LOSSES[network.loss]
    parameters = list(model.parameters())
    return lambda: _rename(torch.autograd.grad(loss(model(data.x_rows), data.y_rows), parameters), network)


def func_grad_step(network: Network, data: Data) -> Callable[[], dict]:
    """torch.func.grad of the same module, called functionally."""
    model = to_torch(network, data.params)
    loss = REFERENCE_LOSSES[network.loss]
    params = dict(model.named_parameters())

    def batch_loss(p):
        return loss(torch.func.functional_call(model, p, (data.x_rows,)), data.y_rows)

    gradient = torch.func.grad(batch_loss)
    return lambda: _rename(tuple(gradient(params).values()), network)


def compiled_autograd_step(network: Network, data: Data) -> Callable[[], dict]:
    """torch.compile of the model and loss; autograd's backward through AOTAutograd's compiled graph."""
    model = to_torch(network, data.params)
    loss = REFERENCE_LOSSES[network.loss]
    parameters = list(model.parameters())
    forward = torch.compile(lambda x, y: loss(model(x), y))
    return lambda: _rename(torch.autograd.grad(forward(data.x_rows, data.y_rows), parameters), network)


def _rename(gradients, network: Network) -> dict:
    """Module gradients (rows layout: bias [n]) under chainrule's names and shapes (bias [n, 1])."""
    out = {}
    for name, gradient in zip(network.parameter_shapes, gradients):
        out[name] = gradient.reshape(network.parameter_shapes[name])
    return out


def chainrule_step(network: Network, data: Data) -> Callable[[], dict]:
    compiled = compile_gradients(derive(network))
    return lambda: compiled(data.x, data.y, data.params)


def chainrule_one_pass_step(network: Network, data: Data) -> Callable[[], dict]:
    """chainrule without chunking: the whole batch in one pass (what chunk="auto" saves at large batches)."""
    compiled = compile_gradients(derive(network), chunk=None)
    return lambda: compiled(data.x, data.y, data.params)


def chainrule_inductor_step(network: Network, data: Data) -> Callable[[], dict]:
    compiled = compile_gradients(derive(network), backend="inductor")
    return lambda: compiled(data.x, data.y, data.params)


def chainrule_c_step(network: Network, data: Data) -> Callable[[], dict]:
    """backend="c": one generated C function, compiled by the system's cc (or loaded from chainrule's disk
    cache) when the step is made, so its first call compiles nothing."""
    compiled = compile_gradients(derive(network), backend="c")
    if compiled.backend != "c":  # no C compiler: the torch backend ran instead, which is not this contestant
        raise RuntimeError("backend='c' needs a C compiler (CC, or cc, gcc, clang on PATH)")
    return lambda: compiled(data.x, data.y, data.params)


# The fused hand-written recursion: columns, torch's fused backward kernels, results in dead buffers.
_FORWARD_IN_PLACE = {"sigmoid": torch.sigmoid_, "tanh": torch.tanh_, "relu": torch.relu_}
_BACKWARD_OUT = {  # g ⊙ f'(z) from a = f(z), written into a
    "sigmoid": lambda g, a: torch.ops.aten.sigmoid_backward.grad_input(g, a, grad_input=a),
    "tanh": lambda g, a: torch.ops.aten.tanh_backward.grad_input(g, a, grad_input=a),
    "relu": lambda g, a: torch.ops.aten.threshold_backward.grad_input(g, a, 0, grad_input=a),
}


def fused_hand_step(network: Network, data: Data) -> Callable[[], dict]:
    """The δ recursion as a person who knows torch's kernels would write it for these cases."""
    if network.loss not in ("half_sse", "cross_entropy"):
        raise NotImplementedError(network.loss)
    depth, bias, activations = network.depth, network.bias, network.activations
    weights = [data.params[f"W{layer}"] for layer in range(1, depth + 1)]
    biases = [data.params[f"b{layer}"] for layer in range(1, depth + 1)] if bias else []

    def step():
        x, y = data.x, data.y
        outputs = [x]
        for layer in range(depth):
            z = torch.addmm(biases[layer], weights[layer], outputs[-1]) if bias else weights[layer] @ outputs[-1]
            name = activations[layer]
            outputs.append(torch.softmax(z, dim=0) if name == "softmax" else _FORWARD_IN_PLACE[name](z))
        a = outputs.pop()
        if activations[-1] == "softmax":  # cross entropy: a·Σy − y, in a's buffer
            delta = a.mul_(y.sum(0, keepdim=True)).sub_(y)
        else:  # half the sum of squares: (a − y) ⊙ f'(z)
            delta = _BACKWARD_OUT[activations[-1]](a - y, a)
        gradients = {}
        for layer in reversed(range(depth)):
            previous = outputs.pop()
            gradients[f"W{layer + 1}"] = delta @ previous.T
            if bias:
                gradients[f"b{layer + 1}"] = delta.sum(1, keepdim=True)
            if layer:
                delta = _BACKWARD_OUT[activations[layer - 1]](weights[layer].T @ delta, previous)
        return {name: gradients[name] for name in network.parameter_shapes}

    return step


def jax_step(network: Network, data: Data) -> Callable[[], dict]:
    """JAX ``jit(grad)`` on the CPU: the same model written in jax.numpy, samples as rows."""
    import jax
    import jax.numpy as jnp

    functions = {
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "softmax": lambda z: jax.nn.softmax(z, axis=-1),
    }
    losses = {
        "half_sse": lambda out, target: 0.5 * jnp.sum((out - target) ** 2),
        "cross_entropy": lambda out, target: -jnp.sum(target * jnp.log(out)),
    }
    activations, loss = [functions[name] for name in network.activations], losses[network.loss]

    def batch_loss(params, x, y):
        a = x
        for layer, f in enumerate(activations, start=1):
            z = a @ params[f"W{layer}"].T
            a = f(z + params[f"b{layer}"].reshape(-1) if network.bias else z)
        return loss(a, y)

    gradient = jax.jit(jax.grad(batch_loss))
    params = {name: jnp.asarray(value.numpy()) for name, value in data.params.items()}
    x, y = jnp.asarray(data.x_rows.numpy()), jnp.asarray(data.y_rows.numpy())
    return lambda: jax.block_until_ready(gradient(params, x, y))


def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


IMPLEMENTATIONS: dict[str, Callable[[Network, Data], Callable[[], dict]]] = {
    "autograd": autograd_step,
    "torch.func.grad": func_grad_step,
    "torch.compile(autograd)": compiled_autograd_step,
    "JAX jit(grad)": jax_step,
    "fused hand-written": fused_hand_step,
    "chainrule": chainrule_step,
    "chainrule one pass": chainrule_one_pass_step,
    "chainrule inductor": chainrule_inductor_step,
    "chainrule c": chainrule_c_step,
}


# --- the module cases (a torch model, not a chainrule Network): the contestants that take a module -----------


def _module_and_loss(case: Case):
    model, loss = case.module(), case.loss()
    return model, loss, dict(model.named_parameters())


def module_autograd_step(case: Case, data: Data) -> Callable[[], dict]:
    model, loss, named = _module_and_loss(case)
    names, parameters = list(named), list(named.values())
    return lambda: dict(zip(names, torch.autograd.grad(loss(model(data.x_rows), data.y_rows), parameters)))


def module_func_grad_step(case: Case, data: Data) -> Callable[[], dict]:
    model, loss, named = _module_and_loss(case)
    params = {name: value.detach() for name, value in named.items()}
    gradient = torch.func.grad(lambda p: loss(torch.func.functional_call(model, p, (data.x_rows,)), data.y_rows))
    return lambda: gradient(params)


def module_compiled_autograd_step(case: Case, data: Data) -> Callable[[], dict]:
    model, loss, named = _module_and_loss(case)
    names, parameters = list(named), list(named.values())
    forward = torch.compile(lambda x, y: loss(model(x), y))
    return lambda: dict(zip(names, torch.autograd.grad(forward(data.x_rows, data.y_rows), parameters)))


def module_jax_step(case: Case, data: Data) -> Callable[[], dict]:
    """JAX ``jit(grad)`` of the same model: each torch module translated to jax.numpy (``_jax_layer``), the torch
    module's own parameters under its own names, samples as rows."""
    import jax
    import jax.numpy as jnp

    model, loss, named = _module_and_loss(case)
    if isinstance(loss, torch.nn.MSELoss):

        def objective(out, target):
            return jnp.mean((out - target) ** 2)

    elif isinstance(loss, torch.nn.CrossEntropyLoss):  # class indices, the mean over the samples

        def objective(out, target):
            log_p = jax.nn.log_softmax(out, axis=-1)
            return -jnp.mean(jnp.take_along_axis(log_p, target[:, None], axis=-1))

    else:
        raise Unsupported(f"JAX: no translation of {type(loss).__name__}")
    layers = [(name, _jax_layer(child)) for name, child in model.named_children()]

    def batch_loss(params, x, y):
        for name, layer in layers:
            x = layer(params, f"{name}.", x)
        return objective(x, y)

    gradient = jax.jit(jax.grad(batch_loss))
    params = {name: jnp.asarray(value.detach().numpy()) for name, value in named.items()}
    x, y = jnp.asarray(data.x_rows.numpy()), jnp.asarray(data.y_rows.numpy())
    return lambda: jax.block_until_ready(gradient(params, x, y))


def _jax_layer(module: torch.nn.Module) -> Callable:
    """``module``'s forward pass in jax.numpy: (params, its parameters' name prefix, x) -> output."""
    import jax
    import jax.numpy as jnp
    from bench_models import ResidualBlock

    if isinstance(module, torch.nn.Linear):
        return lambda p, at, x: x @ p[at + "weight"].T + p[at + "bias"]
    if isinstance(module, torch.nn.ReLU):
        return lambda p, at, x: jax.nn.relu(x)
    if isinstance(module, torch.nn.Flatten):
        return lambda p, at, x: x.reshape(x.shape[0], -1)
    if isinstance(module, torch.nn.LayerNorm):

        def layer_norm(p, at, x, eps=module.eps):
            mean = x.mean(-1, keepdims=True)
            variance = ((x - mean) ** 2).mean(-1, keepdims=True)  # biased, as torch's
            return (x - mean) / jnp.sqrt(variance + eps) * p[at + "weight"] + p[at + "bias"]

        return layer_norm
    if isinstance(module, ResidualBlock):
        norm, linear = _jax_layer(module.norm), _jax_layer(module.linear)
        return lambda p, at, x: x + linear(p, at + "linear.", jax.nn.relu(norm(p, at + "norm.", x)))
    if isinstance(module, torch.nn.Conv2d) and module.stride == (1, 1) and module.groups == 1:
        padding = [(size, size) for size in module.padding]

        def convolution(p, at, x):
            numbers = ("NCHW", "OIHW", "NCHW")  # torch's layouts of the input, the weight and the output
            out = jax.lax.conv_general_dilated(x, p[at + "weight"], (1, 1), padding, dimension_numbers=numbers)
            return out + p[at + "bias"][None, :, None, None]

        return convolution
    if isinstance(module, torch.nn.MaxPool2d) and module.kernel_size == module.stride == 2:
        return lambda p, at, x: jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    raise Unsupported(f"JAX: no translation of {type(module).__name__}")


def module_chainrule_step(**options) -> Callable[[Case, Data], Callable[[], dict]]:
    """chainrule on a torch model: from_torch reads it, compile_gradients(**options) compiles its derivation.
    What chainrule does not read yet raises one of its own errors: then the cell says "unsupported"."""

    def make(case: Case, data: Data) -> Callable[[], dict]:
        model, loss, _ = _module_and_loss(case)
        try:
            network, params = from_torch(model, loss, input_shape=tuple(data.x_rows.shape[1:]))
            if isinstance(network, Model):
                return _model_step(model, network, params, loss, data, options)
            x, y = torch_batch(network, data.x_rows, data.y_rows)
            compiled = compile_gradients(derive(network), **options)
        except ChainruleError as error:  # what from_torch, derive or compile_gradients do not support (yet)
            raise Unsupported(f"chainrule: {error}") from error
        if options.get("backend") == "c" and compiled.backend != "c":
            raise Unsupported("backend='c' needs a C compiler")
        return lambda: to_torch_layout(model, compiled(x, y, params))

    return make


def _model_step(module, model: Model, params, loss, data: Data, options: dict) -> Callable[[], dict]:
    """A module read into a Model: its compiled program (numeric/_model_compile.py), one pass, keyed like
    ``module.named_parameters()``; the chunked and C variants are the dense programs' only."""
    if options.get("backend") == "c":
        raise Unsupported("chainrule c: the C kernel prints dense networks only")
    if "chunk" in options:
        raise Unsupported("chainrule one pass: a Model's program always runs in one pass")
    compiled = compile_gradients(model, backend=options.get("backend"))
    names = read_model(module, *_loss_from_module(loss), tuple(data.x_rows.shape[1:])).torch_names
    y = data.y_rows
    if not y.is_floating_point():  # class indices: the one-hot rows the loss's distribution is
        y = torch.nn.functional.one_hot(y, model.output_size).to(data.x_rows.dtype)
    x = data.x_rows
    return lambda: {names[name]: value for name, value in compiled(x, y, params).items()}


MODULE_IMPLEMENTATIONS: dict[str, Callable[[Case, Data], Callable[[], dict]]] = {
    "autograd": module_autograd_step,
    "torch.func.grad": module_func_grad_step,
    "torch.compile(autograd)": module_compiled_autograd_step,
    "JAX jit(grad)": module_jax_step,
    "chainrule": module_chainrule_step(),
    "chainrule one pass": module_chainrule_step(chunk=None),
    "chainrule inductor": module_chainrule_step(backend="inductor"),
    "chainrule c": module_chainrule_step(backend="c"),
}  # the fused hand-written recursion is written for Networks: "unsupported" here


def make_step(name: str, case: Case, data: Data) -> Callable[[], dict]:
    """``name``'s step for ``case``; Unsupported where it cannot run it (printed to stderr: why)."""
    try:
        if case.network is not None:
            return IMPLEMENTATIONS[name](case.network, data)
        if name not in MODULE_IMPLEMENTATIONS:
            raise Unsupported(f"{name} is written for chainrule Networks, not torch modules")
        return MODULE_IMPLEMENTATIONS[name](case, data)
    except Unsupported as error:
        print(f"{name} at {case.key}: unsupported ({error})", file=sys.stderr)
        raise


LOOP_CALLS = 31  # loop_table's calls per implementation
COMPILING = ("torch.compile(autograd)", "JAX jit(grad)", "chainrule inductor")  # first call compiles


def c_compiler_available() -> bool:
    return find_compiler() is not None


OPTIONAL = {"JAX jit(grad)": jax_available, "chainrule c": c_compiler_available}  # left out where they cannot run


def implementations() -> list[str]:
    return [name for name in IMPLEMENTATIONS if name not in OPTIONAL or OPTIONAL[name]()]


def as_torch(gradients: dict) -> dict[str, torch.Tensor]:
    return {
        name: value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(numpy.array(value))
        for name, value in gradients.items()
    }
