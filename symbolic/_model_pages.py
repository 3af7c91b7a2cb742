"""Pages for a ``Model``: one section per kind of layer it holds, then its backward pass in order, in numbers.

Each section states the layer's forward definition in index form, draws its computational graph with the paths
from its input into the loss (``_model_figure``), takes the chain rule along those paths and ends in the form a
textbook writes. Every formula shown is one of SymPy's facts, or a side checked equal to one:

- LayerNorm and BatchNorm: ``_norm.norm_facts()`` (the three paths, their sum, ∂σ²/∂μ = 0, ∂L/∂γ, ∂L/∂β);
- Linear and the element-wise activations: ``_index.layer_facts()`` (∂z_i/∂a_k = W_ik, δ_p a_q, δ_p);
- dropout and the residual sum: the two facts here (``dropout_definition``, ``residual_sides``), taken by
  ``sympy.diff`` at concrete sizes and proved in ``tests/test_model_pages.py``.

Every displayed side carries what it stands for (``Math.stands_for``): an ``IndexValue`` (an expression in the
facts' own symbols, which ``written_out`` evaluates at the sizes 2, 3, 5) or a ``ConcreteValue`` (built at a
concrete size directly: the residual block's F(x) is an undefined function there), or a number. The tests check
that each side of every Chain equals the next (``sides_equal``).

The numbers (``values`` given) are computed by SymPy from the forward definitions with 40 significant digits:
each gradient is ``diff`` of the loss with respect to a layer's input or output, and the worked lines evaluate the
textbook's form with those numbers; the tests compare them with torch autograd. A normalisation layer is worked along
one vector; a convolution on one sample's input channel 0 (g, the dilated and padded ĝ, one entry of ∂L/∂x as the
nonzero products of ĝ with the flipped kernel, then the whole ∂L/∂x); a pooling layer on channel 0 (a window, its
arg-max, an entry that two overlapping windows route to with both their g added, then every window's g routed).
This module never imports torch.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sympy
from sympy import Eq, IndexedBase, Sum, Symbol

from . import _index, _norm
from ._blocks import Block, Chain, Frame, FrameEnd, Math
from ._errors import InputError, NetworkError, NetworkTypeError
from ._formats import latex_body, latex_document, markdown_page, text_page
from ._html import _content, html_document
from ._model import Act, BatchNorm, Conv, Dropout, Flatten, LayerNorm, Linear, Model, Placed, Pool, Residual
from ._model_figure import Graph, GraphEdge, GraphNode, picture
from ._pdf import build_pdf, check_output_type
from ._printers import Applied, Factors, LatexNotation, Partial, Prime, Shown, TextNotation
from ._render import _Writer
from ._words import words

LOSS = Symbol("L")
PRECISION = 40  # significant digits of the numbers (SymPy Floats): far past float64's, which the tests compare
SHOWN = 5  # significant digits a number is printed with
NUMBER_TOLERANCE = 1e-3  # a worked line's numbers are rounded to SHOWN digits: its result agrees to about this
NUMBERS_LIMIT = 400  # entries of a layer's input past which the numbers are left out (diff per entry is slow)

# --- the page's notation, in the facts' own symbols -----------------------------------------------------------

x, g, gamma, beta = _norm.x, _norm.g, _norm.gamma, _norm.beta
mu, sigma_hat, eps = _norm.mu, _norm.sigma_hat, _norm.eps
i, j, k, p, r = _norm.i, _norm.j, _norm.k, _norm.p, _norm.r
XHAT, GHAT, Y = IndexedBase("xhat"), IndexedBase("ghat"), IndexedBase("y")
KERNEL = IndexedBase("W")  # a convolution's kernel, in its numbers
SIGMA2 = Symbol("sigma2", nonnegative=True)  # σ², a name on the page
MASK = IndexedBase("m")  # dropout's mask
KEEP = Symbol("p_drop", nonnegative=True)  # dropout's p
BLOCK = IndexedBase("F")  # the residual block's output F(x)
X_WHOLE = Symbol("x")  # x as one argument, F_i(x)
PREACTIVATION = IndexedBase("z_in")  # an activation's input (the dense facts' z is the Linear's output here)
# a path's term: (∂L/∂x_j) along one path, a name with a subscript saying which
PATH_NAMES = {
    "path_direct": Symbol("path_direct"),
    "path_mean": Symbol("path_mean"),
    "path_variance": Symbol("path_variance"),
}

_LATEX = {
    Symbol("xhat"): r"\hat{x}",
    Symbol("ghat"): r"\hat{g}",
    Symbol("xtilde"): r"\tilde{x}",
    Symbol("max"): r"\max",
    Symbol("gamma"): r"\gamma",
    Symbol("beta"): r"\beta",
    Symbol("F"): "F",
    Symbol("m"): "m",
    mu: r"\mu",
    sigma_hat: r"\hat{\sigma}",
    eps: r"\varepsilon",
    SIGMA2: r"\sigma^{2}",
    KEEP: "p",
    _norm.gamma_c: r"\gamma_{c}",
    _norm.beta_c: r"\beta_{c}",
    PATH_NAMES["path_direct"]: r"\left(\frac{\partial L}{\partial x_{j}}\right)_{\hat{x}}",
    PATH_NAMES["path_mean"]: r"\left(\frac{\partial L}{\partial x_{j}}\right)_{\mu}",
    PATH_NAMES["path_variance"]: r"\left(\frac{\partial L}{\partial x_{j}}\right)_{\sigma^{2}}",
    # the dense facts' symbols as this page names them: a layer's input x, its output y, the upstream g
    Symbol("a"): "x",
    Symbol("z"): "y",
    Symbol("delta"): "g",
    Symbol("z_in"): "z",
}
_TEXT = {
    Symbol("xhat"): "x̂",
    Symbol("ghat"): "ĝ",
    Symbol("xtilde"): "x̃",
    Symbol("gamma"): "γ",
    Symbol("beta"): "β",
    mu: "μ",
    sigma_hat: "σ̂",
    eps: "ε",
    SIGMA2: "σ²",
    KEEP: "p",
    _norm.gamma_c: "γ_c",
    _norm.beta_c: "β_c",
    PATH_NAMES["path_direct"]: "(∂L/∂x[j])_x̂",
    PATH_NAMES["path_mean"]: "(∂L/∂x[j])_μ",
    PATH_NAMES["path_variance"]: "(∂L/∂x[j])_σ²",
    Symbol("a"): "x",
    Symbol("z"): "y",
    Symbol("delta"): "g",
    Symbol("z_in"): "z",
}

SIZES = _norm.SIZES  # the concrete sizes every index-form side is checked at


# --- what a side stands for --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexValue:
    """An expression in the facts' index symbols (sums over ``size``, an entry at ``index``): ``at`` writes it out
    at a concrete size, μ and σ̂ put back to their definitions, every Derivative taken by ``diff``."""

    expression: sympy.Expr
    size: Symbol
    index: Symbol | None

    def at(self, size: int, index: int | None) -> sympy.Expr:
        expression = self.expression.xreplace(_norm.statistics(self.size))
        point = {self.size: size} if self.index is None else {self.size: size, self.index: index}
        return _norm.written_out(expression, point)


@dataclass(frozen=True)
class ConcreteValue:
    """A side built at each concrete size directly (the residual's F(x): an undefined function of the entries)."""

    build: Callable[[int, int | None], sympy.Expr]
    index: Symbol | None = j

    def at(self, size: int, index: int | None) -> sympy.Expr:
        return self.build(size, index)


@dataclass(frozen=True)
class DenseValue:
    """A side in ``_index``'s symbols (symbolic sizes n, m): Derivatives taken as ``_index`` takes them."""

    expression: sympy.Expr


def sides_equal(left: object, right: object) -> bool:
    """Whether two sides of a displayed equation stand for the same thing: index forms at every concrete size and
    index (``_norm.vanishes``, or ``expand`` where an undefined function's derivative stands), dense facts by
    ``_index.same`` at symbolic sizes, numbers to ``NUMBER_TOLERANCE`` relative (a worked side's inputs are shown
    to 5 digits)."""
    if isinstance(left, FactValue) and isinstance(right, FactValue):
        if left.expression is not None and left.expression == right.expression:  # a definition and its display
            return True
        return left.fact.name == right.fact.name and _facts_equal(left, right)
    if isinstance(left, DenseValue) and isinstance(right, DenseValue):
        return _index.same(_index._taken(left.expression), _index._taken(right.expression))
    if isinstance(left, (IndexValue, ConcreteValue)) and isinstance(right, (IndexValue, ConcreteValue)):
        for size in SIZES:
            for index in range(1, size + 1) if left.index is not None else (None,):
                difference = left.at(size, index) - right.at(size, index)
                if difference.has(sympy.Derivative, sympy.Function("F")):
                    if sympy.expand(difference) != 0:
                        return False
                elif not _norm.vanishes(difference):
                    return False
        return True
    if isinstance(left, (sympy.Basic, sympy.MatrixBase)) and isinstance(right, (sympy.Basic, sympy.MatrixBase)):
        a, b = (sympy.Matrix(v) if isinstance(v, sympy.MatrixBase) else sympy.Matrix([v]) for v in (left, right))
        return a.shape == b.shape and all(
            abs(float(u - v)) <= NUMBER_TOLERANCE * max(abs(float(u)), 1e-12) for u, v in zip(a, b, strict=True)
        )
    return False


# --- facts of this module: dropout and the residual sum ---------------------------------------------------


def dropout_definition() -> sympy.Expr:
    """Σ_i g_i ∂y_i/∂x_j for y_i = m_i x_i / (1 − p): what the page's dropout line is checked against."""
    return Sum(g[i] * sympy.Derivative(MASK[i] * x[i] / (1 - KEEP), x[j]), (i, 1, _norm.n))


def dropout_result() -> sympy.Expr:
    """g_j m_j / (1 − p): the mask routes the gradient, scaled as the forward pass scaled the input."""
    return g[j] * MASK[j] / (1 - KEEP)


def _block_entries(size: int) -> tuple[list[Symbol], list[sympy.Expr]]:
    """x_1 … x_size and F_1(x), …, F_size(x): a residual block's outputs, any functions of all its inputs."""
    xs = [_norm.entry(x, u) for u in range(1, size + 1)]
    return xs, [sympy.Function(f"F_{u}")(*xs) for u in range(1, size + 1)]


def residual_sides(size: int, index: int) -> tuple[sympy.Expr, sympy.Expr]:
    """(diff's Σ_i g_i ∂(x_i + F_i(x))/∂x_j, the page's g_j + Σ_i g_i ∂F_i/∂x_j) at a concrete size and j."""
    xs, outputs = _block_entries(size)
    gs = [_norm.entry(g, u) for u in range(1, size + 1)]
    loss = sympy.Add(*(gu * (xu + fu) for gu, xu, fu in zip(gs, xs, outputs, strict=True)))
    skip_and_block = gs[index - 1] + sympy.Add(*(gu * sympy.diff(fu, xs[index - 1]) for gu, fu in zip(gs, outputs)))
    return sympy.diff(loss, xs[index - 1]), skip_and_block


# --- the writer -------------------------------------------------------------------------------------------


class _ModelWriter(_Writer):
    """The dense pages' writer (``say``, ``show``, ``heading``) with this page's notation, and no derivation."""

    def __init__(self, lang: str, names: Mapping[sympy.Basic, tuple[str, str]] = {}):
        self.words = words(lang)
        self.lang = lang
        latex = {**_LATEX, **{s: pair[0] for s, pair in names.items()}}
        text = {**_TEXT, **{s: pair[1] for s, pair in names.items()}}
        self.latex_names = latex
        self.latex, self.text = LatexNotation(latex), TextNotation(text)
        self._plain_latex = self._red_latex = self.latex
        self.explained = set()

    def w(self, key: str, **pieces: object) -> str:
        return self.words[key].format(**pieces)


def _shown_position(position: str) -> str:
    return position.replace("_", ".")


def _layer_name(layer: object, lang: str) -> str:
    """A layer as the page names it: Linear, LayerNorm, ReLU, Conv2d, MaxPool1d, Residual ..."""
    if isinstance(layer, Act):
        return layer.name
    if isinstance(layer, Conv):
        return f"Conv{layer.dims}d"
    if isinstance(layer, Pool):
        return f"{'Max' if layer.kind == 'max' else 'Avg'}Pool{layer.dims}d"
    return type(layer).__name__


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape))


def describe_model(model: Model, lang: str = "en") -> str:
    """One line: each top-level layer with its output shape, a residual block's layers in brackets."""

    def one(placed: Placed) -> str:
        return f"{_layer_name(placed.layer, lang)} [{_shape_text(placed.shape_out)}]"

    parts: list[str] = []
    for placed in model.placed:
        if placed.inside:
            continue
        if isinstance(placed.layer, Residual):
            members = [q for q in model.placed if q.inside and q.inside[-1] == placed.position]
            parts.append("x + (" + " → ".join(one(q) for q in members) + ")")
        else:
            parts.append(one(placed))
    return " → ".join(parts)


# --- the sections -------------------------------------------------------------------------------------------


def _kind(layer: object) -> str:
    if isinstance(layer, Act):
        return "softmax" if not layer.rule.elementwise else "activation"
    return type(layer).__name__.lower()


def explain_model(model: Model, values: Mapping[str, object] | None = None, lang: str = "en") -> list[Block]:
    """The model's page as blocks (``_blocks``): one section per kind of layer it holds, its backward pass in
    order, and, with ``values`` (x, y, every parameter and mask by name), the normalisation layers in numbers."""
    if not isinstance(model, Model):
        raise NetworkTypeError(f"explain_model takes a Model; got {type(model).__name__}")
    w = _ModelWriter(lang, _position_names(model))
    numbers = ModelNumbers(model, values) if values is not None else None
    blocks: list[Block] = [
        w.say("model_intro", layers=describe_model(model, lang), shape=_shape_text(model.input_shape)),
        w.say("model_rows"),
        w.heading("model_heading_layers"),
    ]
    kinds = list(dict.fromkeys(_kind(placed.layer) for placed in model.placed))  # in the model's order
    sections: dict[str, Callable[[_ModelWriter, Model], list[Block]]] = {
        "linear": _linear,
        "activation": _activation,
        "layernorm": lambda w, m: _norm_section(w, m, _norm.LAYER_NORM),
        "batchnorm": lambda w, m: _norm_section(w, m, _norm.BATCH_NORM),
        "dropout": _dropout,
        "flatten": _flatten,
        "residual": _residual,
        "conv": _conv_section,
        "pool": _pool_section,
    }
    for kind in kinds:
        if kind in sections:
            blocks += sections[kind](w, model)
    blocks += _backward_order(w, model)
    if numbers is not None:
        blocks += _numbers(w, model, numbers)
    blocks += [w.heading("heading_checked"), w.say("model_checked")]
    return blocks


def _positions(model: Model, kind: type, lang: str) -> str:
    found = [_shown_position(q.position) for q in model.placed if isinstance(q.layer, kind)]
    return words(lang)["model_list_separator"].join(found)


def _linear(w: _ModelWriter, model: Model) -> list[Block]:
    """y = x Wᵀ + b, per sample y_i = Σ_j W_ij x_j + b_i: ∂L/∂x_k, ∂L/∂W_pq, ∂L/∂b_p from ``_index``'s facts."""
    facts = _index.layer_facts()
    a, z, delta, weights, b = _index.a, _index.z, _index.delta, _index.W, _index.b
    jacobian, weight, bias = facts["dz_da"], facts["dL_dW"], facts["dL_db"]
    upstream_through = Sum(delta[i] * jacobian.derivative, (i, 1, _index.n))  # Σ_i g_i ∂y_i/∂x_k
    blocks: list[Block] = [
        w.heading(
            "model_heading_kind",
            3,
            kind=w.w(
                "model_named", name="Linear", detail=w.w("model_layers_at", layers=_positions(model, Linear, w.lang))
            ),
        ),
        w.say("model_linear_forward"),
        Chain(
            (w.show(z[i], DenseValue(_index.z_entry())), w.show(_index.z_entry(), DenseValue(_index.z_entry()))),
            "definition",
        ),
        w.say(
            "model_linear_backward",
            jacobian=w.show(Eq(Partial(z[i], a[k]), jacobian.index_form, evaluate=False)),
        ),
        Chain(
            (
                w.show(Partial(LOSS, a[k]), DenseValue(upstream_through)),
                w.show(Sum(delta[i] * Partial(z[i], a[k]), (i, 1, _index.n)), DenseValue(upstream_through)),
                w.show(
                    Sum(delta[i] * jacobian.index_form, (i, 1, _index.n)),
                    DenseValue(Sum(delta[i] * weights[i, k], (i, 1, _index.n))),
                ),
            )
        ),
        Chain(
            (
                w.show(Partial(LOSS, weights[p, _index.q]), DenseValue(weight.derivative)),
                w.show(weight.index_form, DenseValue(weight.index_form)),
            )
        ),
    ]
    if any(isinstance(q.layer, Linear) and q.layer.bias for q in model.placed):
        blocks.append(
            Chain(
                (
                    w.show(Partial(LOSS, b[p]), DenseValue(bias.derivative)),
                    w.show(bias.index_form, DenseValue(bias.index_form)),
                )
            )
        )
    blocks.append(w.say("model_linear_batch"))
    return blocks


def _activation(w: _ModelWriter, model: Model) -> list[Block]:
    """a = f(z) entry by entry: ∂L/∂z_p = Σ_i g_i ∂f(z_i)/∂z_p = g_p f'(z_p) (p: an index of the outputs' range)."""
    names = sorted({q.layer.name for q in model.placed if isinstance(q.layer, Act) and q.layer.rule.elementwise})
    f, z, delta = _index.f, PREACTIVATION, _index.delta
    asked = Sum(delta[i] * sympy.Derivative(f(z[i]), z[p]), (i, 1, _index.n))
    result = delta[p] * sympy.Derivative(f(z[p]), z[p])
    f_name = Symbol("f")
    return [
        w.heading("model_heading_kind", 3, kind=w.w("model_activation_kind", names=", ".join(names))),
        w.say("model_activation"),
        Chain(
            (
                w.show(Partial(LOSS, z[p]), DenseValue(asked)),
                w.show(Sum(delta[i] * Partial(Applied(f_name, z[i]), z[p]), (i, 1, _index.n)), DenseValue(asked)),
                w.show(Factors(delta[p], Prime(f_name, z[p])), DenseValue(result)),
            )
        ),
    ]


def _flatten(w: _ModelWriter, model: Model) -> list[Block]:
    return [w.heading("model_heading_kind", 3, kind="Flatten"), w.say("model_flatten")]


def _dropout(w: _ModelWriter, model: Model) -> list[Block]:
    n = _norm.n
    forward = MASK[i] * x[i] / (1 - KEEP)
    return [
        w.heading(
            "model_heading_kind",
            3,
            kind=w.w(
                "model_named", name="Dropout", detail=w.w("model_layers_at", layers=_positions(model, Dropout, w.lang))
            ),
        ),
        w.say("model_dropout_forward"),
        Chain(
            (
                w.show(Y[i], IndexValue(forward, n, i)),
                w.show(Factors(MASK[i], x[i], 1 / (1 - KEEP)), IndexValue(forward, n, i)),
            ),
            "definition",
        ),
        w.say("model_dropout_backward"),
        Chain(
            (
                w.show(Partial(LOSS, x[j]), IndexValue(dropout_definition(), n, j)),
                w.show(Sum(g[i] * Partial(Y[i], x[j]), (i, 1, n)), IndexValue(dropout_definition(), n, j)),
                w.show(Factors(g[j], MASK[j], 1 / (1 - KEEP)), IndexValue(g[j] * MASK[j] / (1 - KEEP), n, j)),
            )
        ),
    ]


def _residual(w: _ModelWriter, model: Model) -> list[Block]:
    n = _norm.n
    graph = Graph(
        nodes=(
            GraphNode("x", "x", "x", 0, 0),
            GraphNode("F", r"F(x)", "F(x)", 1.3, 1, "parameter"),
            GraphNode("sum", "+", "+", 2.6, 0, "sum"),
            GraphNode("y", "y", "y", 3.6, 0),
            GraphNode("L", "L", "L", 4.6, 0, "loss"),
        ),
        edges=(
            GraphEdge("x", "F", 0),
            GraphEdge("F", "sum", 0),
            GraphEdge("x", "sum", 1),
            GraphEdge("sum", "y"),
            GraphEdge("y", "L"),
        ),
        paths=(w.w("model_residual_path_block"), w.w("model_residual_path_skip")),
        caption=w.w("model_residual_caption"),
    )

    def definition(size: int, index: int | None) -> sympy.Expr:
        return residual_sides(size, index)[0]

    def result(size: int, index: int | None) -> sympy.Expr:
        return residual_sides(size, index)[1]

    applied = Applied(BLOCK[i], X_WHOLE)
    return [
        w.heading(
            "model_heading_kind",
            3,
            kind=w.w(
                "model_named",
                name="Residual",
                detail=w.w("model_layers_at", layers=_positions(model, Residual, w.lang)),
            ),
        ),
        w.say("model_residual_forward"),
        picture(graph),
        w.say("model_residual_backward"),
        Chain(
            (
                w.show(Partial(LOSS, x[j]), ConcreteValue(definition)),
                w.show(Sum(g[i] * Partial(x[i] + applied, x[j]), (i, 1, n)), ConcreteValue(definition)),
                w.show(g[j] + Sum(g[i] * Partial(applied, x[j]), (i, 1, n)), ConcreteValue(result)),
            )
        ),
        w.say("model_residual_meaning"),
    ]


# --- convolution and pooling: the facts of ``_conv`` and ``_pool`` --------------------------------------------


@dataclass(frozen=True)
class FactValue:
    """A side of a ``_conv``/``_pool`` fact: ``expression`` in the fact's index symbols (its named entries x̃, ĝ, y
    put back by ``_conv.expanded``), or None for what was asked of diff, ∂L/∂wrt of the fact's loss."""

    fact: object  # a _conv.LayerFact
    expression: sympy.Expr | None


def _facts_equal(left: FactValue, right: FactValue) -> bool:
    """At each of the fact's concrete sizes and entries (on its draws of distinct values, for a max), as
    ``LayerFact.proves_at`` checks the textbook form: the two sides written out and compared."""
    from ._conv import expanded

    fact = left.fact
    for point in fact.sizes:
        at = dict(point)
        loss = _norm.written_out(fact.loss, at)
        draws = [fact._distinct_values(point, seed) for seed in range(fact.draws)] or [{}]
        for indices in fact.entries(point):
            here = {**at, **indices}

            def side(value: FactValue, here=here, loss=loss) -> sympy.Expr:
                if value.expression is None:
                    return sympy.diff(loss, _norm.written_out(fact.wrt, here))
                return _norm.written_out(expanded(value.expression, value.fact.names), here)

            difference = side(left) - side(right)
            if any(sympy.expand(difference.xreplace(values)) != 0 for values in draws):
                return False
    return True


def _displayed(expression: sympy.Expr) -> sympy.Expr:
    """A fact's form as the page prints it: a window's max as max(…) (the prose names the window), each Kronecker
    delta δ(a, b) and ``_conv``'s 𝟙 as the pages' 𝟙[a = b] (δ is the pages' error)."""
    from ._conv import Indicator as FactIndicator
    from ._conv import WindowMax
    from ._printers import Indicator

    shown = expression.replace(lambda e: isinstance(e, WindowMax), lambda e: Applied(Symbol("max"), e.function))
    shown = shown.replace(
        lambda e: isinstance(e, sympy.KroneckerDelta), lambda e: Indicator(Eq(e.args[0], e.args[1], evaluate=False))
    )
    return shown.replace(lambda e: isinstance(e, FactIndicator), lambda e: Indicator(e.args[0]))


def _fact_chains(w: _ModelWriter, facts: Sequence) -> list[Block]:
    """The forward definition (once), each name it uses (x̃, ĝ), and each fact: ∂L/∂wrt = its textbook form."""
    first = facts[0]
    blocks: list[Block] = [
        Chain(
            (
                w.show(first.forward.lhs, FactValue(first, first.forward.rhs)),
                w.show(_displayed(first.forward.rhs), FactValue(first, first.forward.rhs)),
            ),
            "definition",
        )
    ]
    defined = {name.base: name for fact in facts for name in fact.names if name.base != first.forward.lhs.base}
    for name in defined.values():
        entry = name.base[name.placeholders]
        blocks.append(
            Chain(
                (
                    w.show(entry, FactValue(first, name.definition)),
                    w.show(_displayed(name.definition), FactValue(first, name.definition)),
                ),
                "definition",
            )
        )
    blocks.append(w.say("model_fact_gradients"))
    for fact in facts:
        blocks.append(
            Chain(
                (
                    w.show(Partial(LOSS, fact.wrt), FactValue(fact, None)),
                    w.show(_displayed(fact.textbook), FactValue(fact, fact.textbook)),
                )
            )
        )
    return blocks


def _window_graph(
    w: _ModelWriter, inputs: int, kernel: int, stride: int, caption: str, paths: tuple[str, ...]
) -> Graph:
    """Inputs x₀ … in a column, outputs y₀ … beside them, an arrow from each input to each window it lies in;
    the arrows of the middle input in colour: one entry feeding several outputs, whose gradients it sums."""
    outputs = (inputs - kernel) // stride + 1
    middle = inputs // 2
    nodes = [GraphNode(f"x{u}", f"x_{{{u}}}", f"x{u}", 0, (inputs - 1) / 2 - u) for u in range(inputs)]
    nodes += [GraphNode(f"y{t}", f"y_{{{t}}}", f"y{t}", 2, (outputs - 1) / 2 - t) for t in range(outputs)]
    edges = [
        GraphEdge(f"x{stride * t + offset}", f"y{t}", 0 if stride * t + offset == middle else None)
        for t in range(outputs)
        for offset in range(kernel)
    ]
    return Graph(tuple(nodes), tuple(edges), paths, caption, column_step=1.6, row_step=0.7)


def _conv_section(w: _ModelWriter, model: Model) -> list[Block]:
    from ._conv import conv_facts

    blocks: list[Block] = []
    for dims in sorted({q.layer.dims for q in model.placed if isinstance(q.layer, Conv)}):
        layers = [q for q in model.placed if isinstance(q.layer, Conv) and q.layer.dims == dims]
        at = w.words["model_list_separator"].join(_shown_position(q.position) for q in layers)
        facts = [conv_facts()[f"Conv{dims}d.{key}"] for key in ("input_gradient", "weight_gradient", "bias_gradient")]
        graph = _window_graph(w, 5, 3, 1, w.w("model_conv_caption"), (w.w("model_conv_path"),))
        blocks += [
            w.heading(
                "model_heading_kind",
                3,
                kind=w.w("model_named", name=f"Conv{dims}d", detail=w.w("model_layers_at", layers=at)),
            ),
            w.say("model_conv_forward"),
            *_fact_chains(w, facts)[:3],
            picture(graph),
            *_fact_chains(w, facts)[3:],
            w.say("model_conv_meaning"),
        ]
    return blocks


def _pool_section(w: _ModelWriter, model: Model) -> list[Block]:
    from ._pool import pool_facts

    blocks: list[Block] = []
    kinds = dict.fromkeys(_layer_name(q.layer, w.lang) for q in model.placed if isinstance(q.layer, Pool))
    for kind in kinds:
        layers = [q for q in model.placed if _layer_name(q.layer, w.lang) == kind]
        at = w.words["model_list_separator"].join(_shown_position(q.position) for q in layers)
        fact = pool_facts()[f"{kind}.input_gradient"]
        maximum = kind.startswith("Max")
        graph = _window_graph(w, 4, 2, 2, w.w("model_pool_caption"), (w.w("model_pool_path"),))
        chains = _fact_chains(w, [fact])
        blocks += [
            w.heading(
                "model_heading_kind", 3, kind=w.w("model_named", name=kind, detail=w.w("model_layers_at", layers=at))
            ),
            w.say("model_maxpool_forward" if maximum else "model_avgpool_forward"),
            *chains[:-2],
            picture(graph),
            *chains[-2:],
            w.say("model_maxpool_meaning" if maximum else "model_avgpool_meaning"),
        ]
    return blocks


# --- LayerNorm and BatchNorm -----------------------------------------------------------------------------


def _meaning(tree: sympy.Expr, layer: _norm.Normalization) -> sympy.Expr:
    """What a norm section's tree stands for, in the facts' symbols: x̂_u = (x_u − μ)/σ̂, ĝ_u = γ g_u, σ² its
    definition, Factors as products, y_u the layer's output (``_norm.output``)."""
    size = layer.size

    def indexed(e: sympy.Indexed) -> sympy.Expr:
        (u,) = e.indices
        if e.base == XHAT:
            return (x[u] - mu) / sigma_hat
        if e.base == GHAT:
            return layer.scale(u) * g[u]
        if e.base == Y:
            return _norm.output(layer, u)
        return e

    meant = tree.replace(lambda e: isinstance(e, Factors), lambda e: sympy.Mul(*e.args))
    meant = meant.replace(lambda e: isinstance(e, sympy.Indexed), indexed)
    return meant.xreplace({SIGMA2: _norm.variance(size)})


def _norm_graph(w: _ModelWriter, layer: _norm.Normalization) -> Graph:
    """x → μ → σ² → x̂ → y → L, with x → x̂ and x → σ² direct, μ → x̂, γ and β into y: the three paths coloured."""
    return Graph(
        nodes=(
            GraphNode("x", "x", "x", 0, 0),
            GraphNode("mu", r"\mu", "μ", 1.2, 1.3),
            GraphNode("var", r"\sigma^{2}", "σ²", 2.4, -1.3),
            GraphNode("xhat", r"\hat{x}", "x̂", 3.6, 0),
            GraphNode("gamma", r"\gamma,\ \beta", "γ, β", 3.6, 1.3, "parameter"),
            GraphNode("y", "y", "y", 4.8, 0),
            GraphNode("L", "L", "L", 6.0, 0, "loss"),
        ),
        edges=(
            GraphEdge("x", "xhat", 0),
            GraphEdge("x", "mu", 1),
            GraphEdge("mu", "xhat", 1),
            GraphEdge("mu", "var", 1),
            GraphEdge("x", "var", 2),
            GraphEdge("var", "xhat", 2),
            GraphEdge("gamma", "y"),
            GraphEdge("xhat", "y"),
            GraphEdge("y", "L"),
        ),
        paths=(w.w("model_graph_direct"), w.w("model_graph_mean"), w.w("model_graph_variance")),
        caption=w.w("model_norm_caption"),
    )


def _local(definition: sympy.Expr, size: Symbol) -> sympy.Expr:
    """A local derivative taken by diff and summed as ``_norm`` sums, √(σ² + ε) written σ̂ (as the page names it)."""
    taken = sympy.factor(_norm.reduced(_norm.differentiated(definition), size))
    return taken.replace(
        lambda e: isinstance(e, sympy.Pow) and e.base == SIGMA2 + eps, lambda e: sigma_hat ** (2 * e.exp)
    )


def _norm_section(w: _ModelWriter, model: Model, layer: _norm.Normalization) -> list[Block]:
    facts = _norm.norm_facts()
    kind = BatchNorm if layer is _norm.BATCH_NORM else LayerNorm
    size = layer.size
    fact = functools.partial(lambda key: facts[f"{layer.name}.{key}"])

    def value(tree: sympy.Expr, index: Symbol | None = j) -> IndexValue:
        return IndexValue(_meaning(tree, layer), size, index)

    def side(tree: sympy.Expr, index: Symbol | None = j) -> Math:
        return w.show(tree, value(tree, index))

    def taken(key: str) -> IndexValue:
        """The fact's definition with its derivatives taken (what was asked of diff), μ and σ² put back."""
        one = fact(key)
        return IndexValue(_norm.differentiated(one.definition).xreplace(dict(one.put_in)), size, one.at)

    one_over = 1 / size
    xhat_i, ghat_i = XHAT[i], GHAT[i]
    mean_of = functools.partial(lambda body: Factors(one_over, Sum(body, (i, 1, size))))
    # the local derivatives along each path, taken by diff with μ and σ² free (x̂ = (x − μ)/√(σ² + ε))
    hat = (x[i] - mu) / sympy.sqrt(SIGMA2 + eps)
    d_hat_d_mu = _local(sympy.Derivative(hat, mu), size)
    d_hat_d_var = _local(sympy.Derivative(hat, SIGMA2), size)
    d_var_d_x = _local(sympy.Derivative(Sum((x[r] - mu) ** 2, (r, 1, size)) / size, x[j]), size)
    d_mu_d_x = _local(sympy.Derivative(_norm.mean(size), x[j]), size)
    scale_i = layer.scale(i)
    paths = {
        "path_direct": Factors(g[j], layer.scale(j), 1 / sigma_hat),
        "path_mean": Factors(Sum(Factors(g[i], scale_i, d_hat_d_mu), (i, 1, size)), d_mu_d_x),
        "path_variance": Factors(Sum(Factors(g[i], scale_i, d_hat_d_var), (i, 1, size)), d_var_d_x),
    }
    textbook_terms = {
        "path_direct": Factors(1 / sigma_hat, GHAT[j]),
        "path_mean": -Factors(1 / sigma_hat, mean_of(ghat_i)),
        "path_variance": -Factors(1 / sigma_hat, XHAT[j], mean_of(ghat_i * xhat_i)),
    }
    textbook = Factors(1 / sigma_hat, GHAT[j] - mean_of(ghat_i) - Factors(XHAT[j], mean_of(ghat_i * xhat_i)))
    per_entry = layer is _norm.LAYER_NORM
    scale_p = gamma[p] if per_entry else _norm.gamma_c
    shift_p = beta[p] if per_entry else _norm.beta_c
    scale_index = p if per_entry else None
    scale_result = Factors(g[p], XHAT[p]) if per_entry else Sum(Factors(g[i], XHAT[i]), (i, 1, size))
    shift_result = g[p] if per_entry else Sum(g[i], (i, 1, size))

    blocks: list[Block] = [
        w.heading(
            "model_heading_kind",
            3,
            kind=w.w(
                "model_named", name=layer.name, detail=w.w("model_layers_at", layers=_positions(model, kind, w.lang))
            ),
        ),
        w.say("model_layernorm_axis" if per_entry else "model_batchnorm_axis"),
        Chain((side(mu, None), side(mean_of(x[i]), None)), "definition"),
        Chain((side(SIGMA2, None), side(mean_of((x[i] - mu) ** 2), None)), "definition"),
        Chain((side(sigma_hat, None), side(sympy.sqrt(SIGMA2 + eps), None)), "definition"),
        Chain((side(XHAT[i], i), side((x[i] - mu) / sigma_hat, i)), "definition"),
        Chain((side(Y[i], i), side(layer.scale(i) * XHAT[i] + layer.shift(i), i)), "definition"),
        w.say("model_norm_graph"),
        picture(_norm_graph(w, layer)),
        w.say("model_norm_paths", ghat=w.show(Eq(GHAT[i], layer.scale(i) * g[i], evaluate=False))),
    ]
    for key, path_tree in paths.items():
        blocks.append(w.say(f"model_norm_{key}"))
        name = PATH_NAMES[key]
        blocks.append(
            Chain(
                (
                    w.show(name, taken(key)),
                    side(path_tree),
                    w.show(fact(key).derived, IndexValue(fact(key).derived, size, j)),
                    side(textbook_terms[key]),
                )
            )
        )
    blocks += [
        w.say("model_norm_variance_mean"),
        Chain(
            (
                w.show(Partial(SIGMA2, mu), taken("variance_mean_derivative")),
                w.show(sympy.Integer(0), IndexValue(sympy.Integer(0), size, None)),
            )
        ),
        w.say("model_norm_total"),
        Frame(w.w("model_norm_result", layer=layer.name)),
        Chain(
            (
                w.show(Partial(LOSS, x[j]), taken("input_gradient")),
                w.show(sympy.Add(*(PATH_NAMES[key] for key in paths)), value(sympy.Add(*textbook_terms.values()))),
                side(textbook),
            )
        ),
        Chain((w.show(Partial(LOSS, scale_p), taken("scale_gradient")), side(scale_result, scale_index))),
        Chain((w.show(Partial(LOSS, shift_p), taken("shift_gradient")), side(shift_result, scale_index))),
        FrameEnd(),
        w.say("model_layernorm_batch" if per_entry else "model_batchnorm_batch"),
    ]
    return blocks


# --- the backward pass in order ----------------------------------------------------------------------------


def _output_symbol(position: str) -> Symbol:
    return Symbol(f"h_{position}")


def _share_symbol(position: str) -> Symbol:
    return Symbol(f"share_{position}")


def _position_names(model: Model) -> dict[Symbol, tuple[str, str]]:
    """h⁽ˡ⁾, each layer's output, named in LaTeX and text (h⁽⁰⁾ = x); a block's layer 4.2 is h^{(4.2)}."""
    sup = str.maketrans("0123456789.", "⁰¹²³⁴⁵⁶⁷⁸⁹·")
    names = {_output_symbol("0"): ("x", "x"), _output_symbol("l"): ("h^{(l)}", "h⁽ˡ⁾")}
    for placed in model.placed:
        shown = _shown_position(placed.position)
        names[_output_symbol(placed.position)] = (f"h^{{({shown})}}", f"h⁽{shown.translate(sup)}⁾")
    for position, (latex, text) in list(names.items()):  # a residual block's share of ∂L/∂ its input: (∂L/∂h)_F
        names[_share_symbol(position.name[2:])] = (
            rf"\left(\frac{{\partial L}}{{\partial {latex}}}\right)_{{F}}",
            f"(∂L/∂{text})_F",
        )
    return names


def _input_position(model: Model, placed: Placed) -> str:
    """The position whose output this layer receives ("0": the model's input)."""
    siblings = [q for q in model.placed if q.inside == placed.inside]
    before = siblings[: siblings.index(placed)]
    if before:
        return before[-1].position
    return _input_position(model, _residual_of(model, placed)) if placed.inside else "0"


def _residual_of(model: Model, placed: Placed) -> Placed:
    return next(q for q in model.placed if q.position == placed.inside[-1])


def _parameters_text(placed: Placed) -> list[str]:
    return list(placed.parameters)


def _backward_order(w: _ModelWriter, model: Model) -> list[Block]:
    """From the loss back to the input: which ∂L/∂h flows into which layer; a residual block's two paths and
    their sum said where they part and where they meet."""

    def grad(position: str) -> Math:
        return w.show(Partial(LOSS, _output_symbol(position)))

    blocks: list[Block] = [
        w.heading("model_heading_order", 2),
        w.say("model_order_intro", h=w.show(_output_symbol("l")), g=w.show(Partial(LOSS, _output_symbol("l")))),
    ]
    top = [q for q in model.placed if not q.inside]
    blocks.append(w.say("model_order_loss", g=grad(top[-1].position), loss=model.loss))

    def walk(members: Sequence[Placed]) -> None:
        for placed in reversed(members):
            name = w.w("model_named", name=_shown_position(placed.position), detail=_layer_name(placed.layer, w.lang))
            source = _input_position(model, placed)
            if isinstance(placed.layer, Residual):
                inner = [q for q in model.placed if q.inside and q.inside[-1] == placed.position]
                blocks.append(
                    w.say("model_order_split", layer=name, g=grad(placed.position), g_block=grad(inner[-1].position))
                )
                walk(inner)
                total = Eq(
                    Partial(LOSS, _output_symbol(source)),
                    Partial(LOSS, _output_symbol(placed.position)) + _share_symbol(source),
                    evaluate=False,
                )
                blocks.append(w.say("model_order_meet", layer=name, total=w.show(total)))
                continue
            parameters = [w.show(Partial(LOSS, Symbol(n_))) for n_ in placed.parameters]
            pieces = {"layer": name, "g": grad(placed.position), "g_in": grad(source)}
            if parameters:
                sentence = w.say("model_order_layer_parameters", **pieces, parameters=", ".join(placed.parameters))
            else:
                sentence = w.say("model_order_layer", **pieces)
            blocks.append(sentence)

    walk(top)
    return blocks


# --- numbers --------------------------------------------------------------------------------------------------


def _float(value: object) -> sympy.Float:
    return sympy.Float(repr(float(value)) if not isinstance(value, str) else value, PRECISION)


def _flat(value: object) -> list:
    if isinstance(value, (list, tuple)):
        return [entry for part in value for entry in _flat(part)]
    if hasattr(value, "tolist"):
        return _flat(value.tolist())
    return [value]


@dataclass(frozen=True)
class NormNumbers:
    """A normalisation layer's numbers along one vector (BatchNorm: channel 1 over the batch and its positions;
    LayerNorm: sample 1's features): its input x, μ, σ̂, x̂, the upstream g = ∂L/∂y, γ along it, and ∂L/∂x
    (SymPy's diff of the loss), each a 40-digit SymPy Float."""

    position: str
    layer: str
    x: tuple[sympy.Float, ...]
    mu: sympy.Float
    sigma_hat: sympy.Float
    xhat: tuple[sympy.Float, ...]
    g: tuple[sympy.Float, ...]
    scale: tuple[sympy.Float, ...]
    dx: tuple[sympy.Float, ...]
    sample: int = 0  # LayerNorm: which sample (0-based) the vector is


class ModelNumbers:
    """The model's forward pass on ``values`` in 40-digit SymPy numbers, and ∂L/∂ of any layer's input or output in
    forward mode: one entry at a time carries a tangent (``Dual``) through the rest of the forward definitions, the
    activations' and the loss's derivatives taken by ``sympy.diff``. (Making every entry a symbol and ``diff``-ing
    the loss is the same derivative, but the expression through a LayerNorm and the layers after it grows past
    minutes for a 3 × 4 batch.)"""

    def __init__(self, model: Model, values: Mapping[str, object]):
        if not isinstance(values, Mapping):
            raise InputError(f"values must be a mapping of names to numbers; got {type(values).__name__}")
        self.model = model
        needed = {"x": (model.input_shape,), "y": ((model.output_size,),)}
        shapes = {
            **{k: (s,) for k, s in model.parameter_shapes.items()},
            **{k: (s,) for k, s in model.mask_shapes.items()},
        }
        missing = [name for name in (*needed, *shapes) if name not in values]
        if missing:
            raise InputError(f"values lack {', '.join(missing)}")
        self.x = [[_float(v) for v in _flat(row)] for row in values["x"]]
        self.y = [[_float(v) for v in _flat(row)] for row in values["y"]]
        self.batch = len(self.x)
        self.parameters = {name: [_float(v) for v in _flat(values[name])] for name in model.parameter_shapes}
        self.masks = {name: [[_float(v) for v in _flat(row)] for row in values[name]] for name in model.mask_shapes}
        for name, shape in model.parameter_shapes.items():
            if len(self.parameters[name]) != math.prod(shape):
                raise InputError(
                    f"{name} has {len(self.parameters[name])} numbers; its shape {shape} needs {math.prod(shape)}"
                )

    # the forward pass, one layer at a time; a batch is a list of samples, each a flat list (C-order)
    def _layer(self, placed: Placed, batch: list[list[sympy.Expr]], perturb) -> list[list[sympy.Expr]]:
        layer, shape = placed.layer, placed.shape_in
        if isinstance(layer, Linear):
            weight = self.parameters[f"W{placed.number}"]
            columns = shape[0]
            bias = self.parameters.get(f"b{placed.number}", [0] * layer.out)
            return [
                [_total(weight[o * columns + c] * row[c] for c in range(columns)) + bias[o] for o in range(layer.out)]
                for row in batch
            ]
        if isinstance(layer, Act):
            return [_activated(layer.rule, row) for row in batch]
        if isinstance(layer, LayerNorm):
            gamma_, beta_ = self.parameters[f"gamma{placed.number}"], self.parameters[f"beta{placed.number}"]
            out = []
            for row in batch:
                centre = _total(row) / len(row)
                spread = _total((v - centre) ** 2 for v in row) / len(row)
                root = _root(spread + _float(layer.eps))
                out.append([gamma_[u] * (row[u] - centre) / root + beta_[u] for u in range(len(row))])
            return out
        if isinstance(layer, BatchNorm):
            gamma_, beta_ = self.parameters[f"gamma{placed.number}"], self.parameters[f"beta{placed.number}"]
            channels, per = shape[0], math.prod(shape[1:])
            out = [list(row) for row in batch]
            for c in range(channels):
                entries = [(b_, c * per + s) for b_ in range(len(batch)) for s in range(per)]
                column = [batch[b_][e] for b_, e in entries]
                centre = _total(column) / len(column)
                spread = _total((v - centre) ** 2 for v in column) / len(column)
                root = _root(spread + _float(layer.eps))
                for b_, e in entries:
                    out[b_][e] = gamma_[c] * (batch[b_][e] - centre) / root + beta_[c]
            return out
        if isinstance(layer, Dropout):
            (mask_name,) = placed.masks
            mask = self.masks[mask_name]
            keep = 1 - _float(layer.p)
            return [
                [m_ * v / keep for m_, v in zip(mrow, row, strict=True)] for mrow, row in zip(mask, batch, strict=True)
            ]
        if isinstance(layer, Flatten):
            return batch
        if isinstance(layer, Conv):
            return [self._convolved(placed, row) for row in batch]
        if isinstance(layer, Pool):
            return [_pooled(placed, row) for row in batch]
        raise NetworkError(f"no numbers for {type(layer).__name__}")

    def _convolved(self, placed: Placed, row: Sequence) -> list:
        """y[o,t] = b[o] + Σ_c Σ_k W[o,c,k] x[c, s t + k − P], the terms that fall in the zero padding left out."""
        layer, shape = placed.layer, placed.shape_in
        weight = self.parameters[f"W{placed.number}"]
        bias = self.parameters.get(f"b{placed.number}")
        kernel_shape = (layer.out_channels, shape[0], *layer.kernel)
        found = []
        for o_, *ts in _entries(placed.shape_out):
            terms = []
            for c_ in range(shape[0]):
                for ks in _entries(layer.kernel):
                    u = [s_ * t_ + k_ - p_ for t_, k_, s_, p_ in zip(ts, ks, layer.stride, layer.padding, strict=True)]
                    if all(0 <= u_ < n_ for u_, n_ in zip(u, shape[1:], strict=True)):
                        terms.append(weight[_ravel((o_, c_, *ks), kernel_shape)] * row[_ravel((c_, *u), shape)])
            found.append(_total(terms) + (bias[o_] if bias else 0))
        return found

    def _run(self, members: Sequence[Placed], batch, perturb) -> list[list[sympy.Expr]]:
        for placed in members:
            if perturb is not None and perturb[0] == (placed.position, "in"):
                batch = _perturbed(batch, perturb[1])
            if isinstance(placed.layer, Residual):
                inner = [q for q in self.model.placed if q.inside[-1:] == (placed.position,)]
                block = self._run(inner, batch, perturb)
                batch = [[u + v for u, v in zip(a_, b_, strict=True)] for a_, b_ in zip(batch, block, strict=True)]
            else:
                batch = self._layer(placed, batch, perturb)
            if perturb is None:
                self._seen[placed.position] = batch
            if perturb is not None and perturb[0] == (placed.position, "out"):
                batch = _perturbed(batch, perturb[1])
        return batch

    def loss(self, output) -> sympy.Expr | Dual:
        rule = self.model.loss_rule
        total = _total(_per_sample(rule, row, target) for row, target in zip(output, self.y, strict=True))
        return total / self.batch if self.model.reduction == "mean" else total

    @functools.cached_property
    def forward(self) -> dict[str, list[list[sympy.Expr]]]:
        """Every layer's output, by position, and the model's input at "0"."""
        self._seen: dict[str, list[list[sympy.Expr]]] = {"0": self.x}
        top = [q for q in self.model.placed if not q.inside]
        self._run(top, [list(row) for row in self.x], None)
        return self._seen

    def gradient(self, position: str, side: str) -> list[list[sympy.Float]]:
        """∂L/∂ (the input, ``side`` "in", or the output, "out") of the layer at ``position``, entry by entry."""
        placed = next(q for q in self.model.placed if q.position == position)
        count = math.prod(placed.shape_in if side == "in" else placed.shape_out)
        self.forward  # noqa: B018 - the numbers before the perturbation
        top = [q for q in self.model.placed if not q.inside]
        found = []
        for sample in range(self.batch):
            row = []
            for entry in range(count):
                loss = self.loss(self._run(top, [list(r) for r in self.x], ((position, side), (sample, entry))))
                row.append(sympy.Float(loss.tangent if isinstance(loss, Dual) else 0, PRECISION))
            found.append(row)
        return found

    def norm(self, position: str) -> NormNumbers:
        placed = next(q for q in self.model.placed if q.position == position)
        inputs = self.forward[_input_position(self.model, placed)]
        upstream, dx = self.gradient(position, "out"), self.gradient(position, "in")
        scale_all = self.parameters[f"gamma{placed.number}"]
        if isinstance(placed.layer, BatchNorm):
            per = math.prod(placed.shape_in[1:])
            entries = [(b_, s) for b_ in range(self.batch) for s in range(per)]
            scale = [scale_all[0]] * len(entries)
        else:
            # the first sample whose upstream g is not all 0 (a relu that is off, a dropped entry: nothing to work)
            sample = next((b_ for b_, row in enumerate(upstream) if any(v != 0 for v in row)), 0)
            entries = [(sample, u) for u in range(math.prod(placed.shape_in))]
            scale = scale_all
        xs = [inputs[b_][e] for b_, e in entries]
        centre = _total(xs) / len(xs)
        spread = _total((v - centre) ** 2 for v in xs) / len(xs)
        root = sympy.sqrt(spread + _float(placed.layer.eps))
        evaluated = functools.partial(lambda v: sympy.Float(sympy.N(v, PRECISION), PRECISION))
        return NormNumbers(
            position,
            type(placed.layer).__name__,
            tuple(evaluated(v) for v in xs),
            evaluated(centre),
            evaluated(root),
            tuple(evaluated((v - centre) / root) for v in xs),
            tuple(upstream[b_][e] for b_, e in entries),
            tuple(scale),
            tuple(dx[b_][e] for b_, e in entries),
            entries[0][0] if isinstance(placed.layer, LayerNorm) else 0,
        )


def _entries(shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Every index of an array of ``shape``, in C order (the order of a sample's flat list)."""
    return list(itertools.product(*(range(n_) for n_ in shape)))


def _ravel(index: Sequence[int], shape: Sequence[int]) -> int:
    flat = 0
    for u, n_ in zip(index, shape, strict=True):
        flat = flat * n_ + u
    return flat


def _window(layer: Pool, ts: Sequence[int]) -> list[tuple[int, ...]]:
    """The input positions of window ts: s t + k for every k of the kernel."""
    return [
        tuple(s_ * t_ + k_ for s_, t_, k_ in zip(layer.stride, ts, ks, strict=True)) for ks in _entries(layer.kernel)
    ]


def _plain(value) -> sympy.Expr:
    return value.value if isinstance(value, Dual) else value


def _pooled(placed: Placed, row: Sequence) -> list:
    """Each window's max (the first of equal largest entries, as torch picks) or mean."""
    layer, shape = placed.layer, placed.shape_in
    found = []
    for c_, *ts in _entries(placed.shape_out):
        window = [row[_ravel((c_, *u), shape)] for u in _window(layer, ts)]
        found.append(max(window, key=_plain) if layer.kind == "max" else _total(window) / math.prod(layer.kernel))
    return found


def _perturbed(batch, at: tuple[int, int]):
    """The batch with entry ``at`` (sample, entry) carrying the tangent 1: the direction ∂L/∂ that entry is taken in."""
    sample, entry = at
    batch = [list(row) for row in batch]
    batch[sample][entry] = Dual(batch[sample][entry], sympy.Float(1, PRECISION))
    return batch


class Dual:
    """A number and its derivative in one direction (forward-mode differentiation): the arithmetic of the forward
    definitions, and ``_root``, ``_activated``, ``_per_sample`` for what they apply."""

    __slots__ = ("tangent", "value")

    def __init__(self, value, tangent):
        self.value, self.tangent = value, tangent

    @staticmethod
    def _of(other) -> Dual:
        return other if isinstance(other, Dual) else Dual(other, 0)

    def __add__(self, other):
        other = Dual._of(other)
        return Dual(self.value + other.value, self.tangent + other.tangent)

    __radd__ = __add__

    def __neg__(self):
        return Dual(-self.value, -self.tangent)

    def __sub__(self, other):
        return self + (-Dual._of(other))

    def __rsub__(self, other):
        return Dual._of(other) + (-self)

    def __mul__(self, other):
        other = Dual._of(other)
        return Dual(self.value * other.value, self.tangent * other.value + self.value * other.tangent)

    __rmul__ = __mul__

    def __truediv__(self, other):
        other = Dual._of(other)
        return Dual(
            self.value / other.value, (self.tangent * other.value - self.value * other.tangent) / other.value**2
        )

    def __rtruediv__(self, other):
        return Dual._of(other) / self

    def __pow__(self, exponent: int):
        return Dual(self.value**exponent, exponent * self.value ** (exponent - 1) * self.tangent)


def _total(terms) -> sympy.Expr | Dual:
    return sum(terms, sympy.Integer(0))


def _root(value):
    if isinstance(value, Dual):
        root = sympy.sqrt(value.value)
        return Dual(root, value.tangent / (2 * root))
    return sympy.sqrt(value)


def _through(expressions: Sequence[sympy.Expr], variables: Sequence[Symbol], given: Sequence) -> list:
    """``expressions`` (in ``variables``) at the numbers ``given``, with their tangents when any is a Dual: the
    derivatives by ``sympy.diff``, the tangent Σ_v ∂e/∂v · v′."""
    numbers = {v: (g_.value if isinstance(g_, Dual) else g_) for v, g_ in zip(variables, given, strict=True)}
    values = [sympy.Float(e.xreplace(numbers).evalf(PRECISION), PRECISION) for e in expressions]
    if not any(isinstance(g_, Dual) for g_ in given):
        return values
    tangents = {v: g_.tangent for v, g_ in zip(variables, given, strict=True) if isinstance(g_, Dual)}
    return [
        Dual(value, _total(sympy.diff(e, v).xreplace(numbers).evalf(PRECISION) * t for v, t in tangents.items()))
        for value, e in zip(values, expressions, strict=True)
    ]


def _activated(rule, row: Sequence) -> list:
    variables = [Symbol(f"z_{u}", real=True) for u in range(len(row))]
    return _through(rule.outputs(variables), variables, row)


def _per_sample(rule, row: Sequence, target: Sequence) -> sympy.Expr | Dual:
    variables = [Symbol(f"y_hat_{u}", real=True) for u in range(len(row))]
    (value,) = _through([rule.per_sample(variables, list(target))], variables, row)
    return value


def _shown(value: sympy.Expr, symbol: sympy.Basic | None = None) -> Shown:
    return Shown(float(value), SHOWN, symbol)


def _row(values: Sequence[sympy.Expr]) -> sympy.Matrix:
    return sympy.Matrix([[_shown(v) for v in values]])


def _numbers(w: _ModelWriter, model: Model, numbers: ModelNumbers) -> list[Block]:
    """Each normalisation layer along one vector: μ, σ̂, x̂, g, ĝ, the textbook's ∂L/∂x_1 worked, ∂L/∂x."""
    blocks: list[Block] = []
    for placed in model.placed:
        if math.prod(placed.shape_in) * numbers.batch > NUMBERS_LIMIT:
            continue
        if isinstance(placed.layer, Conv):
            blocks += _conv_numbers(w, placed, numbers)
        if isinstance(placed.layer, Pool):
            blocks += _pool_numbers(w, placed, numbers)
        if not isinstance(placed.layer, (LayerNorm, BatchNorm)):
            continue
        found = numbers.norm(placed.position)
        size = len(found.x)
        blocks += [
            w.heading(
                "model_heading_numbers",
                3,
                layer=w.w("model_named", name=_shown_position(placed.position), detail=found.layer),
            ),
            w.say(
                "model_numbers_batchnorm" if found.layer == "BatchNorm" else "model_numbers_layernorm",
                n=size,
                sample=found.sample + 1,
            ),
        ]
        mean_x = sympy.Add(*found.x) / size
        ghat = [s_ * g_ for s_, g_ in zip(found.scale, found.g, strict=True)]
        mean_ghat = sympy.Add(*ghat) / size
        mean_both = sympy.Add(*(a_ * b_ for a_, b_ in zip(ghat, found.xhat, strict=True))) / size
        textbook_first = (ghat[0] - mean_ghat - found.xhat[0] * mean_both) / found.sigma_hat

        def vector(name: sympy.Basic, entries: Sequence[sympy.Expr]) -> Chain:
            row = _row(entries)
            return Chain((w.show(name, sympy.Matrix([list(entries)])), w.show(row, row.applyfunc(_value_of))))

        variance = found.sigma_hat**2 - _float(placed.layer.eps)
        squares = ((_shown(v, Symbol(f"x{u}")) - _shown(found.mu, mu)) ** 2 for u, v in enumerate(found.x))
        worked_variance = Factors(one(size), sympy.Add(*squares, evaluate=False))
        epsilon = sympy.Float(placed.layer.eps, 3)
        worked_root = sympy.sqrt(sympy.Add(_shown(variance, SIGMA2), epsilon, evaluate=False), evaluate=False)
        worked_mean = Factors(
            sympy.Integer(1) / size,
            sympy.Add(*(_shown(v, Symbol(f"x{u}")) for u, v in enumerate(found.x)), evaluate=False),
        )
        blocks += [
            vector(X_WHOLE, found.x),
            Chain(
                (
                    w.show(mu, found.mu),
                    w.show(worked_mean, _value_of(worked_mean)),
                    w.show(_shown(mean_x), _value_of(_shown(mean_x))),
                )
            ),
            Chain(
                (
                    w.show(SIGMA2, variance),
                    w.show(worked_variance, _value_of(worked_variance)),
                    w.show(_shown(variance), _value_of(_shown(variance))),
                )
            ),
            Chain(
                (
                    w.show(sigma_hat, found.sigma_hat),
                    w.show(worked_root, _value_of(worked_root)),
                    w.show(_shown(found.sigma_hat), _value_of(_shown(found.sigma_hat))),
                )
            ),
            vector(Symbol("xhat"), found.xhat),
            vector(g, found.g),
            vector(Symbol("ghat"), ghat),
            Chain(
                (
                    w.show(Factors(one(size), Sum(GHAT[i], (i, 1, size))), mean_ghat),
                    w.show(_shown(mean_ghat), _value_of(_shown(mean_ghat))),
                )
            ),
            Chain(
                (
                    w.show(Factors(one(size), Sum(GHAT[i] * XHAT[i], (i, 1, size))), mean_both),
                    w.show(_shown(mean_both), _value_of(_shown(mean_both))),
                )
            ),
            w.say("model_numbers_worked"),
        ]
        # the two means' symbols (never printed) keep the terms in the textbook's order: ĝ₁ − mean(ĝ) − x̂₁·(...)
        numerator = (
            _shown(ghat[0], GHAT[1])
            - _shown(mean_ghat, Symbol("m1"))
            - Factors(_shown(found.xhat[0], XHAT[1]), _shown(mean_both, Symbol("m2")))
        )
        worked = Factors(_shown(1 / found.sigma_hat, sigma_hat), numerator)  # 1/σ̂ as one number: 1/σ̂ · (…)
        blocks += [
            Chain(
                (
                    w.show(Partial(LOSS, x[1]), found.dx[0]),
                    w.show(worked, _value_of(worked)),
                    w.show(_shown(textbook_first), _value_of(_shown(textbook_first))),
                ),
                "worked",
            ),
            vector(Partial(LOSS, X_WHOLE), found.dx),
            w.say("model_numbers_checked"),
        ]
    return blocks


# --- convolution and pooling in numbers ------------------------------------------------------------------------


def _grid(values: Sequence, spatial: Sequence[int]) -> sympy.Matrix:
    """A channel's entries as the page shows them: a row (1-D) or rows × columns (2-D)."""
    rows = spatial[0] if len(spatial) == 2 else 1
    return sympy.Matrix(rows, len(values) // rows, list(values))


def _first_sample(upstream: Sequence[Sequence]) -> int:
    """The first sample whose upstream g is not all 0 (a relu that is off leaves nothing to work)."""
    return next((b_ for b_, row in enumerate(upstream) if not all(_is_zero(v) for v in row)), 0)


def _is_zero(value) -> bool:
    """Whether a number is 0 (SymPy's Float(0) != 0 holds: a Float is never == an Integer)."""
    return bool(sympy.sympify(value).is_zero)


def conv_spread(layer: Conv, upstream: Sequence, out_shape: Sequence[int]) -> dict[tuple[int, ...], sympy.Expr]:
    """ĝ[o,u] = g[o,t] where u = s t + K − 1 (the stride's s − 1 zeros between entries, K − 1 around), else 0."""
    spatial = out_shape[1:]
    spread_shape = [(t_ - 1) * s_ + 1 + 2 * (k_ - 1) for t_, s_, k_ in zip(spatial, layer.stride, layer.kernel)]
    found: dict[tuple[int, ...], sympy.Expr] = {}
    for o_ in range(out_shape[0]):
        found.update({(o_, *u): sympy.Integer(0) for u in _entries(spread_shape)})
        for ts in _entries(spatial):
            u = tuple(s_ * t_ + k_ - 1 for s_, t_, k_ in zip(layer.stride, ts, layer.kernel, strict=True))
            found[(o_, *u)] = upstream[_ravel((o_, *ts), out_shape)]
    return found


def conv_products(
    layer: Conv, spread: Mapping, weight: Sequence, kernel_shape: Sequence[int], channel: int, entry, flipped=True
) -> list[tuple[tuple[int, ...], tuple[int, ...], sympy.Expr, sympy.Expr]]:
    """The nonzero terms of ∂L/∂x[c,i] = Σ_o Σ_k ĝ[o, i + P + k] W[o, c, K − 1 − k]: (ĝ's index, W's index, ĝ, W).
    ``flipped=False`` pairs ĝ with W[o, c, k] instead, the mistake the tests plant."""
    found = []
    for o_ in range(kernel_shape[0]):
        for ks in _entries(layer.kernel):
            u = (o_, *(i_ + p_ + k_ for i_, p_, k_ in zip(entry, layer.padding, ks, strict=True)))
            taps = tuple(n_ - 1 - k_ if flipped else k_ for n_, k_ in zip(layer.kernel, ks, strict=True))
            if not _is_zero(spread.get(u, 0)):
                found.append((u, (o_, channel, *taps), spread[u], weight[_ravel((o_, channel, *taps), kernel_shape)]))
    return found


def pool_routed(layer: Pool, inputs: Sequence, upstream: Sequence, shape, out_shape, channel: int, shift: int = 0):
    """∂L/∂x of one channel by the routing rule: each window's g to its arg-max (max) or g/K to each entry (avg).
    ``shift`` moves the max's g that many entries along its window, the mistake the tests plant."""
    found = [sympy.Integer(0)] * math.prod(shape[1:])
    for ts in _entries(out_shape[1:]):
        window = _window(layer, ts)
        gradient = upstream[_ravel((channel, *ts), out_shape)]
        if layer.kind == "max":
            values = [inputs[_ravel((channel, *u), shape)] for u in window]
            top = values.index(max(values))
            targets = [(window[(top + shift) % len(window)], gradient)]
        else:
            targets = [(u, gradient / math.prod(layer.kernel)) for u in window]
        for u, share in targets:
            found[_ravel(u, shape[1:])] += share
    return found


def _conv_numbers(w: _ModelWriter, placed: Placed, numbers: ModelNumbers) -> list[Block]:
    """One sample, input channel 0: g, ĝ and the kernel per output channel, one entry of ∂L/∂x worked through the
    correlation of ĝ with the flipped kernel (its nonzero products), then the whole ∂L/∂x of that channel."""
    layer, shape, out_shape = placed.layer, placed.shape_in, placed.shape_out
    upstream, dx = numbers.gradient(placed.position, "out"), numbers.gradient(placed.position, "in")
    sample, channel = _first_sample(upstream), 0
    weight = numbers.parameters[f"W{placed.number}"]
    kernel_shape = (layer.out_channels, shape[0], *layer.kernel)
    spread = conv_spread(layer, upstream[sample], out_shape)
    local = [dx[sample][_ravel((channel, *u), shape)] for u in _entries(shape[1:])]
    # the entry with the most nonzero products (then the largest gradient): the correlation's pattern at its fullest
    entry = max(
        _entries(shape[1:]),
        key=lambda u: (
            len(conv_products(layer, spread, weight, kernel_shape, channel, u)),
            abs(local[_ravel(u, shape[1:])]),
        ),
    )
    terms = conv_products(layer, spread, weight, kernel_shape, channel, entry)
    blocks: list[Block] = [
        w.heading(
            "model_heading_numbers",
            3,
            layer=w.w("model_named", name=_shown_position(placed.position), detail=f"Conv{layer.dims}d"),
        ),
        w.say(
            "model_numbers_conv",
            sample=sample + 1,
            stride=_axes_text(layer.stride),
            padding=_axes_text(layer.padding),
            kernel=_axes_text(layer.kernel),
        ),
    ]
    spread_shape = [(t_ - 1) * s_ + 1 + 2 * (k_ - 1) for t_, s_, k_ in zip(out_shape[1:], layer.stride, layer.kernel)]
    for o_ in range(layer.out_channels):
        g_o = [upstream[sample][_ravel((o_, *ts), out_shape)] for ts in _entries(out_shape[1:])]
        ghat_o = [spread[(o_, *u)] for u in _entries(spread_shape)]
        kernel_o = [weight[_ravel((o_, channel, *ks), kernel_shape)] for ks in _entries(layer.kernel)]
        blocks += [
            _grid_chain(w, g[o_], g_o, out_shape[1:]),
            _grid_chain(w, GHAT[o_], ghat_o, spread_shape),
            _grid_chain(w, KERNEL[o_, channel], kernel_o, layer.kernel),
        ]
    at = x[(channel, *entry)]
    symbolic_terms = sympy.Add(*(Factors(GHAT[u], KERNEL[t]) for u, t, _, _ in terms), evaluate=False)
    worked = sympy.Add(*(Factors(_shown(a_, GHAT[u]), _shown(b_, KERNEL[t])) for u, t, a_, b_ in terms), evaluate=False)
    total = _total(a_ * b_ for _, _, a_, b_ in terms)
    blocks += [
        w.say("model_numbers_conv_worked", entry=w.show(at), form=w.show(_conv_textbook())),
        Chain(
            (
                w.show(Partial(LOSS, at), local[_ravel(entry, shape[1:])]),
                w.show(symbolic_terms, total),
                w.show(worked, _value_of(worked)),
                w.show(_shown(total), _value_of(_shown(total))),
            ),
            "worked",
        ),
        _grid_chain(w, Partial(LOSS, x[channel]), local, shape[1:]),
        w.say("model_numbers_checked"),
    ]
    return blocks


def _conv_textbook() -> sympy.Expr:
    """Σ_o Σ_k ĝ[o, i + P + k] W[o, c, K − 1 − k], one axis (a 2-D kernel is the same along each), for the prose."""
    o_, c_, k_, i_ = (Symbol(name, integer=True) for name in ("o", "c", "k", "i"))
    padding, kernel, outs = (Symbol(name, integer=True, positive=True) for name in ("P", "K", "O"))
    term = Factors(GHAT[o_, i_ + padding + k_], KERNEL[o_, c_, kernel - 1 - k_])
    return Sum(term, (k_, 0, kernel - 1), (o_, 0, outs - 1))


def _pool_numbers(w: _ModelWriter, placed: Placed, numbers: ModelNumbers) -> list[Block]:
    """One sample, channel 0: the layer's input and g; max: one window, its arg-max and where g goes (an entry that
    is the arg-max of two overlapping windows, its two contributions added); avg: one entry's shares; ∂L/∂x."""
    layer, shape, out_shape = placed.layer, placed.shape_in, placed.shape_out
    upstream, dx = numbers.gradient(placed.position, "out"), numbers.gradient(placed.position, "in")
    sample, channel = _first_sample(upstream), 0
    inputs = numbers.forward[_input_position(numbers.model, placed)][sample]
    local = [dx[sample][_ravel((channel, *u), shape)] for u in _entries(shape[1:])]
    routed = pool_routed(layer, inputs, upstream[sample], shape, out_shape, channel)
    name = f"{'Max' if layer.kind == 'max' else 'Avg'}Pool{layer.dims}d"
    blocks: list[Block] = [
        w.heading(
            "model_heading_numbers", 3, layer=w.w("model_named", name=_shown_position(placed.position), detail=name)
        ),
        w.say(
            "model_numbers_pool", sample=sample + 1, kernel=_axes_text(layer.kernel), stride=_axes_text(layer.stride)
        ),
        _grid_chain(w, x[channel], [inputs[_ravel((channel, *u), shape)] for u in _entries(shape[1:])], shape[1:]),
        _grid_chain(
            w,
            g[channel],
            [upstream[sample][_ravel((channel, *ts), out_shape)] for ts in _entries(out_shape[1:])],
            out_shape[1:],
        ),
    ]
    windows = {ts: _window(layer, ts) for ts in _entries(out_shape[1:])}
    if layer.kind == "max":
        tops = {}
        for ts, window in windows.items():
            values = [inputs[_ravel((channel, *u), shape)] for u in window]
            tops[ts] = window[values.index(max(values))]
        shared = [(ts, other) for ts in windows for other in windows if ts < other and tops[ts] == tops[other]]
        first = shared[0][0] if shared else next(iter(windows))
        window = windows[first]
        values = [inputs[_ravel((channel, *u), shape)] for u in window]
        top = tops[first]
        worked = Applied(Symbol("max"), *(_shown(v, x[(channel, *u)]) for u, v in zip(window, values, strict=True)))
        blocks += [
            w.say("model_numbers_window", window=w.show(Y[(channel, *first)]), top=w.show(x[(channel, *top)])),
            Chain(
                (
                    w.show(Y[(channel, *first)], max(values)),
                    w.show(Applied(Symbol("max"), *(x[(channel, *u)] for u in window)), max(values)),
                    w.show(worked, max(_value_of(v) for v in worked.args[1:])),
                    w.show(_shown(max(values), x[(channel, *top)]), _value_of(_shown(max(values)))),
                )
            ),
        ]
        if shared:
            one_, other = shared[0]
            both = [upstream[sample][_ravel((channel, *ts), out_shape)] for ts in (one_, other)]
            at = x[(channel, *top)]
            blocks += [
                w.say("model_numbers_overlap", entry=w.show(at)),
                Chain(
                    (
                        w.show(Partial(LOSS, at), local[_ravel(top, shape[1:])]),
                        w.show(sympy.Add(g[(channel, *one_)], g[(channel, *other)], evaluate=False), both[0] + both[1]),
                        w.show(
                            sympy.Add(
                                _shown(both[0], g[(channel, *one_)]),
                                _shown(both[1], g[(channel, *other)]),
                                evaluate=False,
                            ),
                            _value_of(_shown(both[0])) + _value_of(_shown(both[1])),
                        ),
                        w.show(_shown(both[0] + both[1]), _value_of(_shown(both[0] + both[1]))),
                    ),
                    "worked",
                ),
            ]
    else:
        # the entry in the most windows (then the largest gradient): its shares g/K, one per window, added
        spatial = shape[1:]
        entry = max(
            _entries(spatial),
            key=lambda u: (sum(u in window for window in windows.values()), abs(local[_ravel(u, spatial)])),
        )
        covering = [ts for ts, window in windows.items() if entry in window]
        shares = [upstream[sample][_ravel((channel, *ts), out_shape)] for ts in covering]
        size = sympy.Integer(math.prod(layer.kernel))
        worked = sympy.Add(
            *(Factors(one(size), _shown(v, g[(channel, *ts)])) for ts, v in zip(covering, shares, strict=True)),
            evaluate=False,
        )
        total = _total(shares) / size
        at = x[(channel, *entry)]
        blocks += [
            w.say("model_numbers_average", entry=w.show(at), windows=len(covering)),
            Chain(
                (
                    w.show(Partial(LOSS, at), local[_ravel(entry, spatial)]),
                    w.show(
                        sympy.Add(*(Factors(one(size), g[(channel, *ts)]) for ts in covering), evaluate=False), total
                    ),
                    w.show(worked, _value_of(worked)),
                    w.show(_shown(total), _value_of(_shown(total))),
                ),
                "worked",
            ),
        ]
    blocks += [
        w.say("model_numbers_routed" if layer.kind == "max" else "model_numbers_shared"),
        Chain(
            (
                w.show(Partial(LOSS, x[channel]), _grid(local, shape[1:])),
                w.show(
                    _grid([_shown(v) for v in routed], shape[1:]),
                    _grid([_value_of(_shown(v)) for v in routed], shape[1:]),
                ),
            )
        ),
        w.say("model_numbers_checked"),
    ]
    return blocks


def _grid_chain(w: _ModelWriter, name: sympy.Basic, values: Sequence, spatial: Sequence[int]) -> Chain:
    shown = _grid([_shown(v) for v in values], spatial)
    return Chain((w.show(name, _grid(values, spatial)), w.show(shown, shown.applyfunc(_value_of))))


def _axes_text(values: Sequence[int]) -> str:
    return " × ".join(str(v) for v in values)


def one(size: int) -> sympy.Rational:
    return sympy.Integer(1) / size


def _value_of(tree: sympy.Expr) -> sympy.Expr:
    """A worked tree's number: each Shown as the decimal it shows, Factors multiplied."""
    value = tree.replace(lambda e: isinstance(e, Factors), lambda e: sympy.Mul(*e.args))
    return value.replace(lambda e: isinstance(e, Shown), lambda e: e.args[0])


def example_values(model: Model, batch: int = 4, seed: int = 0) -> dict[str, list]:
    """Small numbers for a model's page (one decimal, so that a reader can follow them): x and every parameter
    in [−1, 1] (γ in [0.5, 1.5]), y in [0.1, 0.9] (a sigmoid or softmax output can reach it), masks of 0 and 1."""
    import random

    generator = random.Random(seed)

    def numbers(shape: tuple[int, ...], low: float, high: float) -> list:
        if len(shape) == 1:
            return [round(generator.uniform(low, high), 1) for _ in range(shape[0])]
        return [numbers(shape[1:], low, high) for _ in range(shape[0])]

    values: dict[str, list] = {
        "x": numbers((batch, *model.input_shape), -1, 1),
        "y": numbers((batch, model.output_size), 0.1, 0.9),
    }
    for name, shape in model.parameter_shapes.items():
        values[name] = numbers(shape, 0.5, 1.5) if name.startswith("gamma") else numbers(shape, -1, 1)
    for name, shape in model.mask_shapes.items():
        values[name] = [[generator.choice((0, 1, 1)) for _ in range(math.prod(shape))] for _ in range(batch)]
    return values


# --- the whole page in each format --------------------------------------------------------------------------

FORMATS = ("text", "latex", "markdown", "html", "pdf")


def render_model(
    model: Model,
    format: str = "text",
    lang: str = "en",
    values: Mapping[str, object] | None = None,
    output: str | Path | None = None,
) -> str:
    """The model's page as text, LaTeX, Markdown, a web page (HTML) or a PDF file (``output``; returns pdflatex's
    log)."""
    if format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    title = words(lang)["model_title"]
    blocks = explain_model(model, values, lang)
    if format == "text":
        return text_page(blocks)
    if format == "markdown":
        return markdown_page(blocks, title)
    if format == "html":  # one self-contained page, KaTeX inside it, as the dense pages' (``_html``)
        return html_document(_content(blocks, lang, None, title=title), lang, title)
    document = latex_document(latex_body(blocks), lang, title)
    if format == "latex":
        return document
    check_output_type(output)
    return build_pdf(document, output)
