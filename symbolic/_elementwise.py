"""The element-wise derivation: one symbol per unit, the chain rule over named intermediates.

The forward pass names every pre-activation z_l[i] and output a_l[i]; the backward pass names every
δ_l[i] = ∂L/∂z_l[i]:

    δ_L[i] = Σ_k ∂L/∂a_L[k] · ∂a_L[k]/∂z_L[i]              (∂L/∂a_L by sympy.diff of the loss)
    δ_l[j] = (Σ_i W_{l+1}[i, j] δ_{l+1}[i]) · f_l'(z_l[j])  (the tutorial's reused red box)
    ∂L/∂W_l[i, j] = δ_l[i] a_{l-1}[j],   ∂L/∂b_l[i] = δ_l[i]

so the program stays linear in the network's size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy
from sympy import Matrix, Symbol

from ._functions import batch_size
from ._matrix import matrix_symbol
from ._network import Network
from ._rules import ACTIVATIONS, LOSSES, Activation
from ._simplify import smallest_per_unit

# B in the element-wise derivation (one sample per column): the batch size of x, as in the matrix program
BATCH_SIZE = batch_size(matrix_symbol("x"))


def _entry_symbol(name: str, latex_base: str, i: int, j: int | None, latex_names: dict) -> Symbol:
    """The symbol for entry (i, j) of ``name`` (1-based, as in the derivation), e.g. ``W1[1,2]``."""
    index = f"{i}" if j is None else f"{i},{j}"
    symbol = Symbol(f"{name}[{index}]", real=True)
    if j is None:
        latex_index = f"{i}"
    else:
        latex_index = f"{i}{j}" if i < 10 and j < 10 else f"{i},{j}"
    latex_names[symbol] = f"{latex_base}_{{{latex_index}}}"
    return symbol


def _vector(name: str, latex_base: str, length: int, latex_names: dict) -> Matrix:
    return Matrix([_entry_symbol(name, latex_base, i + 1, None, latex_names) for i in range(length)])


def _matrix(name: str, latex_base: str, rows: int, cols: int, latex_names: dict) -> Matrix:
    return Matrix(rows, cols, lambda i, j: _entry_symbol(name, latex_base, i + 1, j + 1, latex_names))


def _layer_latex(letter: str, layer: int) -> str:
    return f"{letter}^{{({layer})}}"


@dataclass(frozen=True)
class LayerDerivation:
    """Everything derived for layer l; each Matrix is a column over the layer's units."""

    index: int
    activation: Activation
    weight: Matrix  # W_l, symbols
    bias: Matrix | None  # b_l, symbols
    inputs: Matrix  # a_{l-1} (x for the first layer), symbols
    z: Matrix  # symbols z_l[i]
    z_definition: Matrix  # W_l a_{l-1} + b_l, in the symbols above
    a: Matrix  # symbols a_l[i]
    a_definition: Matrix  # f(z_l), in z symbols
    upstream: Matrix  # ∂L/∂a_l[i], in a_L and y (last layer) or in δ_{l+1} and W_{l+1}
    local_jacobian: Matrix  # ∂a_l[k]/∂z_l[i] as [k, i], written through z_l and a_l
    delta: Matrix  # symbols δ_l[i]
    delta_chain: Matrix  # Σ_k upstream[k] · local_jacobian[k, i]: the chain rule as written
    delta_definition: Matrix  # delta_chain, simplified where that makes it smaller


@dataclass(frozen=True)
class ElementwiseDerivation:
    """Everything :func:`derive_elementwise` produces; ``Derivation`` exposes it attribute by attribute."""

    symbols: Mapping[str, Matrix]
    layers: tuple[LayerDerivation, ...]
    loss_definition: sympy.Expr
    gradient_definitions: Mapping[str, Matrix]
    latex_names: Mapping[Symbol, str]


def _symbol_product(u: Symbol, v: Symbol) -> sympy.Expr:
    """``u * v`` for two distinct symbols, built directly in SymPy's canonical form.

    Every product in a dense layer (W·a, Wᵀ·δ, δ·aᵀ) multiplies two symbols; ``Mul.flatten`` spent 4.5 s
    of a width-32 derivation finding what is known beforehand: the canonical Mul of two symbols with the
    same assumptions is their pair sorted by name (``Basic.compare``). ``tests/test_scaling.py`` checks
    it is identical to ``u * v``.
    """
    if not (type(u) is Symbol and type(v) is Symbol) or u == v or u.assumptions0 != v.assumptions0:
        return u * v
    return sympy.Mul._from_args((u, v) if u.name < v.name else (v, u), is_commutative=True)


def _affine(weight: Matrix, vector: Matrix, bias: Matrix | None = None) -> Matrix:
    """weight · vector (+ bias), summed term by term.

    SymPy's Matrix product routes symbolic entries through DomainMatrix over EXRAW, which took 13 s of
    a 17-layer width-32 derivation; plain Add/Mul over the rows takes a fraction of that.
    """
    columns = list(vector)
    rows = []
    for i in range(weight.rows):
        terms = [_symbol_product(w, v) for w, v in zip(weight.row(i), columns)]
        if bias is not None:
            terms.append(bias[i])
        rows.append(sympy.Add(*terms))
    return Matrix(rows)


def tree_size(expression: sympy.Expr, sizes: Mapping[Symbol, int]) -> int:
    """Nodes of ``expression`` as a tree, counting each named intermediate as its own closed size."""
    if expression in sizes:
        return sizes[expression]
    if not expression.args:
        return 1
    return 1 + sum(tree_size(argument, sizes) for argument in expression.args)


def derive_elementwise(network: Network) -> ElementwiseDerivation:
    """The chain rule over one symbol per unit (see the module docstring)."""
    latex_names: dict[Symbol, str] = {}
    sizes, depth = network.sizes, network.depth
    symbols: dict[str, Matrix] = {
        "x": _vector("x", "x", sizes[0], latex_names),
        "y": _vector("y", "y", sizes[-1], latex_names),
    }
    for name, (rows, cols) in network.parameter_shapes.items():
        latex_base = _layer_latex(name[0], int(name[1:]))
        symbols[name] = (
            _matrix(name, latex_base, rows, cols, latex_names)
            if name.startswith("W")
            else _vector(name, latex_base, rows, latex_names)
        )

    # forward: name every z and a
    forward = []
    inputs = symbols["x"]
    for layer in range(1, depth + 1):
        activation = ACTIVATIONS[network.activations[layer - 1]]
        weight = symbols[f"W{layer}"]
        bias = symbols.get(f"b{layer}")
        z = _vector(f"z{layer}", _layer_latex("z", layer), sizes[layer], latex_names)
        a = _vector(f"a{layer}", _layer_latex("a", layer), sizes[layer], latex_names)
        z_definition = _affine(weight, inputs, bias)
        a_definition = Matrix(activation.outputs(list(z)))
        forward.append((layer, activation, weight, bias, inputs, z, z_definition, a, a_definition))
        inputs = a

    loss_rule = LOSSES[network.loss]
    output = forward[-1][7]
    loss_definition = loss_rule.per_sample(list(output), list(symbols["y"]))
    if network.reduction == "mean":  # each sample's share of the batch mean
        loss_definition = loss_definition / BATCH_SIZE

    # backward: name every δ, from the loss down
    layers: list[LayerDerivation] = []
    if loss_rule.coupled is None:
        upstream = Matrix([sympy.diff(loss_definition, a_k) for a_k in output])
    else:  # the same derivative, collected (tests/test_steps.py checks it against sympy.diff)
        scale = loss_definition / loss_rule.per_sample(list(output), list(symbols["y"]))  # 1, or 1/B
        units = list(output), list(symbols["y"])
        upstream = Matrix([scale * loss_rule.coupled.gradient(*units, i) for i in range(len(output))])
    for layer, activation, weight, bias, inputs, z, z_def, a, a_def in reversed(forward):
        n = len(z)
        z_list, a_list = list(z), list(a)
        if activation.elementwise:  # diagonal Jacobian: skip the n² zero entries
            jacobian = sympy.diag(*(activation.jacobian(z_list, a_list, i, i) for i in range(n)))
            chain = Matrix([upstream[i] * jacobian[i, i] for i in range(n)])
        else:
            jacobian = Matrix([[activation.jacobian(z_list, a_list, k, i) for i in range(n)] for k in range(n)])
            chain = Matrix([sympy.Add(*(upstream[k] * jacobian[k, i] for k in range(n))) for i in range(n)])
        if layer == depth:  # one simplification per form, shared by every unit and the matrix program
            a_all, z_all, y_all = (matrix_symbol(name) for name in (f"a{layer}", f"z{layer}", "y"))
            target = symbols["y"]
            x_all = matrix_symbol("x")  # in the batch size B of reduction="mean", the same for every unit
            generic = {x_all: x_all}
            definition = Matrix(
                [smallest_per_unit(chain[i], {a[i]: a_all, z[i]: z_all, target[i]: y_all, **generic}) for i in range(n)]
            )
        else:
            definition = chain
        delta = _vector(f"delta{layer}", _layer_latex(r"\delta", layer), n, latex_names)
        layers.append(
            LayerDerivation(
                layer,
                activation,
                weight,
                bias,
                inputs,
                z,
                z_def,
                a,
                a_def,
                upstream,
                jacobian,
                delta,
                chain,
                definition,
            )
        )
        upstream = _affine(weight.T, delta)  # ∂L/∂a_{l-1}[j] = Σ_i W_l[i, j] δ_l[i]
    layers.reverse()

    gradient_definitions: dict[str, Matrix] = {}
    for layer in layers:
        gradient_definitions[f"W{layer.index}"] = Matrix(
            [[_symbol_product(d, a) for a in layer.inputs] for d in layer.delta]  # δ aᵀ
        )
        if layer.bias is not None:
            gradient_definitions[f"b{layer.index}"] = Matrix(layer.delta)
    gradient_definitions = {name: gradient_definitions[name] for name in network.parameter_shapes}

    return ElementwiseDerivation(symbols, tuple(layers), loss_definition, gradient_definitions, latex_names)
