"""The derivation at matrix level: the δ recursion over whole [units, batch] matrices.

It is derived from the same tables as the element-wise derivation, by their matrix-level rules
(``Activation.matrix_forward`` / ``matrix_backward``), and ``tests/test_matrix_form.py`` proves the two
equal. Symbols here are named as the generated code names its tensors (x, W1, z1, a1, delta1, grad_W1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy
from sympy import Symbol

from ._functions import batch_size, batch_sum, matmul, transpose
from ._network import Network
from ._rules import ACTIVATIONS, LOSSES
from ._simplify import smallest


def matrix_symbol(name: str) -> Symbol:
    """The symbol standing for a whole matrix (and for one unit of it, in ``smallest_per_unit``)."""
    return Symbol(name, real=True)


@dataclass(frozen=True)
class MatrixStep:
    """One line of the matrix program: ``target = expression`` over whole [units, batch] matrices."""

    target: Symbol
    expression: sympy.Expr
    role: str  # "forward", "loss", "delta" or "gradient"
    layer: int


@dataclass(frozen=True)
class MatrixProgram:
    """The same derivation at matrix level.

    Every symbol stands for a whole matrix (``x`` is [n_0, B], ``W1`` is [n_1, n_0], ...). Ordinary SymPy
    operations act element-wise (``*`` is ⊙); ``matmul``, ``transpose``, ``unit_sum`` and ``batch_sum``
    are the only others. ``tests/test_matrix_form.py`` proves it equal to the element-wise derivation.
    """

    inputs: tuple[Symbol, ...]  # x, y, then the parameters in network order
    steps: tuple[MatrixStep, ...]
    loss: Symbol
    gradients: Mapping[str, Symbol]  # parameter name -> target holding its gradient


def derive_matrix_program(network: Network, wrt: tuple[str, ...] = ()) -> MatrixProgram:
    sym = matrix_symbol
    x, y = sym("x"), sym("y")
    params = {name: sym(name) for name in network.parameter_shapes}
    steps: list[MatrixStep] = []

    def emit(name: str, expression: sympy.Expr, role: str, layer: int) -> Symbol:
        target = sym(name)
        steps.append(MatrixStep(target, expression, role, layer))
        return target

    activations = [ACTIVATIONS[name] for name in network.activations]
    z_of, a_of = {}, {0: x}
    for layer in range(1, network.depth + 1):
        pre = matmul(params[f"W{layer}"], a_of[layer - 1])
        if network.bias:
            pre = pre + params[f"b{layer}"]
        z_of[layer] = emit(f"z{layer}", pre, "forward", layer)
        a_of[layer] = emit(f"a{layer}", activations[layer - 1].matrix_forward(z_of[layer]), "forward", layer)

    depth, rule = network.depth, LOSSES[network.loss]
    output, n = a_of[depth], network.sizes[-1]
    total = batch_sum(rule.matrix_per_sample(output, y, n))
    upstream = rule.matrix_gradient(output, y, n)  # ∂ℓ/∂a_L, element-wise
    if network.reduction == "mean":  # L = (1/B) Σ_b ℓ_b: every sample's gradient carries the 1/B
        total, upstream = total / batch_size(x), upstream / batch_size(x)
    loss = emit("loss", total, "loss", depth)
    gradients: dict[str, Symbol] = {}
    for layer in range(depth, 0, -1):
        activation = activations[layer - 1]
        chain = activation.matrix_backward(z_of[layer], a_of[layer], upstream)
        if layer == depth and activation.elementwise:
            # the loss's derivative may cancel against f' (bce after a sigmoid: ŷ − y); keep the
            # simplified product when it is smaller, else the whole local step (a fused kernel in torch)
            product = upstream * activation.derivative(z_of[layer], a_of[layer])
            simplified = smallest(product)
            if simplified != product:
                chain = simplified
        elif layer == depth:
            chain = smallest(chain)
        delta = emit(f"delta{layer}", chain, "delta", layer)
        gradients[f"W{layer}"] = emit(f"grad_W{layer}", matmul(delta, transpose(a_of[layer - 1])), "gradient", layer)
        if network.bias:
            gradients[f"b{layer}"] = emit(f"grad_b{layer}", batch_sum(delta), "gradient", layer)
        upstream = matmul(transpose(params[f"W{layer}"]), delta)
    ordered = {name: gradients[name] for name in network.parameter_shapes}
    if "x" in wrt:  # ∂L/∂x = W1ᵀ δ1, one column per sample (saliency maps, adversarial examples)
        ordered["x"] = emit("grad_x", upstream, "gradient", 1)
    return MatrixProgram((x, y, *params.values()), tuple(steps), loss, ordered)
