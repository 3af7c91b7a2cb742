"""derive: the chain rule over named intermediates, for one sample (a column of the batch).

The forward pass names every pre-activation z_l[i] and output a_l[i]; the backward pass names every
δ_l[i] = ∂L/∂z_l[i]:

    δ_L[i] = Σ_k ∂L/∂a_L[k] · ∂a_L[k]/∂z_L[i]              (∂L/∂a_L by sympy.diff of the loss)
    δ_l[j] = (Σ_i W_{l+1}[i, j] δ_{l+1}[i]) · f_l'(z_l[j])  (the tutorial's reused red box)
    ∂L/∂W_l[i, j] = δ_l[i] a_{l-1}[j],   ∂L/∂b_l[i] = δ_l[i]

so the program stays linear in the network's size. The closed form (everything substituted back into
x, y and the parameters) is built on demand, and refused above a size budget rather than left to hang.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy
from sympy import Matrix, Symbol

from ._errors import ExpressionTooLarge, NetworkError, NetworkTypeError
from ._functions import batch_sum, matmul, transpose, unit_sum
from ._network import Network
from ._rules import ACTIVATIONS, LOSSES, Activation

DEFAULT_CLOSED_FORM_BUDGET = 200_000
"""Largest closed form (in expression-tree nodes, summed over a parameter's entries) built by default."""


# --- symbols ---------------------------------------------------------------------------------------


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


def _smallest(expression: sympy.Expr) -> sympy.Expr:
    """The smallest of the expression, its ``cancel`` and its ``factor`` (all equal).

    This is where BCE after a sigmoid collapses to ŷ − y: the chain-rule product
    (−y/ŷ + (1−y)/(1−ŷ)) · ŷ(1−ŷ) cancels, which also removes the division by ŷ(1−ŷ) that overflows
    when the sigmoid saturates. Only the output layer's δ is passed here: it involves one layer's
    symbols, so it stays small whatever the depth.
    """
    candidates = [expression, sympy.cancel(expression), sympy.factor(expression)]
    return min(candidates, key=sympy.count_ops)


# --- the structured derivation --------------------------------------------------------------------


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
    shapes: Mapping[Symbol, tuple[int, int | None]]  # None: the batch dimension


def _derive_matrix_program(network: Network) -> MatrixProgram:
    def sym(name: str) -> Symbol:
        return Symbol(name, real=True)

    x, y = sym("x"), sym("y")
    params = {name: sym(name) for name in network.parameter_shapes}
    shapes: dict[Symbol, tuple[int, int | None]] = {x: (network.sizes[0], None), y: (network.sizes[-1], None)}
    shapes.update({params[name]: shape for name, shape in network.parameter_shapes.items()})
    steps: list[MatrixStep] = []

    def emit(name: str, expression: sympy.Expr, role: str, layer: int, rows: int, cols: int | None) -> Symbol:
        target = sym(name)
        steps.append(MatrixStep(target, expression, role, layer))
        shapes[target] = (rows, cols)
        return target

    activations = [ACTIVATIONS[name] for name in network.activations]
    z_of, a_of = {}, {0: x}
    for layer in range(1, network.depth + 1):
        width = network.sizes[layer]
        pre = matmul(params[f"W{layer}"], a_of[layer - 1])
        if network.bias:
            pre = pre + params[f"b{layer}"]
        z_of[layer] = emit(f"z{layer}", pre, "forward", layer, width, None)
        a_of[layer] = emit(
            f"a{layer}", activations[layer - 1].matrix_forward(z_of[layer]), "forward", layer, width, None
        )

    depth, rule = network.depth, LOSSES[network.loss]
    output = a_of[depth]
    per_unit = rule.per_unit(output, y, network.sizes[-1])
    loss = emit("loss", batch_sum(unit_sum(per_unit)), "loss", depth, 1, 1)

    # ∂ℓ/∂a_L element-wise: every loss in the table is a sum of per-unit terms φ(ŷ_k, y_k)
    upstream = sympy.diff(per_unit, output)
    gradients: dict[str, Symbol] = {}
    for layer in range(depth, 0, -1):
        chain = activations[layer - 1].matrix_backward(z_of[layer], a_of[layer], upstream)
        if layer == depth:
            chain = _smallest(chain)
        delta = emit(f"delta{layer}", chain, "delta", layer, network.sizes[layer], None)
        gradients[f"W{layer}"] = emit(
            f"grad_W{layer}",
            matmul(delta, transpose(a_of[layer - 1])),
            "gradient",
            layer,
            *network.parameter_shapes[f"W{layer}"],
        )
        if network.bias:
            gradients[f"b{layer}"] = emit(
                f"grad_b{layer}", batch_sum(delta), "gradient", layer, network.sizes[layer], 1
            )
        upstream = matmul(transpose(params[f"W{layer}"]), delta)
    ordered = {name: gradients[name] for name in network.parameter_shapes}
    return MatrixProgram((x, y, *params.values()), tuple(steps), loss, ordered, shapes)


@dataclass(frozen=True, eq=False)
class Derivation:
    """The result of :func:`derive`: the structured program, and the closed form on demand.

    ``symbols`` maps "x", "y", "W1", "b1", ... to matrices of SymPy symbols; ``layers`` holds the named
    intermediates and their definitions; ``program`` is the straight-line element-wise program;
    ``matrix_program`` the same at matrix level; ``loss`` and ``gradients`` are the closed forms.
    """

    network: Network
    symbols: Mapping[str, Matrix]
    layers: tuple[LayerDerivation, ...]
    loss_definition: sympy.Expr  # ℓ in a_L and y
    gradient_definitions: Mapping[str, Matrix]  # ∂L/∂θ in δ and a symbols
    matrix_program: MatrixProgram
    latex_names: Mapping[Symbol, str] = field(repr=False)
    closed_form_budget: int = DEFAULT_CLOSED_FORM_BUDGET

    # -- the program ---------------------------------------------------------------------------------

    @functools.cached_property
    def program(self) -> tuple[tuple[Symbol, sympy.Expr], ...]:
        """``(symbol, definition)`` in evaluation order: z1, a1, ..., z_L, a_L, δ_L, ..., δ_1."""
        lines: list[tuple[Symbol, sympy.Expr]] = []
        for layer in self.layers:
            lines += zip(layer.z, layer.z_definition)
            lines += zip(layer.a, layer.a_definition)
        for layer in reversed(self.layers):
            lines += zip(layer.delta, layer.delta_definition)
        return tuple(lines)

    def operation_counts(self) -> dict[str, int]:
        """Arithmetic operations (``sympy.count_ops``) of the forward pass and of the gradient program.

        ``forward``: every z, a and the loss; ``gradient``: every δ and every gradient entry, given the
        forward values. The chain rule over named intermediates keeps their ratio small at any size.
        """
        forward = sum(sympy.count_ops(d) for layer in self.layers for d in (*layer.z_definition, *layer.a_definition))
        forward += sympy.count_ops(self.loss_definition)
        gradient = sum(sympy.count_ops(d) for layer in self.layers for d in layer.delta_definition)
        gradient += sum(sympy.count_ops(entry) for matrix in self.gradient_definitions.values() for entry in matrix)
        return {"forward": forward, "gradient": gradient}

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.network.parameter_shapes)

    # -- closed forms --------------------------------------------------------------------------------

    @functools.cached_property
    def _closed_sizes(self) -> dict[Symbol, int]:
        """Tree size each intermediate would have once substituted back (cheap: no substitution)."""
        sizes: dict[Symbol, int] = {}
        for symbol, definition in self.program:
            sizes[symbol] = _tree_size(definition, sizes)
        return sizes

    @functools.cached_property
    def _closed_values(self) -> dict[Symbol, sympy.Expr]:
        values: dict[Symbol, sympy.Expr] = {}
        for symbol, definition in self.program:
            values[symbol] = definition.xreplace(values)
        return values

    def closed_form_size(self, name: str) -> int:
        """Estimated tree size of the closed form of ∂L/∂``name`` (or of the loss, for ``"loss"``)."""
        if name == "loss":
            return _tree_size(self.loss_definition, self._closed_sizes)
        self._check_parameter(name)
        return sum(_tree_size(entry, self._closed_sizes) for entry in self.gradient_definitions[name])

    def substitute(self, expression: sympy.Expr) -> sympy.Expr:
        """Replace every named intermediate in ``expression`` by its closed form."""
        return expression.xreplace(self._closed_values)

    def closed_form(self, name: str, budget: int | None = None) -> Matrix | sympy.Expr:
        """The closed form of ∂L/∂``name`` (a Matrix shaped like the parameter) or of ``"loss"``.

        Raises ExpressionTooLarge when its estimated size exceeds ``budget`` (default: the derivation's
        ``closed_form_budget``) instead of building an expression too large to use.
        """
        budget = self.closed_form_budget if budget is None else budget
        size = self.closed_form_size(name)
        if size > budget:
            raise ExpressionTooLarge(
                f"the closed form of {'the loss' if name == 'loss' else 'dL/d' + name} would have about "
                f"{size:,} expression nodes, over the budget of {budget:,}; use the structured program "
                "(Derivation.program / matrix_program, or compile_gradients), or raise the budget with "
                f"derive(network, closed_form_budget={size}) or closed_form({name!r}, budget={size})"
            )
        if name == "loss":
            return self.substitute(self.loss_definition)
        return self.gradient_definitions[name].xreplace(self._closed_values)

    @functools.cached_property
    def loss(self) -> sympy.Expr:
        """The per-sample loss in x, y and the parameters (the batch loss sums it over samples)."""
        return self.closed_form("loss")

    @functools.cached_property
    def gradients(self) -> dict[str, Matrix]:
        """Closed-form ∂L/∂θ for every parameter θ, each a Matrix shaped like θ."""
        return {name: self.closed_form(name) for name in self.parameters}

    # -- numbers ---------------------------------------------------------------------------------------

    def evaluate(self, values: Mapping[str, object], closed_form: bool = False, digits: int = 20) -> dict[str, object]:
        """Evaluate the loss and every gradient at ``values`` with SymPy's arbitrary precision.

        ``values`` maps "x", "y" and each parameter to nested lists (x and y may hold a batch, one sample
        per column; the loss and gradients are summed over it). Returns ``{"loss": float, name: rows}``.
        By default it runs the straight-line program, which works at any size; ``closed_form=True``
        substitutes into the closed forms instead (small networks; subject to the size budget).
        """
        if closed_form:
            targets = [(self.loss, None), *((self.gradients[name], name) for name in self.parameters)]
        else:
            targets = [
                (self.loss_definition, None),
                *((self.gradient_definitions[name], name) for name in self.parameters),
            ]
        totals: dict[str, object] = {"loss": 0.0, **{name: None for name in self.parameters}}
        for env in self._sample_environments(values, run_program=not closed_form, digits=digits):
            for expression, name in targets:
                value = expression.xreplace(env).evalf(digits)
                if name is None:
                    totals["loss"] += float(value)
                    continue
                rows = [[float(entry) for entry in value.row(i)] for i in range(value.rows)]
                previous = totals[name]
                totals[name] = (
                    rows
                    if previous is None
                    else [[s + v for s, v in zip(srow, vrow)] for srow, vrow in zip(previous, rows)]
                )
        return totals

    def forward(self, values: Mapping[str, object], digits: int = 20) -> dict[str, list[list[float]]]:
        """The forward pass at ``values``: ``{"z1": rows, "a1": rows, ...}``, one column per sample."""
        columns: dict[str, list[list[float]]] = {}
        for env in self._sample_environments(values, run_program=True, digits=digits):
            for layer in self.layers:
                for name, symbols in ((f"z{layer.index}", layer.z), (f"a{layer.index}", layer.a)):
                    columns.setdefault(name, []).append([float(env[s]) for s in symbols])
        return {name: [list(row) for row in zip(*cols)] for name, cols in columns.items()}

    def _sample_environments(self, values: Mapping[str, object], run_program: bool, digits: int):
        """For each sample (column): a map from every input symbol (and intermediate) to its number."""
        numbers = self._numeric_inputs(values)
        for column in range(len(numbers["x"][0])):
            env: dict[Symbol, sympy.Expr] = {}
            for name, matrix in self.symbols.items():
                for (i, j), symbol in _entries(matrix):
                    env[symbol] = sympy.Float(numbers[name][i][column if name in ("x", "y") else j], digits)
            if run_program:
                for symbol, definition in self.program:
                    env[symbol] = definition.xreplace(env).evalf(digits)
            yield env

    def _numeric_inputs(self, values: Mapping[str, object]) -> dict[str, list[list[float]]]:
        if not isinstance(values, Mapping):
            raise NetworkTypeError(f"values must be a mapping of names to nested lists; got {type(values).__name__}")
        expected = ("x", "y", *self.parameters)
        missing = [name for name in expected if name not in values]
        unknown = [name for name in values if name not in expected]
        if missing or unknown:
            raise NetworkError(
                f"values must give exactly {', '.join(expected)}; "
                f"missing {missing or 'none'}, unknown {unknown or 'none'}"
            )
        shapes = dict(self.network.parameter_shapes)
        batch = None
        numbers: dict[str, list[list[float]]] = {}
        for name in expected:
            try:
                rows = [[float(v) for v in row] for row in values[name]]
            except (TypeError, ValueError) as error:
                raise NetworkTypeError(f"values[{name!r}] must be a nested list of numbers (rows); {error}") from None
            columns = {len(row) for row in rows}
            if len(columns) != 1:
                raise NetworkError(f"values[{name!r}] has rows of different lengths {sorted(columns)}")
            shape = (len(rows), columns.pop())
            if name in ("x", "y"):
                want = self.network.sizes[0] if name == "x" else self.network.sizes[-1]
                if shape[0] != want or (batch is not None and shape[1] != batch):
                    raise NetworkError(
                        f"values[{name!r}] has shape {list(shape)}; expected [{want}, B] (one sample per column, "
                        "the same B for x and y)"
                    )
                batch = shape[1]
            elif shape != shapes[name]:
                raise NetworkError(f"values[{name!r}] has shape {list(shape)}; expected {list(shapes[name])}")
            numbers[name] = rows
        return numbers

    # -- explanations (implemented in _render) -------------------------------------------------------

    def latex(self, document: bool = False, values: Mapping[str, object] | None = None) -> str:
        """The derivation as LaTeX: a fragment, or a standalone document that pdflatex compiles."""
        from ._render import render_latex

        return render_latex(self, document=document, values=values)

    def markdown(self, values: Mapping[str, object] | None = None) -> str:
        """The derivation as Markdown with ``$$`` display math (GitHub, Jupyter)."""
        from ._render import render_markdown

        return render_markdown(self, values=values)

    def text(self, values: Mapping[str, object] | None = None) -> str:
        """The derivation as plain text for a terminal."""
        from ._render import render_text

        return render_text(self, values=values)

    def _repr_latex_(self) -> str:
        return self.latex()

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def _check_parameter(self, name: str) -> None:
        if name not in self.gradient_definitions:
            raise NetworkError(f"unknown parameter {name!r}; this network has {', '.join(self.parameters)}")


def _entries(matrix: Matrix):
    for i in range(matrix.rows):
        for j in range(matrix.cols):
            yield (i, j), matrix[i, j]


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


def _tree_size(expression: sympy.Expr, sizes: Mapping[Symbol, int]) -> int:
    """Nodes of ``expression`` as a tree, counting each named intermediate as its own closed size."""
    if expression in sizes:
        return sizes[expression]
    if not expression.args:
        return 1
    return 1 + sum(_tree_size(argument, sizes) for argument in expression.args)


def derive(network: Network, closed_form_budget: int = DEFAULT_CLOSED_FORM_BUDGET) -> Derivation:
    """Derive ∂L/∂θ for every parameter θ of ``network`` by the chain rule over named intermediates."""
    if not isinstance(network, Network):
        raise NetworkTypeError(f"derive takes a Network; got {type(network).__name__} ({network!r:.80})")
    if isinstance(closed_form_budget, bool) or not isinstance(closed_form_budget, int) or closed_form_budget < 0:
        raise NetworkError(f"closed_form_budget must be a non-negative integer; got {closed_form_budget!r}")

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

    # backward: name every δ, from the loss down
    layers: list[LayerDerivation] = []
    upstream = Matrix([sympy.diff(loss_definition, a_k) for a_k in output])
    for layer, activation, weight, bias, inputs, z, z_def, a, a_def in reversed(forward):
        n = len(z)
        z_list, a_list = list(z), list(a)
        if activation.elementwise:  # diagonal Jacobian: skip the n² zero entries
            jacobian = sympy.diag(*(activation.jacobian(z_list, a_list, i, i) for i in range(n)))
            chain = Matrix([upstream[i] * jacobian[i, i] for i in range(n)])
        else:
            jacobian = Matrix([[activation.jacobian(z_list, a_list, k, i) for i in range(n)] for k in range(n)])
            chain = Matrix([sympy.Add(*(upstream[k] * jacobian[k, i] for k in range(n))) for i in range(n)])
        definition = chain.applyfunc(_smallest) if layer == depth else chain
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

    return Derivation(
        network=network,
        symbols=symbols,
        layers=tuple(layers),
        loss_definition=loss_definition,
        gradient_definitions=gradient_definitions,
        matrix_program=_derive_matrix_program(network),
        latex_names=latex_names,
        closed_form_budget=closed_form_budget,
    )
