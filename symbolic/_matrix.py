"""The derivation at matrix level: the δ recursion over whole [units, batch] matrices.

It is derived from the same tables as the element-wise derivation, by their matrix-level rules
(``Activation.matrix_forward`` / ``matrix_backward``); Wᵀδ, δ aᵀ and δ𝟏 are the matrix forms that SymPy's
index-form derivatives name (``program_form``). ``tests/test_matrix_form.py`` proves the two equal.
Symbols here are named as the generated code names its tensors (x, W1, z1, a1, delta1, grad_W1).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

import sympy
from sympy import Symbol

from ._functions import batch_size, batch_sum, matmul, max_mask, softmax_without_max, transpose, unit_sum
from ._index import layer_facts
from ._network import Network
from ._simplify import smallest


def matrix_symbol(name: str) -> Symbol:
    """The symbol standing for a whole matrix (and for one unit of it, in ``smallest_per_unit``)."""
    return Symbol(name, real=True)


BATCH_SIZE = batch_size(matrix_symbol("x"))  # B, the samples (columns) of the batch x, as every form writes it


def reduction_scale(network: Network) -> sympy.Expr:
    """Each sample's share of the batch loss, L = s · Σ_b ℓ_b: 1 for ``reduction="sum"``, 1/B for ``"mean"``.

    The one definition of the mean's 1/B: the loss and ∂L/∂a_L of both forms, the stable output δ,
    check_backward's mistakes and the compiled function's chunks all read it here.
    """
    return 1 / BATCH_SIZE if network.reduction == "mean" else sympy.S.One


class Role(enum.Enum):
    """What a step of the matrix program holds: how a reader finds a quantity (check_backward plants its
    mistakes by role and layer), whatever the step's target is named."""

    Z = "z"  # the pre-activation W a + b of its layer
    A = "a"  # the activation f(z) of its layer
    LOSS = "loss"  # the batch loss L
    DELTA = "delta"  # δ = ∂L/∂z of its layer
    DELTA_PART = "delta part"  # a named part of the output layer's δ (the stable softmax + bce form's mask, ratio)
    GRAD_W = "grad W"  # ∂L/∂W of its layer
    GRAD_B = "grad b"  # ∂L/∂b of its layer
    GRAD_X = "grad x"  # ∂L/∂x (layer 1), when derived


@dataclass(frozen=True)
class MatrixStep:
    """One line of the matrix program: ``target = expression`` over whole [units, batch] matrices."""

    target: Symbol
    expression: sympy.Expr
    role: Role
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

    def step(self, role: Role, layer: int) -> MatrixStep:
        """The one step holding ``role`` at ``layer``; a LookupError when there is none or several."""
        found = [s for s in self.steps if s.role is role and s.layer == layer]
        if len(found) != 1:
            raise LookupError(f"the matrix program has {len(found)} steps of role {role.name} at layer {layer}")
        return found[0]


def _softmax_bce_delta(z: Symbol, a: Symbol, y: Symbol, emit) -> sympy.Expr:
    """δ of bce after a softmax in a form that stays finite when the softmax saturates.

    The chain rule gives δ_i = Σ_k g_k a_k (𝟙[k = i] − a_i) with g_k = −y_k/a_k + (1 − y_k)/(1 − a_k); when
    one output a_{k*} rounds to 1 (a logit gap of ~37 in float64, ~17 in float32) 1 − a_{k*} is 0 and the
    product is inf · 0, though the exact δ is finite. Collecting terms gives

        δ_i = a_i − y_i + a_i (Σ_k y_k − y_i) − Σ_{k≠i} (1 − y_k) a_k · a_i / (1 − a_k),

    and a_i / (1 − a_k) is at most 1 for k ≠ i: off the largest output 1 − a_k ≥ ½ (u below); at the largest
    it is the softmax with that unit left out (``softmax_without_max``). tests/test_stability.py proves
    this equal to the chain rule with SymPy and checks it against a 60-digit reference at saturation.
    """
    mask = emit(f"mask_{z.name}", max_mask(z))
    u = emit(f"ratio_{z.name}", (1 - y) * a / (1 - a + mask) * (1 - mask))  # (1 − y_k) a_k/(1 − a_k), 0 at k*
    largest = unit_sum(mask * (1 - y) * a)  # (1 − y_{k*}) a_{k*}
    return a - y + a * (unit_sum(y) - y) - a * (unit_sum(u) - u) - largest * softmax_without_max(z, mask)


def _softmax_mean_bce_delta(z: Symbol, a: Symbol, y: Symbol, emit, n: int) -> sympy.Expr:
    """δ of mean_bce after a softmax: mean_bce is bce / n (the mean over the n output units), so is its δ."""
    return _softmax_bce_delta(z, a, y, emit) / n


# Output layers whose chain-rule δ is not finite at saturation, and the finite form SymPy checks equal to it
# (each takes z, a, y, emit and the number of output units n).
STABLE_OUTPUT_DELTAS = {
    ("softmax", "bce"): lambda z, a, y, emit, n: _softmax_bce_delta(z, a, y, emit),
    ("softmax", "mean_bce"): _softmax_mean_bce_delta,
}


def program_form(fact: str, symbols: dict[str, sympy.Expr]) -> sympy.Expr:
    """The matrix form of an index-form fact written with the program's operations and ``symbols``.

    MatMul is ``matmul``, Transpose ``transpose``, a product with a column of ones ``batch_sum``; for the δ
    recursion the factor written with ⊙ f'(z) is left to the activation's local step (``matrix_backward``).
    """
    form = layer_facts()[fact].matrix_form
    if isinstance(form, sympy.HadamardProduct):  # (Wᵀ δ') ⊙ f'(z): the upstream part
        (form,) = [factor for factor in form.args if not factor.has(sympy.MatrixSymbol("fprime_z", *factor.shape))]
    return _as_program(form, symbols)


def _as_program(form: sympy.Expr, symbols: dict[str, sympy.Expr]) -> sympy.Expr:
    if isinstance(form, sympy.MatrixSymbol):
        return symbols[form.name]
    if isinstance(form, sympy.Transpose):
        return transpose(_as_program(form.arg, symbols))
    if isinstance(form, sympy.MatMul):
        left, right = form.args
        if isinstance(right, sympy.OneMatrix):  # X 𝟏: the sum over the columns (samples)
            return batch_sum(_as_program(left, symbols))
        return matmul(_as_program(left, symbols), _as_program(right, symbols))
    raise NotImplementedError(f"no program operation for {form!r}")


def derive_matrix_program(network: Network, wrt: tuple[str, ...] = ()) -> MatrixProgram:
    sym = matrix_symbol
    x, y = sym("x"), sym("y")
    params = {name: sym(name) for name in network.parameter_shapes}
    steps: list[MatrixStep] = []

    def emit(name: str, expression: sympy.Expr, role: Role, layer: int) -> Symbol:
        target = sym(name)
        steps.append(MatrixStep(target, expression, role, layer))
        return target

    activations = network.activation_rules
    z_of, a_of = {}, {0: x}
    for layer in range(1, network.depth + 1):
        pre = matmul(params[f"W{layer}"], a_of[layer - 1])
        if network.bias:
            pre = pre + params[f"b{layer}"]
        z_of[layer] = emit(f"z{layer}", pre, Role.Z, layer)
        a_of[layer] = emit(f"a{layer}", activations[layer - 1].matrix_forward(z_of[layer]), Role.A, layer)

    depth, rule = network.depth, network.loss_rule
    output, n = a_of[depth], network.sizes[-1]
    # L = s Σ_b ℓ_b (s = 1/B for the mean): the loss and every sample's ∂L/∂a_L carry the share s
    scale = reduction_scale(network)
    total = scale * batch_sum(rule.matrix_per_sample(output, y, n))
    upstream = scale * rule.matrix_gradient(output, y, n)  # ∂L/∂a_L, element-wise
    loss = emit("loss", total, Role.LOSS, depth)
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
        elif layer == depth and (activation.name, rule.name) in STABLE_OUTPUT_DELTAS:
            stable = STABLE_OUTPUT_DELTAS[activation.name, rule.name]
            # the stable δ is one sample's (it does not go through ∂L/∂a_L): the sample's share of L put on it
            part = lambda name, e, at=layer: emit(name, e, Role.DELTA_PART, at)  # noqa: E731
            chain = scale * stable(z_of[layer], a_of[layer], y, part, n)
        elif layer == depth:
            chain = smallest(chain)
        delta = emit(f"delta{layer}", chain, Role.DELTA, layer)
        # the matrix forms SymPy's index-form derivatives name (``_index.layer_facts``), in this layer's symbols
        gradient_w = program_form("dL_dW", {"delta": delta, "a": a_of[layer - 1]})  # δ aᵀ
        gradients[f"W{layer}"] = emit(f"grad_W{layer}", gradient_w, Role.GRAD_W, layer)
        if network.bias:
            gradient_b = program_form("dL_db_batch", {"delta": delta})  # δ𝟏
            gradients[f"b{layer}"] = emit(f"grad_b{layer}", gradient_b, Role.GRAD_B, layer)
        upstream = program_form("delta", {"W_next": params[f"W{layer}"], "delta_next": delta})  # Wᵀδ
    ordered = {name: gradients[name] for name in network.parameter_shapes}
    if "x" in wrt:  # ∂L/∂x = W1ᵀ δ1, one column per sample (saliency maps, adversarial examples)
        ordered["x"] = emit("grad_x", upstream, Role.GRAD_X, 1)
    return MatrixProgram((x, y, *params.values()), tuple(steps), loss, ordered)
