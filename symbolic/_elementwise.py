"""The element-wise derivation: one symbol per unit, the chain rule over named intermediates.

The forward pass names every pre-activation z_l[i] and output a_l[i]; the backward pass names every
δ_l[i] = ∂L/∂z_l[i]:

    δ_L[i] = Σ_k ∂L/∂a_L[k] · ∂a_L[k]/∂z_L[i]              (∂L/∂a_L by sympy.diff of the loss)
    δ_l[j] = (Σ_i W_{l+1}[i, j] δ_{l+1}[i]) · f_l'(z_l[j])  (the tutorial's reused red box)
    ∂L/∂W_l[i, j] = δ_l[i] a_{l-1}[j],   ∂L/∂b_l[i] = δ_l[i]

where f' is sympy.diff of the activation's definition, ∂a_k/∂z_i of softmax and ∂z_{l+1}[i]/∂a_l[j] = W_ij are
SymPy's index-form derivatives (``_index``), and the gradients δ aᵀ, δ are the entries of what
``_index.layer_facts`` derives (the tests check each entry against ``sympy.diff``).

so the program stays linear in the network's size. Every unit is built when first read (``Entries``): a
display of one unit per layer costs the depth, not the widths; the whole program, the closed forms and the
per-unit compiled code build every unit, which is what they are asked for.

``UnitProgram`` writes the matrix program's output-layer lines one unit at a time, each sum over the units
named once: the element-wise compiled form takes them where the output couples its units (softmax), so
that its code is as finite as the matrix form's and linear in the width (``tests/test_elementwise_code.py``
proves them equal to the δ displayed here).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import sympy
from sympy import Matrix, Symbol

from ._functions import batch_size, logsumexp, max_mask, softmax, softmax_without_max, unit_logsumexp, unit_sum
from ._index import W as indexed_w  # noqa: N811 - the IndexedBase W, renamed for this module
from ._index import a as indexed_a
from ._index import b as indexed_b
from ._index import delta as indexed_delta
from ._index import dz_da, entry_function
from ._index import i as index_i
from ._index import k as index_k
from ._matrix import matrix_symbol, reduction_scale
from ._network import Network
from ._rules import Activation, instantiate
from ._simplify import smallest_per_unit

# B in the element-wise derivation (one sample per column): the batch size of x, as in the matrix program
BATCH_SIZE = batch_size(matrix_symbol("x"))


class Entries:
    """A matrix of SymPy expressions whose entries are built on first access, one at a time.

    Deriving and displaying a network touches a few units of each layer; building every unit of a
    5000-wide layer (25M weight symbols) for a display of one would make the cost grow with the widths.
    Reading one entry costs one entry; iterating (the per-unit program, closed forms, element-wise code)
    builds them all, which is what was asked for then. It reads like a column (or a matrix) of
    ``sympy.Matrix``: ``m[i]``, ``m[i, j]``, ``shape``, ``rows``, ``cols``, ``row(i)``, ``T``, iteration;
    any other Matrix method builds the whole Matrix (``as_matrix``) and answers from it.
    """

    _op_priority = 20.0  # above Matrix's: ``Matrix + Entries`` asks Entries (SymPy's call_highest_priority)

    def __init__(self, rows: int, cols: int, build: Callable[[int, int], sympy.Expr]):
        self.rows, self.cols = rows, cols
        self._build = build
        self._built: dict[tuple[int, int], sympy.Expr] = {}

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def __len__(self) -> int:
        return self.rows * self.cols

    def _entry(self, i: int, j: int) -> sympy.Expr:
        if not (0 <= i < self.rows and 0 <= j < self.cols):
            raise IndexError(f"entry ({i}, {j}) outside a {self.rows} x {self.cols} matrix")
        key = (i, j)
        if key not in self._built:
            self._built[key] = self._build(i, j)
        return self._built[key]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            i, j = key
            return self._entry(i + self.rows if i < 0 else i, j + self.cols if j < 0 else j)
        if isinstance(key, slice):
            return [self[k] for k in range(len(self))[key]]
        k = key + len(self) if key < 0 else key
        if not 0 <= k < len(self):
            raise IndexError(f"entry {key} outside a matrix of {len(self)} entries")
        return self._entry(*divmod(k, self.cols))

    def __iter__(self) -> Iterator[sympy.Expr]:
        for i in range(self.rows):
            for j in range(self.cols):
                yield self._entry(i, j)

    def row(self, i: int) -> list[sympy.Expr]:
        return [self._entry(i, j) for j in range(self.cols)]

    def built(self) -> int:
        """How many entries have been built so far (tests check that deriving builds few)."""
        return len(self._built)

    @property
    def T(self) -> Entries:
        return Entries(self.cols, self.rows, lambda i, j: self._entry(j, i))

    def as_matrix(self) -> Matrix:
        return Matrix(self.rows, self.cols, list(self))

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.as_matrix(), name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Entries, sympy.MatrixBase)):
            return self.shape == other.shape and all(u == v for u, v in zip(self, other))
        return NotImplemented

    __hash__ = None  # mutable cache, compared by value

    # Matrix arithmetic (operators bypass __getattr__): on the whole Matrix
    def __add__(self, other):
        return self.as_matrix() + _whole(other)

    def __radd__(self, other):
        return _whole(other) + self.as_matrix()

    def __sub__(self, other):
        return self.as_matrix() - _whole(other)

    def __rsub__(self, other):
        return _whole(other) - self.as_matrix()

    def __mul__(self, other):
        return self.as_matrix() * _whole(other)

    def __rmul__(self, other):
        return _whole(other) * self.as_matrix()

    def __matmul__(self, other):
        return self.as_matrix() @ _whole(other)

    def __neg__(self):
        return -self.as_matrix()

    def __repr__(self) -> str:
        # a small one reads like the Matrix it stands for; a large one is not built just to be printed
        if len(self) <= 400:
            return repr(self.as_matrix())
        return f"Entries({self.rows} x {self.cols}, {self.built()} of {len(self)} built)"

    __str__ = __repr__


def _whole(value):
    return value.as_matrix() if isinstance(value, Entries) else value


class _Names(Mapping):
    """Symbols for the entries of named matrices (``W1[1,2]``, 1-based as in the derivation), made on demand.

    As a Mapping it is the derivation's ``latex_names``: symbol ↦ LaTeX (W^{(1)}_{12}) for every entry
    symbol of a named matrix, built or not, worked out from the symbol's name (a printer must look names
    up here rather than copy them: entries are made after the printer is). Iterating lists those made.
    """

    def __init__(self):
        self.bases: dict[str, str] = {}  # "W1" -> "W^{(1)}"
        self.made: dict[Symbol, None] = {}

    def entry(self, name: str, i: int, j: int | None) -> Symbol:
        symbol = Symbol(f"{name}[{i}]" if j is None else f"{name}[{i},{j}]", real=True)
        self.made[symbol] = None
        return symbol

    def vector(self, name: str, latex_base: str, length: int) -> Entries:
        self.bases[name] = latex_base
        return Entries(length, 1, lambda i, _: self.entry(name, i + 1, None))

    def matrix(self, name: str, latex_base: str, rows: int, cols: int) -> Entries:
        self.bases[name] = latex_base
        return Entries(rows, cols, lambda i, j: self.entry(name, i + 1, j + 1))

    def _latex(self, symbol: object) -> str | None:
        if type(symbol) is not Symbol or not symbol.name.endswith("]") or "[" not in symbol.name:
            return None
        base, _, index = symbol.name[:-1].partition("[")
        if base not in self.bases or not symbol.is_real:
            return None
        parts = index.split(",")
        if not all(part.isdigit() for part in parts) or len(parts) > 2:
            return None
        short = len(parts) == 1 or all(int(part) < 10 for part in parts)
        return f"{self.bases[base]}_{{{''.join(parts) if short else ','.join(parts)}}}"

    def __getitem__(self, symbol: Symbol) -> str:
        latex = self._latex(symbol)
        if latex is None:
            raise KeyError(symbol)
        return latex

    def __contains__(self, symbol: object) -> bool:
        return self._latex(symbol) is not None

    def __iter__(self) -> Iterator[Symbol]:
        return iter(list(self.made))

    def __len__(self) -> int:
        return len(self.made)


def _layer_latex(letter: str, layer: int) -> str:
    return f"{letter}^{{({layer})}}"


@dataclass(frozen=True, eq=False)
class _ForwardLayer:
    """Layer l's forward pass, named: the first fields of its ``LayerDerivation``, before the backward pass."""

    index: int
    activation: Activation
    weight: Entries
    bias: Entries | None
    inputs: Entries
    z: Entries
    z_definition: Entries
    a: Entries
    a_definition: Entries


@dataclass(frozen=True, eq=False)
class LayerDerivation:
    """Everything derived for layer l; each field is a column over the layer's units, built on access."""

    index: int
    activation: Activation
    weight: Entries  # W_l, symbols
    bias: Entries | None  # b_l, symbols
    inputs: Entries  # a_{l-1} (x for the first layer), symbols
    z: Entries  # symbols z_l[i]
    z_definition: Entries  # W_l a_{l-1} + b_l, in the symbols above
    a: Entries  # symbols a_l[i]
    a_definition: Entries  # f(z_l), in z symbols
    upstream: Entries  # ∂L/∂a_l[i], in a_L and y (last layer) or in δ_{l+1} and W_{l+1}
    local_jacobian: Entries  # ∂a_l[k]/∂z_l[i] as [k, i], written through z_l and a_l
    delta: Entries  # symbols δ_l[i]
    delta_chain: Entries  # Σ_k upstream[k] · local_jacobian[k, i]: the chain rule as written
    delta_definition: Entries  # delta_chain, simplified where that makes it smaller

    def input_derivative(self, i: int, j: int) -> sympy.Expr:
        """∂z_l[i]/∂a_{l-1}[j] (0-based units): SymPy's index-form result (W_ij, ``_index``) at this layer.

        It costs one entry whatever the width (``sympy.diff`` of the unit's sum costs the width).
        """
        return self._at(dz_da(), {index_i: i + 1, index_k: j + 1})

    def _at(self, template: sympy.Expr, indices: dict) -> sympy.Expr:
        """An index-form result at concrete (1-based) indices, its W, a, b entries this layer's symbols."""
        bases = {indexed_w: self.weight, indexed_a: self.inputs, indexed_b: self.bias}
        if isinstance(template, sympy.Indexed) and template.base in bases:  # the common case, without rebuilding
            return bases[template.base][tuple(int(indices.get(n, n)) - 1 for n in template.indices)]
        concrete = template.xreplace({symbol: sympy.Integer(value) for symbol, value in indices.items()})
        return concrete.replace(
            lambda e: isinstance(e, sympy.Indexed) and e.base in bases,
            lambda e: _entry_at(bases[e.base], [int(n) - 1 for n in e.indices]),
        )


def _entry_at(entries: Entries, indices: list[int]) -> sympy.Expr:
    return entries[indices[0], indices[1]] if len(indices) == 2 else entries[indices[0]]


@dataclass(frozen=True)
class ElementwiseDerivation:
    """Everything :func:`derive_elementwise` produces; ``Derivation`` exposes it attribute by attribute."""

    symbols: Mapping[str, Entries]
    layers: tuple[LayerDerivation, ...]
    loss_terms: Entries | None  # φ(a_L[k], y[k]) for each output unit k; None for a loss coupling the units
    loss_sum: Callable[[], sympy.Expr]  # builds the per-sample loss (1/B of it with reduction="mean")
    gradient_definitions: Mapping[str, Entries]
    latex_names: Mapping[Symbol, str]

    @functools.cached_property
    def loss_definition(self) -> sympy.Expr:
        """The per-sample loss Σ_k φ(a_L[k], y[k]) (built on first use: one term per output unit)."""
        return self.loss_sum()


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


def tree_size(expression: sympy.Expr, sizes: Callable[[Symbol], int | None], seen: dict | None = None) -> int:
    """Nodes of ``expression`` as a tree, counting each named intermediate as its own closed size.

    A subexpression that occurs many times (softmax cross-entropy's log-sum-exp in every unit's term) is
    counted each time but walked once (``seen``).
    """
    seen = {} if seen is None else seen
    if expression in seen:
        return seen[expression]
    if isinstance(expression, Symbol):
        size = sizes(expression)
        size = 1 if size is None else size
    elif not expression.args:
        size = 1
    else:
        size = 1 + sum(tree_size(argument, sizes, seen) for argument in expression.args)
    seen[expression] = size
    return size


def _row_sum(terms: Iterator[sympy.Expr]) -> sympy.Expr:
    """A sum built at once (SymPy's Matrix product routes symbolic entries through DomainMatrix over EXRAW,
    which took 13 s of a 17-layer width-32 derivation; one Add over the row takes a fraction of that)."""
    return sympy.Add(*terms)


def derive_elementwise(network: Network) -> ElementwiseDerivation:
    """The chain rule over one symbol per unit (see the module docstring), each unit built when first read."""
    names = _Names()
    sizes, depth = network.sizes, network.depth
    symbols: dict[str, Entries] = {
        "x": names.vector("x", "x", sizes[0]),
        "y": names.vector("y", "y", sizes[-1]),
    }
    for name, (rows, cols) in network.parameter_shapes.items():
        latex_base = _layer_latex(name[0], int(name[1:]))
        symbols[name] = (
            names.matrix(name, latex_base, rows, cols) if name.startswith("W") else names.vector(name, latex_base, rows)
        )

    # forward: name every z and a
    forward: list[_ForwardLayer] = []
    inputs = symbols["x"]
    for layer in range(1, depth + 1):
        activation = network.activation_rules[layer - 1]
        weight, bias = symbols[f"W{layer}"], symbols.get(f"b{layer}")
        n = sizes[layer]
        z = names.vector(f"z{layer}", _layer_latex("z", layer), n)
        a = names.vector(f"a{layer}", _layer_latex("a", layer), n)
        z_definition = Entries(n, 1, _z_entry(weight, inputs, bias))
        a_definition = Entries(n, 1, _a_entry(activation, z))
        forward.append(_ForwardLayer(layer, activation, weight, bias, inputs, z, z_definition, a, a_definition))
        inputs = a

    loss_rule = network.loss_rule
    output, target = forward[-1].a, symbols["y"]
    n_out = sizes[-1]
    scale = reduction_scale(network)  # each sample's share of L: the one definition of the mean's 1/B
    if loss_rule.coupled is None:
        loss_terms = Entries(n_out, 1, lambda k, _: loss_rule.per_unit(output[k], target[k], n_out))
        loss_sum = lambda: scale * sympy.Add(*loss_terms)  # noqa: E731
    else:  # a loss that couples the units (softmax cross-entropy) has no per-unit terms
        loss_terms = None
        loss_sum = lambda: scale * loss_rule.per_sample(list(output), list(target))  # noqa: E731

    # backward: name every δ, from the loss down; ∂ℓ/∂a_k = diff of the unit's own term (the loss is a sum)
    layers: list[LayerDerivation] = []
    if loss_rule.coupled is None:
        upstream = Entries(n_out, 1, _loss_derivative(loss_rule, output, target, n_out, scale))
    else:  # the same derivative, collected (tests/test_steps.py checks it against sympy.diff)
        upstream = Entries(n_out, 1, lambda i, _: scale * loss_rule.coupled.gradient(list(output), list(target), i))
    above: LayerDerivation | None = None  # layer l + 1
    for f in reversed(forward):
        n = sizes[f.index]
        if above is not None:
            upstream = Entries(n, 1, _hidden_upstream(above))  # ∂L/∂a_l[j] = Σ_i δ_{l+1}[i] ∂z_{l+1}[i]/∂a_l[j]
        jacobian = Entries(n, n, _jacobian_entry(f.activation, f.z, f.a))
        chain = Entries(n, 1, _chain_entry(f.activation, upstream, jacobian, n))
        if f.index == depth:  # one simplification per form, shared by every unit and the matrix program
            definition = Entries(n, 1, _simplified_entry(chain, f.a, f.z, target, f.index, upstream, jacobian))
        else:
            definition = chain
        layers.append(
            LayerDerivation(
                **vars(f),
                upstream=upstream,
                local_jacobian=jacobian,
                delta=names.vector(f"delta{f.index}", _layer_latex(r"\delta", f.index), n),
                delta_chain=chain,
                delta_definition=definition,
            )
        )
        above = layers[-1]
    layers.reverse()

    gradient_definitions: dict[str, Entries] = {}
    for layer in layers:
        rows, cols = layer.weight.shape
        # SymPy's index forms Σ_i δ_i ∂z_i/∂W_pq = δ_p a_q and Σ_i δ_i ∂z_i/∂b_p = δ_p, at each entry
        bases = {indexed_delta: layer.delta, indexed_a: layer.inputs}
        gradient_definitions[f"W{layer.index}"] = Entries(rows, cols, entry_function("dL_dW", bases, _symbol_product))
        if layer.bias is not None:
            gradient_definitions[f"b{layer.index}"] = Entries(rows, 1, entry_function("dL_db", bases))
    gradient_definitions = {name: gradient_definitions[name] for name in network.parameter_shapes}

    return ElementwiseDerivation(symbols, tuple(layers), loss_terms, loss_sum, gradient_definitions, names)


# The builders of one entry each (closures over the layer's Entries).


def _z_entry(weight: Entries, inputs: Entries, bias: Entries | None):
    def build(i: int, _: int) -> sympy.Expr:
        terms = [_symbol_product(weight[i, j], inputs[j]) for j in range(weight.cols)]
        return _row_sum(iter([*terms, bias[i]] if bias is not None else terms))

    return build


def _a_entry(activation: Activation, z: Entries):
    if activation.elementwise:
        return lambda i, _: activation.function(z[i])
    total: list[sympy.Expr] = []  # softmax's shared denominator, built once for every unit

    def build(i: int, _: int) -> sympy.Expr:
        if not total:
            total.append(_row_sum(sympy.exp(z[k]) for k in range(len(z))))
        return sympy.exp(z[i]) / total[0]

    return build


def _loss_derivative(loss_rule, output: Entries, target: Entries, n: int, scale: sympy.Expr):
    """∂ℓ/∂a_L[k]: ``sympy.diff`` of the loss's per-unit term, taken once on generic symbols and renamed per unit
    (the loss is Σ_k φ(a_k, y_k), so only unit k's term depends on a_k)."""
    prediction, truth = sympy.Symbol("a", real=True), sympy.Symbol("y", real=True)
    derivative = sympy.diff(loss_rule.per_unit(prediction, truth, n), prediction)
    return lambda k, _: scale * instantiate(derivative, {prediction: output[k], truth: target[k]})


def _hidden_upstream(above: LayerDerivation):
    """Σ_i δ_{l+1}[i] ∂z_{l+1}[i]/∂a_l[j], the derivative being SymPy's index-form W_ij (``input_derivative``)."""
    return lambda j, _: _row_sum(
        _symbol_product(above.input_derivative(i, j), above.delta[i]) for i in range(len(above.z))
    )


def _jacobian_entry(activation: Activation, z: Entries, a: Entries):
    if activation.elementwise:  # diagonal: the n² − n zeros are never built
        return lambda k, i: activation.derivative(z[i], a[i]) if k == i else sympy.S.Zero
    return lambda k, i: activation.jacobian(z, a, k, i)


def _chain_entry(activation: Activation, upstream: Entries, jacobian: Entries, n: int):
    if activation.elementwise:
        return lambda i, _: upstream[i] * jacobian[i, i]
    return lambda i, _: _row_sum(upstream[k] * jacobian[k, i] for k in range(n))


def _simplified_entry(
    chain: Entries, a: Entries, z: Entries, target: Entries, layer: int, upstream: Entries, jacobian: Entries
):
    """δ_L[i] simplified once per form (``smallest_per_unit``), so that the cost is linear in the width.

    With reduction="mean" ∂ℓ/∂a_L carries the 1/B as a factor and the Jacobian has none: the sum's δ is
    simplified and 1/B put back in front (cancelling with B inside took 3.5 s at a softmax width of 20 and
    105 s at 40). A softmax couples the units, δ_i = Σ_k g_k ∂a_k/∂z_i with ∂a_k/∂z_i = a_k (𝟙[k = i] − a_i):
    each g_k a_k is simplified on its own generic form (bce's collapses to (a_k − y_k)/(1 − a_k)) rather than
    cancelling the whole n-term sum over a common denominator (70 s for a bce at width 10).
    """
    a_all, z_all, y_all = (matrix_symbol(name) for name in (f"a{layer}", f"z{layer}", "y"))
    x_all = matrix_symbol("x")  # in the batch size B of reduction="mean", the same for every unit

    def generic(k: int) -> dict[Symbol, Symbol]:
        return {a[k]: a_all, z[k]: z_all, target[k]: y_all, x_all: x_all}

    def per_sum(expression: sympy.Expr) -> sympy.Expr:  # the expression with B = 1: the sum's share
        return expression.xreplace({BATCH_SIZE: sympy.S.One})

    def build(i: int, _: int) -> sympy.Expr:
        scale = 1 / BATCH_SIZE if chain[i].has(BATCH_SIZE) else sympy.S.One
        terms = []
        for k in range(len(a)):
            rest = jacobian[k, i] / a[k]  # (𝟙[k = i] − a_i) for softmax
            if any(power.base == a[k] and power.exp.is_negative for power in rest.atoms(sympy.Pow)):
                return scale * smallest_per_unit(per_sum(chain[i]), generic(i))  # a Jacobian of another shape
            terms.append(smallest_per_unit(per_sum(upstream[k] * a[k]), generic(k)) * rest)
        return scale * sympy.Add(*terms)

    def build_elementwise(i: int, _: int) -> sympy.Expr:
        scale = 1 / BATCH_SIZE if chain[i].has(BATCH_SIZE) else sympy.S.One
        return scale * smallest_per_unit(per_sum(chain[i]), generic(i))

    return build_elementwise if jacobian.cols and _diagonal(jacobian) else build


def _diagonal(jacobian: Entries) -> bool:
    """An element-wise activation's Jacobian (0 off the diagonal); read on two entries, not built whole."""
    return jacobian.rows == 1 or jacobian[1, 0] == 0


# -- the matrix program's output-layer lines at unit level, for the element-wise compiled form -------------


class stacked(sympy.Function):  # noqa: N801
    """A layer's units (each one row, a value per sample) as one [n, B] matrix: what a function over a
    whole layer (softmax, its largest unit) reads in the element-wise code."""


class unit_of(sympy.Function):  # noqa: N801
    """Unit ``index`` (0-based) of a named [n, B] intermediate: one row, a value per sample."""

    nargs = 2


# The matrix program's functions of a whole layer, each computed once at unit level as one named [n, B]
# matrix that every unit indexes: softmax (finite where e^z / Σ e^z overflows), and the largest unit and the
# softmax without it that the stable bce-after-softmax δ reads (``_matrix.STABLE_OUTPUT_DELTAS``).
_LAYER_FUNCTIONS = (softmax, max_mask, softmax_without_max)


class UnitProgram:
    """Matrix-program lines rewritten one unit at a time, each per-sample reduction computed once.

    The matrix program writes the output layer's δ over whole [n, B] matrices, with a sum over the units
    (``unit_sum``) where the softmax couples them, and finite forms where the chain rule as written is not
    (``_matrix.STABLE_OUTPUT_DELTAS``). Here each unit's line is that expression at unit i: a matrix symbol
    becomes its unit i; each ``unit_sum`` (and log-sum-exp) one named per-sample value, a line of its own
    shared by every unit, as SymPy's cse would name a repeated subexpression, so that each unit's line stays
    O(1) and the program linear in the width; each function of the whole layer (softmax, ...) one named
    [n, B] matrix that every unit indexes. (``sympy.cse`` itself is not used: it would also name e^{z_i}
    and every small repeat, and its search for common sub-sums over n sums of n terms is what is avoided.)

    ``units`` maps the matrix symbols (z_L, a_L, y) to the element-wise symbols of their units; ``inputs``
    are the matrix symbols that are the function's own [n, B] arguments (y), read whole as they are.
    """

    def __init__(self, units: Mapping[Symbol, Entries], inputs: frozenset[Symbol] = frozenset()):
        self.units: dict[Symbol, Entries | list[Symbol]] = dict(units)
        self.width = len(next(iter(self.units.values())))
        self.inputs = inputs
        self.layers: dict[sympy.Expr, Symbol] = {}  # matrix expression -> the [n, B] symbol holding it
        self.shared: dict[sympy.Expr, Symbol] = {}  # unit_sum(...) -> the per-sample symbol holding it
        self._count = {"sum": 0, "logsumexp": 0}
        self._lines: list[tuple[Symbol, sympy.Expr]] = []
        self._at: dict[tuple[sympy.Expr, int], sympy.Expr] = {}

    def define(
        self, target: Symbol, expression: sympy.Expr, units: Entries | None = None
    ) -> list[tuple[Symbol, sympy.Expr]]:
        """The lines of the matrix line ``target = expression``, in evaluation order: one per unit (into
        ``units``, or new symbols ``target[k]``) after the shared lines they read, or one [n, B] line when it
        is a function of the whole layer (``max_mask(z)``)."""
        if units is None and isinstance(expression, _LAYER_FUNCTIONS):
            self.layers[target] = self._layer_line(Symbol(target.name), expression)
            return self._take()
        if units is None:
            units = [Symbol(f"{target.name}[{k + 1}]") for k in range(self.width)]
        self.units[target] = units
        for k in range(self.width):
            definition = self.at(expression, k)
            self._lines.append((units[k], definition))
        return self._take()

    def value(self, target: Symbol, expression: sympy.Expr) -> list[tuple[Symbol, sympy.Expr]]:
        """The lines of a per-sample value ``target = expression`` (the loss), which has no unit of its own."""
        definition = self.at(expression, 0)
        self._lines.append((target, definition))
        return self._take()

    def at(self, expression: sympy.Expr, i: int) -> sympy.Expr:
        """``expression`` (matrix level) at unit ``i`` (0-based)."""
        key = (expression, i)
        if key not in self._at:
            self._at[key] = self._rewrite(expression, i)
        return self._at[key]

    def _take(self) -> list[tuple[Symbol, sympy.Expr]]:
        lines, self._lines = self._lines, []
        return lines

    def _rewrite(self, expression: sympy.Expr, i: int) -> sympy.Expr:
        if expression in self.units:
            return self.units[expression][i]
        if expression in self.layers:
            return unit_of(self.layers[expression], i)
        if isinstance(expression, (unit_sum, unit_logsumexp)):
            return self._shared(expression)
        if isinstance(expression, _LAYER_FUNCTIONS):
            return unit_of(self._layer(expression), i)
        if not expression.args or isinstance(expression, batch_size):
            return expression
        return expression.func(*(self.at(argument, i) for argument in expression.args))

    def _shared(self, expression: sympy.Expr) -> Symbol:
        """Σ_k (or log Σ_k e^) of the argument's units: one line, computed once for every unit."""
        if expression not in self.shared:
            (argument,) = expression.args
            if isinstance(expression, unit_sum):
                kind, value = "sum", sympy.Add(*(self.at(argument, k) for k in range(self.width)))
            elif argument in self.units or argument in self.layers:  # the layer's [n, B] matrix, stacked once
                kind, value = "logsumexp", unit_logsumexp(self._layer(argument))
            else:
                kind, value = "logsumexp", logsumexp(*(self.at(argument, k) for k in range(self.width)))
            self._count[kind] += 1
            symbol = Symbol(f"{kind}[{self._count[kind]}]")
            self._lines.append((symbol, value))
            self.shared[expression] = symbol
        return self.shared[expression]

    def _layer(self, expression: sympy.Expr) -> Symbol:
        """The [n, B] symbol holding a matrix expression: a unit-level symbol's units stacked, an input as it
        is, a function of the whole layer computed on its arguments' [n, B] symbols."""
        if expression not in self.layers:
            if expression in self.inputs:
                self.layers[expression] = expression
            elif expression in self.units:
                symbol = Symbol(expression.name)
                self._lines.append((symbol, stacked(*self.units[expression])))
                self.layers[expression] = symbol
            elif isinstance(expression, _LAYER_FUNCTIONS):
                name = "_".join([type(expression).__name__, *(str(a) for a in expression.args if a.is_Symbol)])
                self.layers[expression] = self._layer_line(Symbol(name), expression)
            else:
                raise NotImplementedError(f"no [n, B] form at unit level for {expression}")
        return self.layers[expression]

    def _layer_line(self, target: Symbol, expression: sympy.Expr) -> Symbol:
        self._lines.append((target, expression.func(*(self._layer(argument) for argument in expression.args))))
        return target
