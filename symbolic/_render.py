"""What the derivation says: a sequence of blocks (headings, prose, equations, the notation table).

``explain`` walks the derivation once and produces format-neutral blocks; ``_formats`` typesets them as
LaTeX, Markdown and text, so the formats always say the same thing. An equation is data (``Chain``): a
chain of sides, each a SymPy tree (``Math.tree``, printed by ``_printers``) and, where the side stands for
something, its value (``Math.value``): an expression in the derivation's symbols, or a Matrix of them
for a matrix equation (evaluated on the layer's own symbols, a batch of two samples where the batch
matters). ``tests/test_steps.py`` checks that each value equals the next; ``tests/test_printed.py``
parses each printed side back and compares it with the tree's value. Prose that claims something is
generated from a fact checked here (``output_error_is_difference``) or from the form that exists.
"""

from __future__ import annotations

import functools
import math
import operator
from collections import ChainMap
from collections.abc import Mapping, Sequence

import sympy
from sympy import Eq, HadamardProduct, IndexedBase, MatrixSymbol, OneMatrix, Sum, Symbol, Transpose

from . import _index as index_facts
from ._blocks import Block, Chain, Deferred, Frame, FrameEnd, Heading, Math, Notation, Prose, Shapes
from ._derivation import Derivation, derive
from ._elementwise import BATCH_SIZE, LayerDerivation
from ._functions import (
    ActivationBackwardBase,
    DefinedFunctionBase,
    batch_size,
    batch_sum,
    logsumexp,
    matmul,
    step,
    transpose,
    unit_sum,
)
from ._matrix import reduction_scale
from ._network import Network
from ._printers import (
    Applied,
    Boxed,
    Elementwise,
    Factors,
    Indicator,
    LatexNotation,
    Partial,
    Prime,
    Scientific,
    Shown,
    TextNotation,
)
from ._rules import LOSSES
from ._tutorial import TUTORIAL
from ._words import words

ENTRIES_SHOWN = 3  # a layer with more units shows its first unit, standing for all
TERMS_SHOWN = 4  # a sum with more terms is written with Σ
GENERAL_FROM_DEPTH = 4  # from this depth on, the hidden layers get one general layer-l step
CLOSED_FORM_NODES = 60  # closed forms shown while this small (estimated nodes per entry) ...
CLOSED_FORM_SHOWN = 400  # ... and this short (LaTeX characters)
NUMBERS_SHOWN = (6, 6)  # the largest matrix of numbers printed in full (rows, columns) ...
VECTOR_SHOWN = 6  # ... and the longest vector
# SymPy evaluates the numbers entry by entry with 20 digits: about 0.2 ms a parameter and sample (784-128-10
# took 24 s, 5000-5000-5000 ran out of memory). Above this many the page says so instead.
NUMBERS_LIMIT = 10_000
BATCH = 2  # samples in the batch on which the matrix form's sums over samples are checked
LOSS = Symbol("L")
ELLIPSIS = Symbol("…")
INDEX_I, INDEX_J, INDEX_K = sympy.symbols("i j k", integer=True, positive=True)


# --- facts -------------------------------------------------------------------------------------------------


# δ_L depends on the output activation, the loss and the reduction, never on the widths; expanding it costs the
# square of the output width (softmax couples every unit), so the fact is decided on an output layer this wide.
PROOF_WIDTH = 3


def output_error_is_difference(derivation: Derivation) -> str | None:
    """Whether SymPy proves δ_L = a_L − y (times the reduction's 1/B for the mean): ``"always"``,
    ``"probability target"`` (given Σ y = 1), or None."""
    network = derivation.network
    if network.sizes[-1] > PROOF_WIDTH or network.depth > 1:
        narrow = Network(
            [1, PROOF_WIDTH],
            [network.activation_rules[-1]],
            network.loss_rule,
            reduction=network.reduction,
        )
        return output_error_is_difference(derive(narrow))
    layer = derivation.layers[-1]
    y = derivation.symbols["y"]
    scale = reduction_scale(network)
    differences = [d - scale * (a - t) for d, a, t in zip(layer.delta_definition, layer.a, y)]
    if all(_is_zero(d) for d in differences):
        return "always"
    if not layer.activation.elementwise and len(y) > 1:  # softmax: the entries of a sum to 1 by definition
        last = {y[-1]: 1 - sympy.Add(*y[:-1])}
        if all(_is_zero(d.xreplace(last)) for d in differences):
            return "probability target"
    return None


# Points at which a non-zero difference is screened out before simplify (0.25 s on the tutorial, and its first
# call imports sympy.physics): distinct rationals in (0, 1), where every activation and loss is defined.
_SCREEN = (sympy.Rational(2, 7), sympy.Rational(3, 11))


def _is_zero(expression: sympy.Expr) -> bool:
    """Proved zero by SymPy: expanded (fast; enough for polynomials in a and y), else simplified. A difference
    that is not 0 at a point of the screen is not identically 0; only the rest go to simplify."""
    if sympy.expand(expression) == 0:
        return True
    free = sorted(expression.free_symbols, key=str)
    for offset in _SCREEN:
        point = {symbol: offset + sympy.Rational(index, 13 * len(free)) for index, symbol in enumerate(free)}
        value = expression.xreplace(point).evalf(30)
        if value.is_number and value.is_comparable and abs(value) > 1e-20:
            return False
    return sympy.simplify(expression) == 0


# --- writing -------------------------------------------------------------------------------------------


def _activation_symbol(layer: LayerDerivation) -> Symbol:
    return Symbol(f"activation {layer.activation.name}")


class _Writer:
    """Prints trees through the two printers and builds prose from the language's words."""

    def __init__(self, derivation: Derivation, lang: str):
        self.derivation, self.words = derivation, words(lang)
        own: dict[sympy.Basic, str] = {}
        # a view, not a copy: the derivation names its entries' LaTeX as they are built (a lazy Mapping)
        latex_names = ChainMap(own, derivation.latex_names)
        self.latex_names = latex_names  # names added later (a page's own symbols) go to ``own``
        text_names: dict[sympy.Basic, str] = {Symbol("y_hat"): "ŷ", Symbol("ell"): "ℓ", Symbol("f_l"): "f_l"}
        latex_names.update(
            {
                Symbol("y_hat"): r"\hat{y}",
                Symbol("ell"): r"\ell",
                Symbol("f_l"): "f_l",
                ELLIPSIS: r"\ldots",
                Symbol("logsumexp"): r"\operatorname{logsumexp}",
            }
        )
        for layer in derivation.layers:
            symbol = _activation_symbol(layer)
            latex_names[symbol] = layer.activation.latex
            text_names[symbol] = _activation_text(layer)
        self.latex, self.text = LatexNotation(latex_names), TextNotation(text_names)
        self._plain_latex, self._red_latex = self.latex, LatexNotation(latex_names, red_errors=True)
        self.explained: set[str] = set()  # activations whose derivative has been stated

    def name_errors(self) -> None:
        """From here on δ is printed red: the page has just named it, in its red box (the figure's δ are red too)."""
        self.latex = self._red_latex

    def show(self, tree: sympy.Basic, value: object = None) -> Math:
        return Math(tree, self.latex.doprint(tree), self.text.doprint(tree), value)

    def show_plain(self, tree: sympy.Basic) -> Math:
        """Notation as it reads before δ is named (the notation table): no δ red."""
        return Math(tree, self._plain_latex.doprint(tree), self.text.doprint(tree))

    def expr(self, expression: sympy.Basic) -> Math:
        """A derivation expression shown as it is (factors kept in their written order): its value is itself.

        A log-sum-exp over a whole wide layer is written of the layer's vector, logsumexp(a⁽ᴸ⁾), not of every entry.
        """
        shown = expression.replace(
            lambda e: isinstance(e, logsumexp) and len(e.args) > TERMS_SHOWN and all(a.is_Symbol for a in e.args),
            lambda e: Applied(Symbol("logsumexp"), _column(e.args[0].name.split("[")[0], 1)),
        )
        value = expression.replace(Boxed, lambda content: content)
        return self.show(shown, value.replace(Factors, lambda *factors: sympy.Mul(*factors)))

    def say(self, key: str, **pieces: object) -> Prose:
        """The sentence ``key`` with each {name} replaced: Math stays math, anything else becomes words."""
        template, parts = self.words[key], []
        while "{" in template:
            before, rest = template.split("{", 1)
            name, template = rest.split("}", 1)
            piece = pieces[name]
            parts += [before, piece] if isinstance(piece, Math) else [before + str(piece)]
        parts.append(template)
        merged: list[str | Math] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            elif part != "":
                merged.append(part)
        return Prose(tuple(merged))

    def heading(self, key: str, level: int = 2, **pieces: object) -> Heading:
        return Heading(self.words[key].format(**pieces), level)


def _activation_text(layer: LayerDerivation) -> str:
    """The activation's text symbol: how the text printer writes f(z), up to the parenthesis."""
    activation = layer.activation
    if not activation.elementwise:
        return activation.name
    printed = TextNotation({}).doprint(activation.function(Symbol("z")))
    return printed.split("(")[0] if printed.endswith("(z)") else activation.name


def _column(name: str, rows: int, columns: int = 1) -> MatrixSymbol:
    return MatrixSymbol(name, rows, columns)


def _base(name: str) -> IndexedBase:
    return IndexedBase(Symbol(name))


def _previous_name(layer: LayerDerivation) -> str:
    return "x" if layer.index == 1 else f"a{layer.index - 1}"


def _entries_of(derivation: Derivation) -> dict[str, sympy.Matrix]:
    """Every indexed name (W2, delta2, a1, x, ...) -> the Matrix of its entries' symbols."""
    table: dict[str, sympy.Matrix] = dict(derivation.symbols)
    for layer in derivation.layers:
        table.update({f"z{layer.index}": layer.z, f"a{layer.index}": layer.a, f"delta{layer.index}": layer.delta})
    return table


def expand_notation(tree: sympy.Basic, entries: Mapping[str, sympy.Matrix]) -> sympy.Expr:
    """What an index-notation tree means: each Σ written out, each W_{ij} the entry's symbol, 𝟙 as 0 or 1."""
    if isinstance(tree, Sum):
        variable, low, high = tree.limits[0]
        return sympy.Add(
            *(
                expand_notation(tree.function.xreplace({variable: sympy.Integer(v)}), entries)
                for v in range(int(low), int(high) + 1)
            )
        )
    if isinstance(tree, sympy.Indexed):
        matrix = entries[str(tree.base.label)]
        row, column = (tree.indices[0], tree.indices[1]) if len(tree.indices) == 2 else (tree.indices[0], sympy.S.One)
        if row.is_Integer and column.is_Integer:
            return matrix[int(row) - 1, int(column) - 1]
        return tree
    if isinstance(tree, Indicator):
        return Indicator(tree.args[0]).value()
    if isinstance(tree, Factors):
        return sympy.Mul(*(expand_notation(f, entries) for f in tree.args))
    if not tree.args or isinstance(tree, (Symbol, sympy.Number)):
        return tree
    expanded = tree.func(*(expand_notation(a, entries) for a in tree.args))
    if isinstance(expanded, (Indicator, Factors, Sum)):  # an index just became a number
        return expand_notation(expanded, entries)
    return expanded


def for_each_entry(tree: sympy.Basic, indices: Sequence[tuple[Symbol, int]], entries) -> sympy.Matrix:
    """The index-notation ``tree`` at every value of its free indices: a Matrix (one or two indices)."""
    (first, n_first), *rest = indices
    n_second = rest[0][1] if rest else 1

    def at(r: int, c: int) -> sympy.Expr:
        values = {first: sympy.Integer(r + 1)}
        if rest:
            values[rest[0][0]] = sympy.Integer(c + 1)
        return expand_notation(tree.xreplace(values), entries)

    return sympy.Matrix(n_first, n_second, lambda r, c: at(r, c))


def matrix_value(tree: sympy.Basic, table: Mapping[sympy.Basic, sympy.Matrix]) -> sympy.Matrix:
    """A matrix-notation tree evaluated with each matrix symbol (or f'(z) node) replaced by its entries."""
    replaced = tree.xreplace({symbol: sympy.ImmutableMatrix(_matrix(value)) for symbol, value in table.items()})
    return sympy.Matrix(replaced.doit())


def _matrix(entries) -> sympy.Matrix:
    """The derivation's lazily built entries (or any sequence of rows) as a SymPy Matrix."""
    return entries.as_matrix() if hasattr(entries, "as_matrix") else sympy.Matrix(entries)


def _batch(matrix: sympy.Matrix, copies: int = BATCH) -> sympy.Matrix:
    """A column of symbols as a batch: the first sample is the column itself, the others renamed copies."""
    matrix = _matrix(matrix)
    columns = [matrix]
    for sample in range(2, copies + 1):
        columns.append(matrix.applyfunc(lambda s, n=sample: Symbol(f"{s.name}@{n}", **s.assumptions0)))
    return sympy.Matrix.hstack(*columns)


def _sample(expression: sympy.Expr, sample: int) -> sympy.Expr:
    if sample == 1:
        return expression
    return expression.xreplace({s: Symbol(f"{s.name}@{sample}", **s.assumptions0) for s in expression.free_symbols})


def _shown(count: int) -> list[int]:
    """Which entries of a layer to spell out: all of a small layer, else the first one."""
    return list(range(count)) if count <= ENTRIES_SHOWN else [0]


def _is_long_sum(expression: sympy.Expr) -> bool:
    return isinstance(expression, sympy.Add) and len(expression.args) > TERMS_SHOWN


# --- the explanation ---------------------------------------------------------------------------------------


def explain(derivation: Derivation, values: Mapping[str, object] | None = None, lang: str = "en") -> list[Block]:
    """The derivation as blocks: notation, forward pass, chain rule layer by layer, matrix form, numbers."""
    w = _Writer(derivation, lang)
    network, layers = derivation.network, derivation.layers
    sizes = ", ".join(map(str, network.sizes))
    # why: gradient descent needs every ∂L/∂W, and backpropagation gets them by reusing δ (the lesson's first words)
    blocks: list[Block] = [
        w.say(
            "motivation_bias" if network.bias else "motivation",
            dW=w.show(Partial(LOSS, _column("W", 1))),
            delta=w.show(_column("delta", 1)),
        ),
        w.say("network", network=network.describe(lang), sizes=f"[{sizes}]"),
        w.heading("heading_notation"),
        w.heading("heading_forward"),
        *_forward(w),
        w.heading("heading_backward"),
        w.say("backward_intro"),
        w.heading("heading_output", 3, layer=network.depth),
        *_output_layer(w, layers[-1]),
    ]
    if network.depth >= GENERAL_FROM_DEPTH:
        blocks += [w.heading("heading_hidden", 3, top=network.depth - 1), *_general_layer(w, layers)]
    else:
        for layer in reversed(layers[:-1]):
            heading = w.heading("heading_layer", 3, layer=layer.index)
            blocks += [heading, *_hidden_layer(w, layer, layers[layer.index])]
    blocks += [w.heading("heading_matrix", 3), *_matrix_form(w)]
    blocks += _summary(w)
    blocks += _closed_forms(w)
    if values is not None:
        blocks += _numbers(w, values)
    # how the page was checked: at the end, once the reader knows what z, a and δ are
    blocks += [
        w.heading("heading_checked"),
        w.say(
            "what_is_derived",
            layer_map=w.show(Eq(_column("z", 1), _layer_map(network.bias), evaluate=False)),
            z=w.show(_column("z", 1)),
            a=w.show(_column("a", 1)),
            delta=w.show(_column("delta", 1)),
        ),
    ]
    where = blocks.index(w.heading("heading_notation")) + 1
    blocks.insert(where, _notation(w, blocks))  # written last: it lists only what the page uses
    return blocks


def _layer_map(bias: bool) -> sympy.Expr:
    """W a + b, or W a for a network without biases: what each layer computes, as the page says it."""
    product = _column("W", 1) * _column("a", 1)
    return product + _column("b", 1) if bias else product


def _trees(blocks: Sequence[Block]):
    """Every tree of mathematics the blocks print (equations' sides, math in sentences)."""
    for block in blocks:
        if isinstance(block, Chain):
            yield from (term.tree for term in block.terms)
        elif isinstance(block, Prose):
            yield from (part.tree for part in block.parts if isinstance(part, Math))


def _uses(blocks: Sequence[Block], *kinds: type) -> bool:
    """Whether any printed tree holds a node of one of ``kinds`` (the unit step prints as 𝟙[z > 0])."""
    return any(tree.atoms(*kinds) or any(isinstance(tree, k) for k in kinds) for tree in _trees(blocks))


def _shape(rows: object, columns: object) -> Shapes:
    return Shapes(rf"{rows} \times {columns}", f"{rows}×{columns}")


def _per_layer(shapes: Sequence[Shapes]) -> Shapes:
    """One shape per layer, layer 1 first (the header says so)."""
    return Shapes(", ".join(s.latex for s in shapes), ", ".join(s.text for s in shapes))


def _notation(w: _Writer, blocks: Sequence[Block]) -> Notation:
    derivation, network = w.derivation, w.derivation.network
    layers = derivation.layers
    general = {letter: _column(f"{letter}l", 1) for letter in ("W", "b", "z", "a", "delta")}
    show = w.show_plain  # the notation comes before δ is named: nothing red yet
    batch = [_shape(len(layer.z), "B") for layer in layers]
    rows = [
        (show(Symbol("x")), _shape(network.sizes[0], "B"), w.words["notation_x"].format(n=network.sizes[0])),
        (show(Symbol("y")), _shape(network.sizes[-1], "B"), w.words["notation_y"].format(n=network.sizes[-1])),
        (show(BATCH_SIZE), None, w.words["notation_B"]),
        (show(general["W"]), _per_layer([_shape(*layer.weight.shape) for layer in layers]), w.words["notation_W"]),
    ]
    if network.bias:
        rows.append((show(general["b"]), _per_layer([_shape(len(lay.z), 1) for lay in layers]), w.words["notation_b"]))
    rows += [
        (show(general["z"]), _per_layer(batch), w.words["notation_z"]),
        (show(general["a"]), _per_layer(batch), w.words["notation_a"]),
        (show(general["delta"]), _per_layer(batch), w.words["notation_delta"]),
    ]
    for layer in layers:
        used = [str(lay.index) for lay in layers if lay.activation.name == layer.activation.name]
        if used[0] == str(layer.index):
            name = layer.activation.name
            rows.append(
                (
                    show(_activation_symbol(layer)),
                    None,
                    w.words["notation_activation" if len(used) == 1 else "notation_activation_layers"].format(
                        name=name, layers=w.words["list_separator"].join(used)
                    ),
                )
            )
    if _uses(blocks, HadamardProduct):
        rows.append((show(HadamardProduct(_column("u", 1), _column("v", 1))), None, w.words["notation_hadamard"]))
    if _uses(blocks, OneMatrix):
        rows.append((show(OneMatrix(2, 1)), _shape("B", 1), w.words["notation_ones"]))
    if _uses(blocks, Indicator, step):
        rows.append((show(Indicator(Symbol("P"))), None, w.words["notation_indicator"]))
    header = (w.words["column_symbol"], w.words["column_shape"], w.words["column_meaning"])
    return Notation(header, tuple(rows))


def _forward(w: _Writer) -> list[Block]:
    derivation = w.derivation
    entries = _entries_of(derivation)
    blocks: list[Block] = [w.say("forward_names")]
    for layer in derivation.layers:
        l_, n, m = layer.index, len(layer.z), len(layer.inputs)
        weight, previous = _column(f"W{l_}", n, m), _column(_previous_name(layer), m)
        right = weight * previous + _column(f"b{l_}", n) if layer.bias is not None else weight * previous
        table = {weight: layer.weight, previous: layer.inputs, _column(f"b{l_}", n): layer.bias}
        table = {k: v for k, v in table.items() if v is not None}
        z = _column(f"z{l_}", n)
        blocks.append(Chain((w.show(z, layer.z), w.show(right, Deferred(matrix_value, right, table))), "definition"))
        a = _column(f"a{l_}", n)
        blocks.append(
            Chain(
                (w.show(a, layer.a), w.show(Elementwise(_activation_symbol(layer), z), layer.a_definition)),
                "definition",
            )
        )
    blocks.append(w.say("entry_by_entry"))
    for layer in derivation.layers:
        l_ = layer.index
        for i in _shown(len(layer.z)):
            if len(layer.inputs) > TERMS_SHOWN:  # one term an input: shown as Σ_j, never built for a page
                weights, a = _base(f"W{l_}"), _base(_previous_name(layer))
                general = Sum(Factors(weights[i + 1, INDEX_J], a[INDEX_J]), (INDEX_J, 1, len(layer.inputs)))
                if layer.bias is not None:
                    general = sympy.Add(general, _base(f"b{l_}")[i + 1], evaluate=False)
                right = w.show(general, Deferred(expand_notation, general, entries))
            else:
                right = w.expr(layer.z_definition[i])
            blocks.append(Chain((w.expr(layer.z[i]), right), "definition"))
            if not layer.activation.elementwise and len(layer.z) > TERMS_SHOWN:  # softmax: Σ_k, built if asked
                z_base = _base(f"z{l_}")
                general = sympy.exp(z_base[i + 1]) / Sum(sympy.exp(z_base[INDEX_K]), (INDEX_K, 1, len(layer.z)))
                right = w.show(general, Deferred(expand_notation, general, entries))
            else:
                right = w.expr(layer.a_definition[i])
            blocks.append(Chain((w.expr(layer.a[i]), right), "definition"))
    output = derivation.layers[-1]
    if len(output.z) > TERMS_SHOWN:  # one term a unit: shown as Σ_k, the loss built only when a check asks
        loss: object = Deferred(lambda: derivation.loss_definition)
        scale = reduction_scale(derivation.network)
        long_sum = True
    else:
        loss = derivation.loss_definition
        scale, total = loss.as_independent(*output.a, *derivation.symbols["y"], as_Add=False)  # 1, or 1/B of mean
        long_sum = _is_long_sum(total)
    if long_sum:
        a, y = _base(f"a{output.index}"), _base("y")
        if _loss_rule(derivation.network).coupled is None:
            term = Applied(Symbol("ell"), a[INDEX_K], y[INDEX_K])  # ℓ is defined in the sentence below
        else:  # softmax cross-entropy on the logits: y_k (logsumexp(a) − a_k)
            term = y[INDEX_K] * (Applied(Symbol("logsumexp"), _column(f"a{output.index}", 1)) - a[INDEX_K])
        general = Sum(term, (INDEX_K, 1, len(output.a)))
        right = w.show(general if scale == 1 else sympy.Mul(scale, general, evaluate=False), loss)
    else:
        right = w.expr(loss)
    blocks.append(Chain((w.show(LOSS, loss), right), "definition"))
    blocks.append(_loss_sentence(w))
    return blocks


def _loss_rule(network):
    """The network's loss rule (a built-in row or a user's Loss.define)."""
    return network.loss_rule if hasattr(network, "loss_rule") else LOSSES[network.loss]


def _loss_sentence(w: _Writer) -> Prose:
    """What the loss is per output unit (ℓ(ŷ, y) from the loss rule), or that it couples the units; the batch."""
    network = w.derivation.network
    rule = _loss_rule(network)
    batch = w.words["batch_mean" if getattr(network, "reduction", "sum") == "mean" else "batch_sum"]
    if rule.coupled is not None:  # a loss on all outputs at once (log-sum-exp): no per-unit term
        return w.say("loss_is_coupled", loss=network.loss, batch=batch)
    per_unit = rule.per_unit(Symbol("y_hat"), Symbol("y"), len(w.derivation.layers[-1].a))
    ell = w.show(Eq(Applied(Symbol("ell"), Symbol("y_hat"), Symbol("y")), per_unit, evaluate=False))
    prediction = w.show(Eq(Symbol("y_hat"), _column(f"a{network.depth}", 1), evaluate=False))  # ŷ = a⁽ᴸ⁾
    return w.say("loss_is", loss=network.loss, per_unit=ell, prediction=prediction, batch=batch)


def _softmax_jacobian_entry(layer: int, k: sympy.Expr, i: sympy.Expr) -> sympy.Expr:
    """∂a_k/∂z_i of layer ``layer``'s softmax as the page writes it: SymPy's index-form result
    (``_index.softmax_jacobian``, taken by diff at a symbolic width), on the page's a, with Kronecker's δ_ki
    written 𝟙[k = i] (δ is the error here). The one written form of the Jacobian; the compiled code's
    Jacobian-vector product is proved equal to it in ``_index``."""
    form = index_facts.softmax_jacobian().replace(
        sympy.KroneckerDelta, lambda *_: Indicator(Eq(index_facts.k, index_facts.i))
    )
    return form.xreplace({index_facts.a: _base(f"a{layer}"), index_facts.k: k, index_facts.i: i})


def _softmax_jacobian(layer: LayerDerivation) -> sympy.Matrix:
    """∂a_k/∂z_i by sympy.diff of the softmax's definition, [k, i]."""
    n = len(layer.z)
    return sympy.Matrix(n, n, lambda k, i: sympy.diff(layer.a_definition[k], layer.z[i]))


def _derivative_statement(w: _Writer, layer: LayerDerivation) -> list[Block]:
    """The activation's derivative, the first time the explanation meets that activation (else nothing)."""
    activation, symbol = layer.activation, _activation_symbol(layer)
    if activation.name in w.explained:
        return []
    w.explained.add(activation.name)
    if not activation.elementwise:
        k, i, n = INDEX_K, INDEX_I, len(layer.z)
        a, z = _base(f"a{layer.index}"), _base(f"z{layer.index}")
        entries = _entries_of(w.derivation)
        jacobian = Deferred(_softmax_jacobian, layer)
        right = _softmax_jacobian_entry(layer.index, k, i)
        return [
            w.say("softmax_couples"),
            Chain(
                (
                    w.show(Partial(a[k], z[i]), jacobian),
                    w.show(right, Deferred(for_each_entry, right, [(k, n), (i, n)], entries)),
                ),
                "sympy.diff",
            ),
        ]
    z, a = Symbol("z", real=True), Symbol("a", real=True)
    derivative = sympy.diff(activation.function(z), z)
    through_output = activation.derivative(z, a)
    terms = [w.show(Prime(symbol, z), derivative), w.expr(derivative)]
    # the activation's own definition first: the page never says what σ or relu is otherwise
    applied = activation.function(z)
    if isinstance(applied, DefinedFunctionBase):
        body = type(applied).definition(z)  # one level down: gelu in erf, silu in σ
    elif isinstance(applied, sympy.Function):
        body = applied.rewrite(sympy.exp)  # SymPy's own (tanh): in exponentials, not "tanh(z) = tanh(z)"
    else:
        body = applied
    definition = w.show(Eq(Applied(symbol, z), body, evaluate=False))
    if through_output.has(a) and not through_output.has(z):  # a form in the output alone exists
        terms.append(w.show(through_output, through_output.xreplace({a: activation.function(z)})))
        output = w.show(Eq(a, Applied(symbol, z), evaluate=False))
        prose = w.say("derivative_through_output", definition=definition, a=output)
    else:
        prose = w.say("derivative", definition=definition)
    return [prose, Chain(_dedupe(terms), "sympy.diff")]


def _output_layer(w: _Writer, layer: LayerDerivation) -> list[Block]:
    derivation, l_ = w.derivation, layer.index
    n = len(layer.z)

    def loss() -> sympy.Expr:  # one term an output unit: built only when a check asks
        return derivation.loss_definition

    entries = _entries_of(derivation)
    i, j = 0, 0
    z_i, a_i, weight = layer.z[i], layer.a[i], layer.weight[i, j]

    def dz_dw() -> sympy.Expr:  # SymPy's ∂z_i/∂W_ij: z_i has one term an input, so only when a check asks
        return sympy.diff(layer.z_definition[i], weight)

    # the activation's derivative first, so that the path's "…:" is followed by its own equation
    blocks: list[Block] = _derivative_statement(w, layer)
    blocks.append(w.say("chain_path", W=w.show(_column(f"W{l_}", 1)), weight=w.expr(weight)))
    a_k = _base(f"a{l_}")[INDEX_K]
    if layer.activation.elementwise:
        gradient = Deferred(lambda: sympy.diff(loss(), a_i) * sympy.diff(layer.a_definition[i], z_i) * dz_dw())
        factors = w.show(Factors(Boxed(Factors(Partial(LOSS, a_i), Partial(a_i, z_i))), Partial(z_i, weight)), gradient)
        written = w.expr(Factors(Boxed(Factors(layer.upstream[i], layer.local_jacobian[i, i])), layer.inputs[j]))
    else:
        # every output couples here: O(n) terms per unit, so built only when a check asks (wide layers stay cheap)
        gradient = Deferred(lambda: _coupled_chain(loss(), layer, z_i, dz_dw()))
        coupled = Sum(Factors(Partial(LOSS, a_k), Partial(a_k, z_i)), (INDEX_K, 1, n))
        factors = w.show(Factors(Boxed(coupled), Partial(z_i, weight)), gradient)
        if n > TERMS_SHOWN:  # Σ over the outputs rather than every term
            summed = _softmax_sum(layer, derivation.symbols["y"][0], i)
            general = Factors(Boxed(summed), layer.inputs[j])
            written = w.show(general, Deferred(expand_notation, Factors(summed, layer.inputs[j]), entries))
        else:
            written = w.expr(Factors(Boxed(layer.delta_chain[i]), layer.inputs[j]))
    blocks.append(Chain((w.show(Partial(LOSS, weight), gradient), factors, written)))

    delta_i = _base(f"delta{l_}")[INDEX_I]
    w.name_errors()
    blocks.append(
        w.say(
            "shared_factor" if derivation.network == TUTORIAL else "shared_factor_boxed",
            i=w.show(INDEX_I),
            j=w.show(INDEX_J),
            delta=w.show(Eq(delta_i, Partial(LOSS, _base(f"z{l_}")[INDEX_I]), evaluate=False)),
        )
    )
    for unit in _shown(n):
        z_u, a_u = layer.z[unit], layer.a[unit]
        if layer.activation.elementwise:
            by_sympy = Deferred(
                lambda a_u=a_u, z_u=z_u, unit=unit: sympy.diff(loss(), a_u) * sympy.diff(layer.a_definition[unit], z_u)
            )
            factors = w.show(Boxed(Factors(Partial(LOSS, a_u), Partial(a_u, z_u))), by_sympy)
            written = w.expr(Factors(layer.upstream[unit], layer.local_jacobian[unit, unit]))
        else:
            by_sympy = Deferred(lambda z_u=z_u: _coupled_chain(loss(), layer, z_u))
            factors = w.show(Boxed(Sum(Factors(Partial(LOSS, a_k), Partial(a_k, z_u)), (INDEX_K, 1, n))), by_sympy)
            if n > TERMS_SHOWN:
                general = _softmax_sum(layer, derivation.symbols["y"][0], unit)
                written = w.show(general, Deferred(expand_notation, general, entries))
            else:
                written = w.expr(
                    sympy.Add(
                        *(Factors(layer.upstream[k], layer.local_jacobian[k, unit]) for k in range(n)), evaluate=False
                    )
                )
        terms = [w.show(layer.delta[unit], layer.delta[unit]), factors, written]
        if not layer.activation.elementwise and n > TERMS_SHOWN:
            simplified = _unit_form(derivation, layer, unit)
            if simplified is not None:
                terms.append(w.show(simplified, Deferred(expand_notation, simplified, entries)))
        else:
            terms += [w.expr(layer.delta_chain[unit]), w.expr(layer.delta_definition[unit])]
        blocks.append(Chain(_dedupe(terms)))
    fact = output_error_is_difference(derivation)
    if fact is not None:
        difference = reduction_scale(derivation.network) * (_column(f"a{l_}", n) - _column("y", n))
        equation = w.show(Eq(_column(f"delta{l_}", n), difference, evaluate=False))
        key = "delta_is_difference" if fact == "always" else "delta_is_difference_for_probabilities"
        blocks.append(w.say(key, equation=equation))
    blocks.append(w.say("error_times_input"))
    blocks += _error_times_input(w, layer)
    blocks += _gradient_entries(w, layer)
    return blocks


def _error_times_input(w: _Writer, layer: LayerDerivation) -> list[Block]:
    """∂L/∂W_ij = δ_i a_j for every i, j (and ∂L/∂b_i = δ_i), checked entry by entry."""
    l_, entries = layer.index, _entries_of(w.derivation)
    n, m = layer.weight.shape
    right = Factors(_base(f"delta{l_}")[INDEX_I], _base(_previous_name(layer))[INDEX_J])
    gradient = w.derivation.gradient_definitions[f"W{l_}"]
    return [
        Chain(
            (
                w.show(Partial(LOSS, _base(f"W{l_}")[INDEX_I, INDEX_J]), gradient),
                w.show(right, Deferred(for_each_entry, right, [(INDEX_I, n), (INDEX_J, m)], entries)),
            )
        )
    ]


def _softmax_sum(layer: LayerDerivation, target: Symbol, unit: int) -> Sum:
    """Σ_k ∂L/∂a_k · a_k (𝟙[k = i] − a_i), with ∂L/∂a_k SymPy's derivative written for a general output k."""
    l_, index = layer.index, unit + 1
    a, y = _base(f"a{l_}"), _base("y")
    first = {layer.a[0]: a[INDEX_K], target: y[INDEX_K]}
    upstream = layer.upstream[0].xreplace(first)  # the loss is a sum of per-unit terms: unit 1 stands for k
    jacobian = sympy.Mul.make_args(_softmax_jacobian_entry(l_, INDEX_K, index))
    ordered = sorted(jacobian, key=lambda factor: not isinstance(factor, sympy.Indexed))  # a_k, then (𝟙[k = i] − a_i)
    return Sum(Factors(upstream, *ordered), (INDEX_K, 1, len(layer.z)))


def _unit_form(derivation: Derivation, layer: LayerDerivation, unit: int) -> sympy.Expr | None:
    """The matrix program's simplified δ of the output layer, for one unit: its sums over units as Σ_k."""
    l_, index = layer.index, unit + 1
    step = next(s for s in derivation.matrix_program.steps if s.target.name == f"delta{l_}")
    a_all, z_all, y_all = (Symbol(name, real=True) for name in (f"a{l_}", f"z{l_}", "y"))
    a, z, y = _base(f"a{l_}"), _base(f"z{l_}"), _base("y")
    inside = {a_all: a[INDEX_K], z_all: z[INDEX_K], y_all: y[INDEX_K]}
    outside = {a_all: a[index], z_all: z[index], y_all: y[index]}
    if not step.expression.free_symbols <= {a_all, z_all, y_all}:
        # a δ computed through helper steps (softmax + bce's rearrangement that stays finite) has no
        # per-unit form to show: the chain above is the derivation, the rearrangement is the compiler's
        return None
    sums = {s: Sum(s.args[0].xreplace(inside), (INDEX_K, 1, len(layer.z))) for s in step.expression.atoms(unit_sum)}
    return step.expression.xreplace(sums).xreplace(outside)


def _gradient_entries(w: _Writer, layer: LayerDerivation) -> list[Block]:
    """The chain rule for the first weight (and bias) of the layer; the general entry is checked for all."""
    blocks: list[Block] = []
    for i in [0]:
        for j in [0]:
            weight = layer.weight[i, j]
            value = Deferred(lambda i=i, weight=weight: layer.delta[i] * sympy.diff(layer.z_definition[i], weight))
            factors = w.show(Factors(Partial(LOSS, layer.z[i]), Partial(layer.z[i], weight)), value)
            product = Factors(layer.delta[i], layer.inputs[j])
            blocks.append(
                Chain(
                    (w.show(Partial(LOSS, weight), value), factors, w.show(product, layer.delta[i] * layer.inputs[j]))
                )
            )
    if layer.bias is not None:
        for i in [0]:
            value = Deferred(lambda i=i: layer.delta[i] * sympy.diff(layer.z_definition[i], layer.bias[i]))
            factors = w.show(Factors(Partial(LOSS, layer.z[i]), Partial(layer.z[i], layer.bias[i])), value)
            blocks.append(Chain((w.show(Partial(LOSS, layer.bias[i]), value), factors, w.expr(layer.delta[i]))))
    return blocks


def _recursion(w: _Writer, layer: LayerDerivation, above: LayerDerivation, general: bool = False) -> Chain:
    """δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ f'(z⁽ˡ⁾), evaluated on this layer's symbols (general: written for layer l)."""
    n, n_up = len(layer.z), len(above.z)
    names = (
        ("Wl+1", "deltal+1", "zl", "deltal")
        if general
        else (
            f"W{above.index}",
            f"delta{above.index}",
            f"z{layer.index}",
            f"delta{layer.index}",
        )
    )
    weight, delta_up, z = _column(names[0], n_up, n), _column(names[1], n_up), _column(names[2], n)
    function = Symbol("f_l") if general else _activation_symbol(layer)
    derivative = Elementwise(function, z, prime=True)
    right = HadamardProduct(Transpose(weight) * delta_up, derivative)

    def value() -> sympy.Matrix:  # every unit's f'(z): built only when a check asks
        local = sympy.Matrix([layer.local_jacobian[j, j] for j in range(n)])
        return matrix_value(right, {weight: above.weight, delta_up: above.delta, derivative: local})

    return Chain((w.show(_column(names[3], n), layer.delta), w.show(right, Deferred(value))))


def _coupled_chain(loss: sympy.Expr, layer: LayerDerivation, z: sympy.Symbol, factor: sympy.Expr = sympy.S.One):
    """Σ_k ∂L/∂a_k · ∂a_k/∂z (times ``factor``) by SymPy: O(width) terms for one unit, so computed only when a
    check asks for the value (a Deferred), never to print a page: a wide softmax layer stays cheap."""
    n = len(layer.a)
    return sympy.Add(*(sympy.diff(loss, layer.a[k]) * sympy.diff(layer.a_definition[k], z) for k in range(n))) * factor


def _hidden_delta_chain(w: _Writer, layer: LayerDerivation, above: LayerDerivation, j: int) -> Chain:
    up, a_j, z_j = above.index, layer.a[j], layer.z[j]
    entries = _entries_of(w.derivation)
    z_up = _base(f"z{up}")[INDEX_I]
    by_sympy = Deferred(  # O(width above) terms: built only when a check asks
        lambda: (
            sympy.Add(*(above.delta[i] * sympy.diff(above.z_definition[i], a_j) for i in range(len(above.z))))
            * sympy.diff(layer.a_definition[j], z_j)
        )
    )
    collected = Sum(Factors(Partial(LOSS, z_up), Partial(z_up, a_j)), (INDEX_I, 1, len(above.z)))
    factors = w.show(Factors(collected, Partial(a_j, z_j)), by_sympy)
    local = layer.local_jacobian[j, j]
    if len(above.z) > TERMS_SHOWN:  # Σ_i W_ij δ_i has one term a unit above: shown as Σ, never built for a page
        general = Factors(
            Sum(Factors(_base(f"W{up}")[INDEX_I, j + 1], _base(f"delta{up}")[INDEX_I]), (INDEX_I, 1, len(above.z))),
            local,
        )
        written = w.show(general, Deferred(expand_notation, general, entries))
    else:
        written = w.expr(Factors(layer.upstream[j], local))
    return Chain(_dedupe([w.show(layer.delta[j], layer.delta[j]), factors, written]))


def _hidden_layer(w: _Writer, layer: LayerDerivation, above: LayerDerivation) -> list[Block]:
    up = above.index
    # the activation's derivative before the recursion that uses it (f'(z) is in δ = (Wᵀδ) ⊙ f'(z))
    blocks: list[Block] = _derivative_statement(w, layer)
    blocks += [
        w.say("hidden_collects", W=w.show(_column(f"W{up}", 1)), delta=w.show(_column(f"delta{up}", 1))),
        _recursion(w, layer, above),
    ]
    blocks += [_hidden_delta_chain(w, layer, above, j) for j in _shown(len(layer.z))]
    blocks += _gradient_entries(w, layer)
    return blocks


def _general_layer(w: _Writer, layers: Sequence[LayerDerivation]) -> list[Block]:
    """One step for every hidden layer of a deep network, checked at the layer just below the output."""
    depth = len(layers)
    layer, above = layers[-2], layers[-1]
    l_symbol = Symbol("l")
    blocks: list[Block] = []
    seen: set[str] = set()
    for lay in layers[:-1]:  # the hidden activations' derivatives first, as in a hidden layer's own section
        if lay.activation.name not in seen:
            seen.add(lay.activation.name)
            blocks += _derivative_statement(w, lay)
    blocks += [
        w.say("general_step", range=w.show(Eq(l_symbol, sympy.Tuple(depth - 1, ELLIPSIS, 1), evaluate=False))),
        _recursion(w, layer, above, general=True),
        w.say("general_where", f=w.show(Symbol("f_l")), l=w.show(Eq(l_symbol, layer.index, evaluate=False))),
    ]
    blocks.append(_hidden_delta_chain(w, layer, above, 0))
    blocks += _gradient_entries(w, layer)
    return blocks


def _matrix_form(w: _Writer) -> list[Block]:
    """∂L/∂W = δ aᵀ and ∂L/∂b = δ𝟏 over a batch, checked on a batch of two samples against the sum of
    the per-sample gradients."""
    derivation = w.derivation
    blocks: list[Block] = [w.say("matrix_outer")]
    bias_blocks: list[Block] = []
    for layer in derivation.layers:
        l_ = layer.index
        n, m = layer.weight.shape
        delta, previous = _column(f"delta{l_}", n, BATCH), _column(_previous_name(layer), m, BATCH)
        # a batch of copies of every entry: built only when a check asks
        table = Deferred(
            lambda delta=delta, previous=previous, layer=layer: {
                delta: _batch(layer.delta),
                previous: _batch(layer.inputs),
            }
        )
        summed = Deferred(_over_batch, derivation, f"W{l_}")
        right = delta * Transpose(previous)
        blocks.append(
            Chain(
                (
                    w.show(Partial(LOSS, _column(f"W{l_}", n, m)), summed),
                    w.show(right, Deferred(lambda right=right, table=table: matrix_value(right, table.compute()))),
                )
            )
        )
        if layer.bias is not None:
            ones = OneMatrix(BATCH, 1)
            summed = Deferred(_over_batch, derivation, f"b{l_}")
            right = delta * ones
            bias_blocks.append(
                Chain(
                    (
                        w.show(Partial(LOSS, _column(f"b{l_}", n)), summed),
                        w.show(right, Deferred(lambda right=right, table=table: matrix_value(right, table.compute()))),
                    )
                )
            )
    if bias_blocks:
        blocks += [w.say("matrix_bias"), *bias_blocks]
    if "x" in getattr(derivation, "wrt", ()):
        first = derivation.layers[0]
        n, m = first.weight.shape
        right = Transpose(_column("W1", n, m)) * _column("delta1", n)
        table = {_column("W1", n, m): first.weight, _column("delta1", n): first.delta}
        blocks += [
            w.say("input_gradient"),
            Chain(
                (
                    w.show(Partial(LOSS, _column("x", m)), Deferred(_input_gradient, first)),
                    w.show(right, Deferred(matrix_value, right, table)),
                )
            ),
        ]
    return blocks


def _input_gradient(first: LayerDerivation) -> sympy.Matrix:
    """∂L/∂x_j = Σ_i δ_i ∂z_i/∂x_j, by sympy.diff of the first layer's z (one sample)."""
    inputs = list(first.inputs)
    return sympy.Matrix(
        [sympy.Add(*(d * sympy.diff(z, x) for d, z in zip(first.delta, first.z_definition))) for x in inputs]
    )


def _over_batch(derivation: Derivation, parameter: str) -> sympy.Matrix:
    """∂L/∂parameter summed over a batch of BATCH samples: the per-sample gradient at each sample's symbols."""
    per_sample = derivation.gradient_definitions[parameter]
    return sympy.Add(*(per_sample.applyfunc(lambda e, s=s: _sample(e, s)) for s in range(1, BATCH + 1)))


def _closed_forms(w: _Writer) -> list[Block]:
    derivation = w.derivation
    shown: list[Block] = []
    for name in derivation.parameters:
        symbols = derivation.symbols[name]
        if derivation.closed_form_size(name) > min(CLOSED_FORM_NODES * len(symbols), derivation.closed_form_budget):
            continue
        matrix = derivation.closed_form(name)
        for i in range(matrix.rows):
            for j in range(matrix.cols):
                entry = w.expr(matrix[i, j])
                if len(entry.latex) <= CLOSED_FORM_SHOWN:
                    by_program = derivation.gradient_definitions[name][i, j]
                    shown.append(Chain((w.show(Partial(LOSS, symbols[i, j]), by_program), entry), "substitution"))
    if not shown:
        return []
    return [w.heading("heading_closed"), w.say("closed_intro"), *shown]


def _numbers(w: _Writer, values: Mapping[str, object]) -> list[Block]:
    derivation = w.derivation
    network = derivation.network
    samples = len(values["x"][0]) if values["x"] and isinstance(values["x"][0], (list, tuple)) else 1
    if network.parameter_count * samples > NUMBERS_LIMIT:
        return [
            w.heading("heading_numbers"),
            w.say("numbers_skipped", entries=f"{network.parameter_count * samples:,}", limit=f"{NUMBERS_LIMIT:,}"),
        ]
    named = derivation.intermediates(values)
    result = derivation.evaluate(values)
    blocks: list[Block] = [w.heading("heading_numbers"), w.say("numbers_intro")]
    for name in ("x", "y", *derivation.parameters):
        blocks.append(Chain((w.show(_column(name, 1)), _matrix_of(w, values[name])), "numbers"))
    if network.reduction == "mean":  # the 1/B of the mean is on the worked lines below: say what B is here
        blocks.append(Chain((w.show(BATCH_SIZE), w.show(sympy.Integer(samples))), "numbers"))
    for layer in derivation.layers:
        for kind in ("z", "a"):
            blocks.append(
                Chain(
                    (w.show(_column(f"{kind}{layer.index}", 1)), _matrix_of(w, named[f"{kind}{layer.index}"])),
                    "numbers",
                )
            )
    blocks.append(Chain((w.show(LOSS), _matrix_of(w, [[result["loss"]]], scalar=True)), "numbers"))
    blocks += _worked(w, values, named, result, samples)
    for layer in reversed(derivation.layers):
        blocks.append(
            Chain((w.show(_column(f"delta{layer.index}", 1)), _matrix_of(w, named[f"delta{layer.index}"])), "numbers")
        )
    for name in derivation.parameters:
        blocks.append(Chain((w.show(Partial(LOSS, _column(name, 1))), _matrix_of(w, result[name])), "numbers"))
    return blocks + _pytorch(w, values, named, result)


FLOAT32_DIGITS = 7  # float32's significant decimal digits, about (24 bits)
PYTORCH_ENTRIES = 8  # a parameter with more entries is left out of the PyTorch box (its vector is above)


def torch_style(rows: Sequence[Sequence[float]]) -> str:
    """Numbers as PyTorch prints a small float tensor's: 4 decimals after the first digit, a row in brackets (a
    column [[a], [b]], as a 2 × 1 weight's .grad prints)."""
    cells = [[f"{float(v):.4e}" for v in row] for row in rows]
    return "[" + ", ".join("[" + ", ".join(row) + "]" for row in cells) + "]"


def cancelled_digits(derivation: Derivation, named) -> tuple[LayerDerivation, int, float, int] | None:
    """The layer, unit (0-based), output and digits of the worst cancellation in 1 − a (σ' = a(1 − a)) or 1 − a²
    (tanh' = 1 − a²): the digits float32 loses there, of its 7."""
    worst = None
    for layer in derivation.layers:
        for unit, row in enumerate(named[f"a{layer.index}"]):
            a = float(row[0])
            rest = {"sigmoid": 1 - a, "tanh": 1 - a * a}.get(layer.activation.name)
            if rest is None or rest <= 0:
                continue
            digits = round(-math.log10(rest))
            if digits >= 1 and (worst is None or digits > worst[3]):
                worst = (layer, unit, a, digits)
    return worst


def _pytorch(w: _Writer, values, named, result) -> list[Block]:
    """What float32 (PyTorch's default) gives for each small gradient, beside the exact value, and why they part."""
    from ._float32 import float32_gradients  # NumPy: only for a page with numbers

    derivation = w.derivation
    try:
        single = float32_gradients(derivation, values)
    except (NotImplementedError, FloatingPointError):  # a function NumPy has no float32 form of here
        return []
    shown = [name for name in derivation.parameters if len(single[name].ravel()) <= PYTORCH_ENTRIES]
    if not shown:
        return []
    blocks: list[Block] = [Frame(w.words["pytorch_title"]), w.say("pytorch_intro")]
    differ = False
    for name in shown:
        low, exact = torch_style(single[name].tolist()), torch_style(result[name])
        differ = differ or low != exact
        blocks.append(w.say("pytorch_line", name=name, float32=low, exact=exact))
    worst = cancelled_digits(derivation, named)
    if not differ:
        blocks.append(w.say("pytorch_agree"))
    elif worst is not None:
        layer, unit, a, digits = worst
        entry = layer.a[unit]  # the unit's output, a_k^(l): the entry that cancels, not the layer's vector
        output = w.expr(entry)
        rest = w.expr(1 - entry ** (1 if layer.activation.name == "sigmoid" else 2))
        key = "pytorch_reason" if digits < FLOAT32_DIGITS else "pytorch_reason_all"
        value = f"{a:.{max(SHOWN_DIGITS, digits + 1)}g}"  # enough digits to show how close to 1
        blocks.append(w.say(key, rest=rest, a=output, value=value, digits=digits))
    else:
        blocks.append(w.say("pytorch_rounding"))
    return [*blocks, FrameEnd()]


def number_format(numbers: Sequence[float]) -> str:
    """One format for a whole vector or matrix: plain when every nonzero entry reads well so, else scientific."""
    magnitudes = [abs(v) for v in numbers if v != 0 and math.isfinite(v)]
    if all(1e-3 <= v < 1e5 for v in magnitudes):
        return "plain"
    return "scientific"


def _number(value: float, style: str) -> sympy.Basic:
    """A number as a tree: 5 significant digits, or a mantissa times a power of ten (not an evaluated product)."""
    if not math.isfinite(value):
        return sympy.nan if value != value else (sympy.oo if value > 0 else -sympy.oo)
    if style == "plain" or value == 0:
        return sympy.Float(float(f"{value:.5g}"), 5) if value != int(value) else sympy.Integer(int(value))
    mantissa, exponent = f"{value:.4e}".split("e")
    return Scientific(sympy.Float(mantissa, 5), int(exponent))


def _matrix_of(w: _Writer, rows: Sequence[Sequence[float]], scalar: bool = False) -> Math:
    """Numbers as a matrix (a column vector as a transposed row, to keep pages short), one format each."""
    rows = [[float(v) for v in row] for row in rows]
    flat = [v for row in rows for v in row]
    style = number_format(flat)
    if scalar:
        return w.show(_number(flat[0], style))
    max_rows, max_cols = NUMBERS_SHOWN
    column = all(len(row) == 1 for row in rows)
    if column and len(flat) <= VECTOR_SHOWN:
        return w.show(Transpose(sympy.ImmutableMatrix([[_number(v, style) for v in flat]])))
    if column or len(rows) > max_rows or len(rows[0]) > max_cols:
        largest = max(abs(v) for v in flat)
        number = w.show(_number(largest, number_format([largest])))
        sentence = w.words["large_matrix"].format(rows=len(rows), cols=len(rows[0]), largest="{largest}")
        before, after = sentence.split("{largest}")
        return Math(
            sympy.Symbol(sentence),
            rf"\text{{{before}}}{number.latex}\text{{{after}}}" if after else rf"\text{{{before}}}{number.latex}",
            f"{before}{number.text}{after}",
        )
    return w.show(sympy.ImmutableMatrix([[_number(v, style) for v in row] for row in rows]))


def _product(tree: sympy.Basic) -> sympy.Basic:
    """A tree as SymPy's product: Factors multiplied out (in SymPy's order), a box opened."""
    return tree.replace(Boxed, lambda content: content).replace(Factors, lambda *factors: sympy.Mul(*factors))


def _reorders(previous: Math, term: Math) -> bool:
    """Whether ``term`` only writes the factors of ``previous`` in another order (a line that teaches nothing)."""
    before, after = _product(previous.tree), _product(term.tree)
    return isinstance(after, sympy.Mul) and before == after


def _dedupe(terms: list[Math]) -> tuple[Math, ...]:
    """The sides of a chain without repeats: a side printed as the one before, or only reordering its factors."""
    kept: list[Math] = []
    for term in terms:
        if not kept or (kept[-1].latex != term.latex and not _reorders(kept[-1], term)):
            kept.append(term)
    return tuple(kept)


# --- the summary: backpropagation in four matrix equations ------------------------------------------------------


class _NoMatrixForm(Exception):
    """A matrix program expression with no matrix notation here (a sum over units: softmax's output δ)."""


def _program_tree(expression: sympy.Expr, shapes: Mapping[str, tuple], functions: Mapping[str, Symbol]):
    """A matrix program's expression as a matrix-notation tree: matmul as MatMul, transpose as ᵀ, batch_sum as
    the product with 𝟏, an activation's backward step as ⊙ f'(z), element-wise products as ⊙; a whole matrix
    is a MatrixSymbol of its shape (``shapes``, by name), a number or B stays a scalar."""

    def tree(e):
        if isinstance(e, Symbol):
            if e.name not in shapes:
                raise _NoMatrixForm(e.name)
            return MatrixSymbol(e.name, *shapes[e.name])
        if isinstance(e, matmul):
            return sympy.MatMul(tree(e.args[0]), tree(e.args[1]))
        if isinstance(e, transpose):
            return Transpose(tree(e.args[0]))
        if isinstance(e, batch_sum):
            inner = tree(e.args[0])
            return sympy.MatMul(inner, OneMatrix(inner.shape[1], 1))
        if isinstance(e, ActivationBackwardBase):
            upstream, z, _ = e.args
            return HadamardProduct(tree(upstream), Elementwise(functions[e.activation], tree(z), prime=True))
        if e.is_Number or isinstance(e, batch_size):
            return e
        if isinstance(e, sympy.Add):
            terms = [tree(t) for t in e.args]
            if not all(isinstance(t, sympy.MatrixExpr) for t in terms):
                raise _NoMatrixForm(str(e))
            return functools.reduce(operator.add, terms)  # SymPy's own order, as a reader's a − y builds it
        if isinstance(e, sympy.Mul):
            factors = [tree(f) for f in e.args]
            matrices = [f for f in factors if isinstance(f, sympy.MatrixExpr)]
            scalar = sympy.Mul(*(f for f in factors if not isinstance(f, sympy.MatrixExpr)))
            if not matrices:
                return scalar
            product = matrices[0] if len(matrices) == 1 else HadamardProduct(*matrices)
            return product if scalar == 1 else scalar * product
        if isinstance(e, sympy.Pow) and not isinstance(tree(e.args[0]), sympy.MatrixExpr):
            return sympy.Pow(tree(e.args[0]), e.args[1])
        raise _NoMatrixForm(str(e))

    return tree(expression)


def _shapes(tree: sympy.Basic) -> Shapes:
    """The shape of each factor of ``tree`` as it is written, and the shape of the whole."""

    def dims(shape) -> tuple[str, str]:
        rows, columns = (str(d) for d in shape)
        return rf"({rows} \times {columns})", f"({rows}×{columns})"

    def walk(e) -> tuple[str, str]:
        if isinstance(e, sympy.MatMul):
            parts = [walk(f) for f in e.args if isinstance(f, sympy.MatrixExpr)]
            return "".join(p[0] for p in parts), "".join(p[1] for p in parts)
        if isinstance(e, HadamardProduct):
            parts = [walk(f) for f in e.args]
            return r" \odot ".join(p[0] for p in parts), " ⊙ ".join(p[1] for p in parts)
        return dims(e.shape)  # a whole matrix, a sum of them (a − y), f'(z) or 𝟏

    latex, text = walk(tree)
    rows, columns = (str(d) for d in tree.shape)
    return Shapes(rf"{latex} \to {rows} \times {columns}", f"{text} → {rows}×{columns}")


def _summary(w: _Writer) -> list[Block]:
    """Backpropagation in four matrix equations over a batch (output δ, the δ recursion, ∂L/∂W, ∂L/∂b; ∂L/∂x when
    derived), each the matrix program's own step, with the shapes of its factors at this network's widths."""
    derivation = w.derivation
    network, layers = derivation.network, derivation.layers
    program = {step.target.name: step for step in derivation.matrix_program.steps}
    shapes: dict[str, tuple] = {"x": (network.sizes[0], BATCH_SIZE), "y": (network.sizes[-1], BATCH_SIZE)}
    for layer in layers:
        n, m = layer.weight.shape
        shapes.update({f"W{layer.index}": (n, m), f"b{layer.index}": (n, 1)})
        shapes.update({f"{kind}{layer.index}": (n, BATCH_SIZE) for kind in ("z", "a", "delta")})
    functions = {layer.activation.name: _activation_symbol(layer) for layer in layers}
    one_sample, two_samples = 1, BATCH  # a δ column by column; a gradient summed over a batch

    def equation(left: Math, target: str, samples: int) -> Chain:
        tree = _program_tree(program[target].expression, shapes, functions)
        value = Deferred(_summary_value, tree, derivation, samples)
        return Chain((left, w.show(tree, value)), "matrix program", _shapes(tree))

    top = layers[-1]
    blocks: list[Block] = [Frame(w.words["heading_summary"])]
    delta_of = {layer.index: _column(f"delta{layer.index}", len(layer.z), BATCH_SIZE) for layer in layers}
    try:
        output = [equation(w.show(delta_of[top.index], top.delta), f"delta{top.index}", one_sample)]
    except _NoMatrixForm:  # softmax's δ sums over the units (Σ_k): its entries are the output layer's above
        output = []
        blocks.append(w.say("summary_output_above", delta=w.show(delta_of[top.index])))
    blocks += [w.say("summary_batch", B=w.show(BATCH_SIZE)), *output]  # its "…:" just above its equations
    for layer in reversed(layers[:-1]):
        blocks.append(equation(w.show(delta_of[layer.index], layer.delta), f"delta{layer.index}", one_sample))
    for layer in layers:
        n, m = layer.weight.shape
        summed = Deferred(_over_batch, derivation, f"W{layer.index}")
        left = w.show(Partial(LOSS, _column(f"W{layer.index}", n, m)), summed)
        blocks.append(equation(left, f"grad_W{layer.index}", two_samples))
    if network.bias:
        for layer in layers:
            n = len(layer.z)
            summed = Deferred(_over_batch, derivation, f"b{layer.index}")
            left = w.show(Partial(LOSS, _column(f"b{layer.index}", n)), summed)
            blocks.append(equation(left, f"grad_b{layer.index}", two_samples))
    if "grad_x" in program:
        first = layers[0]
        left = w.show(Partial(LOSS, _column("x", len(first.inputs), BATCH_SIZE)), Deferred(_input_gradient, first))
        blocks.append(equation(left, "grad_x", one_sample))
    return [*blocks, FrameEnd()]


def _summary_value(tree: sympy.Basic, derivation: Derivation, samples: int) -> sympy.Matrix:
    """What a summary tree stands for on ``samples`` samples (a column each, renamed copies after the first): the
    parameters as they are, x, y, z, a, δ as columns of the derivation's symbols, each f'(z) as its entries'
    derivatives (SymPy's), 𝟏 as a column of ``samples`` ones."""

    def columns(entries) -> sympy.Matrix:
        column = _matrix(entries)
        return sympy.Matrix.hstack(*(column.applyfunc(lambda e, s=s: _sample(e, s)) for s in range(1, samples + 1)))

    layers = {layer.index: layer for layer in derivation.layers}
    table: dict[sympy.Basic, sympy.Matrix] = {}
    for atom in tree.atoms(MatrixSymbol):
        name = atom.name
        if name in ("x", "y"):
            table[atom] = columns(derivation.symbols[name])
        elif name.startswith("W"):
            table[atom] = _matrix(derivation.symbols[name])
        else:
            kind, index = name.rstrip("0123456789"), int(name[len(name.rstrip("0123456789")) :])
            table[atom] = columns(getattr(layers[index], {"delta": "delta"}.get(kind, kind)))
    for node in tree.atoms(Elementwise):
        layer = layers[int(node.args[1].name[1:])]
        table[node] = columns(sympy.Matrix([layer.local_jacobian[j, j] for j in range(len(layer.z))]))
    for ones in tree.atoms(OneMatrix):
        table[ones] = sympy.ones(samples, 1)
    return matrix_value(tree, table)


# --- worked numbers: each δ and gradient entry from the numbers above it --------------------------------------

SHOWN_DIGITS = 5  # a result's significant digits; a worked step's inputs get more where its arithmetic cancels
WORKED_WIDTH = 110  # a worked step longer than this (text characters) is left to the vector of results


def _numeric(expression: sympy.Expr, numbers: Mapping[sympy.Basic, float], samples: int) -> float:
    """``expression`` at ``numbers`` (each symbol's value), in 30-digit arithmetic."""
    plain = expression.replace(Boxed, lambda c: c).replace(Factors, lambda *f: sympy.Mul(*f))
    at = {symbol: sympy.Float(repr(value), 30) for symbol, value in numbers.items()}
    value = plain.xreplace({BATCH_SIZE: sympy.Integer(samples), **at}).evalf(30)
    return float(value) if value.is_real and value.is_finite else math.nan  # 1/(1 − a) at a rounded to 1: zoo


def _five(value: float) -> str:
    return f"{value:.{SHOWN_DIGITS - 1}e}"


def worked_step(expression: sympy.Expr, numbers: Mapping[sympy.Basic, float], result: float, samples: int = 1):
    """``expression`` with each symbol's number shown, to the fewest digits (from 5) from which the expression gives
    ``result`` to the 5 digits shown: where it cancels (1 − a at a ≈ 1), its inputs are shown with more."""
    used = {s: v for s, v in numbers.items() if expression.has(s)}
    for digits in range(SHOWN_DIGITS, 18):
        shown = {symbol: Shown(value, digits, symbol) for symbol, value in used.items()}
        rounded = {symbol: float(number.args[0]) for symbol, number in shown.items()}
        if _five(_numeric(expression, rounded, samples)) == _five(result):
            return expression.xreplace({BATCH_SIZE: sympy.Integer(samples), **shown})
    return None  # no digits of float64's give the result (it cancels past them): the line is left out


def _sample_numbers(derivation: Derivation, values: Mapping[str, object], named) -> dict[sympy.Basic, float]:
    """Every symbol of the derivation -> its number at the first sample."""
    numbers: dict[sympy.Basic, float] = {}
    for name, matrix in derivation.symbols.items():
        rows = values[name]
        for i in range(matrix.rows):
            for j in range(matrix.cols):
                row = rows[i] if isinstance(rows[i], (list, tuple)) else [rows[i]]
                numbers[matrix[i, j]] = float(row[0 if name in ("x", "y") else j])
    for layer in derivation.layers:
        for kind in ("z", "a", "delta"):
            for symbol, row in zip(getattr(layer, kind), named[f"{kind}{layer.index}"]):
                numbers[symbol] = float(row[0])
    return numbers


def _worked_entries(column: Sequence) -> list[int]:
    """Which entries of a layer's column (its first sample) to work through: all of a small layer; in a wide one
    the first that is not zero, so that the worked lines show arithmetic (a relu unit that is off has δ = 0 and
    every gradient through it 0) rather than a row of zeros."""
    count = len(column)
    if count <= ENTRIES_SHOWN:
        return list(range(count))
    first = [row[0] if isinstance(row, (list, tuple)) else row for row in column]
    return [next((unit for unit, value in enumerate(first) if float(value) != 0), 0)]


def _worked(w: _Writer, values, named, result, samples: int) -> list[Block]:
    """Each δ entry (of the first sample) and, for one sample, each gradient entry, worked from the numbers above."""
    derivation = w.derivation
    numbers = _sample_numbers(derivation, values, named)
    lines: list[Block] = []

    def line(left: sympy.Basic, expression: sympy.Expr, value: float) -> None:
        tree = worked_step(expression, numbers, value, samples)
        if tree is None:
            return
        chain = Chain((w.show(left), w.show(tree), w.show(_number(value, number_format([value])))), "numbers")
        if sum(len(t.text) for t in chain.terms) <= WORKED_WIDTH:
            lines.append(chain)

    for layer in reversed(derivation.layers):
        above = derivation.layers[layer.index] if layer.index < len(derivation.layers) else None
        units = _worked_entries(named[f"delta{layer.index}"])
        for unit in units:
            value = float(named[f"delta{layer.index}"][unit][0])
            if above is not None and len(above.z) > TERMS_SHOWN:
                continue
            if layer.activation.elementwise:
                expression = Factors(layer.upstream[unit], layer.local_jacobian[unit, unit])
            else:
                expression = layer.delta_definition[unit]
            line(layer.delta[unit], expression, value)
        if samples == 1:  # a batch's gradient is a sum over samples: its vector below
            inputs = named[f"a{layer.index - 1}"] if layer.index > 1 else values["x"]
            for i in units:
                for j in _worked_entries(inputs):
                    gradient = float(result[f"W{layer.index}"][i][j])
                    line(Partial(LOSS, layer.weight[i, j]), Factors(layer.delta[i], layer.inputs[j]), gradient)
    if not lines:
        return []
    return [w.say("numbers_worked" if samples == 1 else "numbers_worked_first_sample"), *lines]
