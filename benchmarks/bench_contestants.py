"""The contestants: each makes a step() computing {name: gradient} for a case, in its own layout."""

from __future__ import annotations

from collections.abc import Callable

import numpy
import torch
from bench_cases import Data

from numeric import REFERENCE_LOSSES, compile_gradients, to_torch
from numeric._c._build import find_compiler
from symbolic import Network, derive


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
