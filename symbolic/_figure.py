"""The network drawn as a figure: one immutable description, two backends (TikZ for the PDF, SVG for Markdown).

A narrow network is drawn as the tutorial draws it: one circle per unit, one arrow per weight labelled with
the weight (its name, or with values its number). A wide one (more than
``MAX_UNITS`` units in a layer, or more than ``MAX_EDGES`` weights to label) is drawn as the computational
graph of whole layers, x → z⁽¹⁾ → a⁽¹⁾ → … → L, with the parameters as leaves and every node's shape.

The numbers come from the derivation's own evaluation (``Derivation.intermediates`` and ``evaluate``); this
module formats them and nothing else. Both backends place every node from the same two indices, its column
(layer) and its row (unit), so the PDF and the SVG show the same layout.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from xml.sax.saxutils import escape as xml_escape

import sympy

from ._derivation import Derivation, derive
from ._errors import NetworkTypeError
from ._network import Network
from ._printers import LatexNotation, Scientific, TextNotation, latex_name, text_name
from ._render import NUMBERS_LIMIT
from ._words import words

MAX_UNITS = 8  # a layer wider than this is drawn as one node of the layer graph
MAX_EDGES = 12  # more weights (biases included) than this cannot each carry a readable label: 3-4-2 already collides
FORWARD_COLOUR = "2E7D32"  # CS231n's convention: forward values in green ...
GRADIENT_COLOUR = "C62828"  # ... and gradients in red


@dataclass(frozen=True)
class Label:
    """One piece of text in the figure, as LaTeX (math mode) and as plain Unicode text (for SVG)."""

    latex: str
    text: str


@dataclass(frozen=True)
class Node:
    """A unit (kind "unit", "input", "bias", "loss") or a whole layer's quantity (kind "layer", "parameter")."""

    key: str
    kind: str
    column: float  # the layer (units) or the step of the computation (layer graph), left to right
    row: float  # the unit's place in its column, 0 at the middle, upwards positive
    label: Label
    shape: str | None = None  # "n×B" in the layer graph
    values: tuple[Label, ...] = ()  # forward values, drawn green
    gradients: tuple[Label, ...] = ()  # gradients of the loss, drawn red
    numbers_below: bool = False  # the numbers under the unit, not over it (the lowest unit of a column)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    weight: str | None = None  # the parameter entry it carries ("W1[2,1]"), None for an unweighted arrow
    label: Label | None = None  # the weight's name or its value
    numeric: bool = False  # the label is the weight's value (drawn green), not its name
    position: float = 0.3  # where along the arrow (0 at its tail, 1 at its head) the label sits


@dataclass(frozen=True)
class Figure:
    kind: str  # "units" or "layers"
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    caption: str
    column_step: float  # centimetres between columns
    row_step: float  # centimetres between rows

    def node(self, key: str) -> Node:
        return next(node for node in self.nodes if node.key == key)


# --- the description --------------------------------------------------------------------------------------


def _is_wide(network: Network) -> bool:
    weights = network.parameter_count
    return max(network.sizes) > MAX_UNITS or weights > MAX_EDGES


def _number(value: float) -> Label:
    """4 significant digits, plain or as mantissa × 10^e, printed by the derivation's own printers."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        tree: sympy.Basic = sympy.Float(float(f"{value:.4g}"), 4) if value != int(value) else sympy.Integer(int(value))
    else:
        mantissa, exponent = f"{value:.3e}".split("e")
        tree = Scientific(sympy.Float(mantissa, 4), int(exponent))
    return Label(LatexNotation({}).doprint(tree), TextNotation({}).doprint(tree))


def _named(symbol_name: str, value: float) -> Label:
    """``name = value`` (e.g. z = 1, δ = 1.224 × 10⁻⁴)."""
    number = _number(value)
    text = text_name(symbol_name)
    return Label(f"{latex_name(symbol_name)} = {number.latex}", f"{text} = {number.text}")


def network_figure(
    network: Network | Derivation, values: Mapping[str, object] | None = None, lang: str = "en"
) -> Figure:
    """The figure of ``network`` (a Network, or its Derivation to reuse), with ``values``' numbers if given.

    ``values`` is what ``Derivation.evaluate`` takes; the units show their forward values z, a (green) and
    their error δ = ∂L/∂z (red) for one sample, the edges their weight and ∂L/∂weight, the loss node L.
    """
    if isinstance(network, Derivation):
        derivation, network = network, network.network
    elif isinstance(network, Network):
        derivation = None
    else:
        raise NetworkTypeError(f"network_figure takes a Network or a Derivation; got {type(network).__name__}")
    w = words(lang)
    if _is_wide(network):
        return _layer_graph(network, w)
    derivation = derivation or derive(network)
    return _unit_graph(derivation, values, w)


def _unit_graph(derivation: Derivation, values: Mapping[str, object] | None, w: Mapping[str, str]) -> Figure:
    network = derivation.network
    sizes, depth = network.sizes, network.depth
    latex = LatexNotation(derivation.latex_names)
    text = TextNotation({})
    named: dict[str, list[list[float]]] = {}
    result: dict[str, object] = {}
    if values is not None and network.parameter_count * len(values["x"][0]) > NUMBERS_LIMIT:
        values = None  # as the page's numbers section: too many to evaluate here
    if values is not None:
        named, result = derivation.intermediates(values), derivation.evaluate(values)
    one_sample = values is not None and len(named["z1"][0]) == 1  # per-unit numbers only for a single sample

    def label(symbol: sympy.Symbol) -> Label:
        return Label(latex.doprint(symbol), text.doprint(symbol))

    nodes: list[Node] = []
    columns: list[list[sympy.Symbol]] = [list(derivation.symbols["x"])] + [list(layer.a) for layer in derivation.layers]
    for column, symbols in enumerate(columns):
        for i, symbol in enumerate(symbols):
            shown: tuple[Label, ...] = ()
            errors: tuple[Label, ...] = ()
            if column == 0 and values is not None and one_sample:
                shown = (_number(float(values["x"][i][0])),)
            elif column > 0 and one_sample:
                shown = (_named("z", named[f"z{column}"][i][0]), _named("a", named[f"a{column}"][i][0]))
                errors = (_named("delta", named[f"delta{column}"][i][0]),)
            nodes.append(
                Node(
                    key=f"u{column}-{i + 1}",
                    kind="input" if column == 0 else "unit",
                    column=column,
                    # a layered network is a column per layer: unit i of n sits i − (n−1)/2 steps from the middle
                    row=(len(symbols) - 1) / 2 - i,
                    label=label(symbol),
                    values=shown,
                    gradients=errors,
                    # the lowest unit's numbers go under it: over it they would lie across the arrows that cross
                    # between the columns and hide their weights (a bias's arrow only passes by, its label far off)
                    numbers_below=column > 0 and len(symbols) > 1 and i == len(symbols) - 1,
                )
            )
    loss_values = (_number(float(result["loss"])),) if values is not None else ()
    nodes.append(Node("loss", "loss", depth + 1, 0.0, Label("L", "L"), values=loss_values))

    edges: list[Edge] = []
    for layer in range(1, depth + 1):
        weights = derivation.symbols[f"W{layer}"]
        if network.bias:
            # the bias as the weight of a constant input 1, half a column before the layer and below both columns
            # it sits between (the values are drawn above the units, so below them the arrows cross nothing)
            lowest = -(max(sizes[layer - 1], sizes[layer]) - 1) / 2 - (2.5 if one_sample else 1)  # under the numbers
            nodes.append(Node(f"one{layer}", "bias", layer - 0.5, lowest, Label("1", "1")))
        for i in range(sizes[layer]):
            # the labels of the arrows into unit i sit at one place along them, a different place for every i:
            # arrows that leave one unit fan out, and their labels then stand apart along the way too
            position = 0.2 + 0.45 * i / (sizes[layer] - 1) if sizes[layer] > 1 else 0.3
            for j in range(sizes[layer - 1]):
                carried = _carried(f"W{layer}", weights[i, j], i, j, label, values)
                edges.append(Edge(f"u{layer - 1}-{j + 1}", f"u{layer}-{i + 1}", *carried, position))
            if network.bias:
                carried = _carried(f"b{layer}", derivation.symbols[f"b{layer}"][i, 0], i, 0, label, values)
                edges.append(Edge(f"one{layer}", f"u{layer}-{i + 1}", *carried, 0.3))
    edges += [Edge(f"u{depth}-{i + 1}", "loss") for i in range(sizes[-1])]

    if values is None:
        caption = w["figure_units"]
    else:
        caption = w["figure_units_values"] if one_sample else w["figure_units_batch"]
    if network.bias:
        caption += w["figure_bias"] if caption.endswith("。") else " " + w["figure_bias"]
    return Figure(
        kind="units",
        nodes=tuple(nodes),
        edges=tuple(edges),
        caption=caption,
        column_step=min(4.2, 15.0 / (depth + 1)),
        row_step=1.4 if one_sample else 1.3,
    )


def _carried(name, symbol, i, j, label, values) -> tuple[str, Label, bool]:
    """What the edge of the parameter entry ``name[i+1, j+1]`` carries: its name, or its value.

    Not its gradient: ∂L/∂W⁽ˡ⁾[i,j] = δ⁽ˡ⁾[i]·a⁽ˡ⁻¹⁾[j] is the red of the arrow's head times the green of its tail,
    and a second number on every arrow made the labels of crossing arrows collide."""
    entry = f"{name}[{i + 1},{j + 1}]"
    if values is None:
        return entry, label(symbol), False
    return entry, _number(float(values[name][i][j])), True


def _layer_graph(network: Network, w: Mapping[str, str]) -> Figure:
    """x → z⁽¹⁾ → a⁽¹⁾ → … → a⁽ᴸ⁾ → L along row 0; W⁽ˡ⁾, b⁽ˡ⁾ and y as leaves below the node they feed."""
    sizes, depth = network.sizes, network.depth

    def node(key: str, kind: str, column: int, row: float, shape: str) -> Node:
        return Node(key, kind, column, row, Label(latex_name(key), text_name(key)), shape=shape)

    nodes = [node("x", "layer", 0, 0.0, f"{sizes[0]}×B")]
    edges: list[Edge] = []
    previous = "x"
    for layer in range(1, depth + 1):
        z, a, column = f"z{layer}", f"a{layer}", 2 * layer - 1
        nodes += [
            node(z, "layer", column, 0.0, f"{sizes[layer]}×B"),
            node(a, "layer", column + 1, 0.0, f"{sizes[layer]}×B"),
            node(f"W{layer}", "parameter", column, -1.0, f"{sizes[layer]}×{sizes[layer - 1]}"),
        ]
        edges += [Edge(previous, z), Edge(f"W{layer}", z)]
        if network.bias:
            nodes.append(node(f"b{layer}", "parameter", column + 1, -1.0, f"{sizes[layer]}×1"))
            edges.append(Edge(f"b{layer}", z))
        edges.append(Edge(z, a))
        previous = a
    nodes += [
        Node("L", "loss", 2 * depth + 1, 0.0, Label("L", "L"), shape="1×1"),
        node("y", "parameter", 2 * depth + 1, -1.0, f"{sizes[-1]}×B"),
    ]
    edges += [Edge(previous, "L"), Edge("y", "L")]
    return Figure(
        kind="layers",
        nodes=tuple(nodes),
        edges=tuple(edges),
        caption=w["figure_layers"],
        # at least a box's width apart; a deeper graph is wider than the page, and the document scales it down
        column_step=max(1.6, min(2.4, 16.0 / (2 * depth + 1))),
        row_step=1.5,
    )


# --- TikZ ----------------------------------------------------------------------------------------------------


def _tikz_name(key: str) -> str:
    return key.replace("[", "-").replace("]", "").replace(",", "-")


def _tikz_line(labels: tuple[Label, ...], colour: str) -> list[str]:
    """One line of the labels, in ``colour`` (none when there are no labels)."""
    return [rf"\textcolor{{{colour}}}{{${', '.join(lab.latex for lab in labels)}$}}"] if labels else []


def figure_tikz(figure: Figure) -> str:
    """The figure as a ``tikzpicture`` (needs ``\\usepackage{tikz}``; colours are defined inside it).

    Each node is placed at (column, row) in a picture whose x unit is the column step and whose y unit the row
    step, so the code says which layer and which unit a node is, not where on the page it lands.
    """
    lines = [
        rf"\begin{{tikzpicture}}[x={figure.column_step:.2f}cm, y={figure.row_step:.2f}cm, >=stealth, "
        r"every node/.style={font=\footnotesize}, "
        r"unit/.style={circle, draw, thick, minimum size=8mm, inner sep=1pt}, "
        r"loss/.style={circle, draw, thick, double, minimum size=8mm, inner sep=1pt}, "
        r"bias/.style={circle, draw, dashed, minimum size=6mm, inner sep=1pt}, "
        r"layer/.style={rectangle, rounded corners, draw, thick, align=center, inner sep=2pt, minimum width=10mm}, "
        r"parameter/.style={rectangle, draw, fill=black!5, align=center, inner sep=2pt, minimum width=10mm}, "
        r"weight/.style={font=\scriptsize, sloped, inner sep=1pt, fill=white}, "
        r"numbers/.style={font=\scriptsize, align=center, anchor=south, inner sep=1pt, fill=white}]",
        rf"\definecolor{{chainruleforward}}{{HTML}}{{{FORWARD_COLOUR}}}",
        rf"\definecolor{{chainrulegradient}}{{HTML}}{{{GRADIENT_COLOUR}}}",
    ]
    for node in figure.nodes:
        if node.shape is not None:  # a whole layer's quantity: a box with its shape under its name
            style = {"parameter": "parameter", "loss": "layer, double"}.get(node.kind, "layer")
        else:
            style = {"input": "unit", "unit": "unit", "loss": "loss", "bias": "bias"}[node.kind]
        body = f"${node.label.latex}$"
        if node.shape is not None:
            shape = node.shape.replace("×", r" \times ")
            body += rf"\\{{\scriptsize ${shape}$}}"
        lines.append(rf"\node[{style}] ({_tikz_name(node.key)}) at ({node.column:g}, {node.row:g}) {{{body}}};")
    for edge in figure.edges:
        lines.append(rf"\draw[->] ({_tikz_name(edge.source)}) -- ({_tikz_name(edge.target)});")
    # the labels last, on white, so that no arrow drawn later runs through them
    for edge in figure.edges:
        if edge.label is not None:
            colour = "chainruleforward" if edge.numeric else "black"
            lines.append(
                rf"\path ({_tikz_name(edge.source)}) -- node[weight, above, pos={edge.position:.3g}] "
                rf"{{\textcolor{{{colour}}}{{${edge.label.latex}$}}}} ({_tikz_name(edge.target)});"
            )
    for node in figure.nodes:
        if node.values or node.gradients:
            lines_ = _tikz_line(node.values, "chainruleforward") + _tikz_line(node.gradients, "chainrulegradient")
            stacked = "\\\\".join(lines_)
            place = "anchor=north] at ({}.south)" if node.numbers_below else "] at ({}.north)"
            lines.append(rf"\node[numbers, {place.format(_tikz_name(node.key))} {{{stacked}}};")
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


# --- SVG -------------------------------------------------------------------------------------------------------

_PX = 40  # pixels per centimetre of the TikZ layout
_RADIUS = 0.45 * _PX  # a little over the TikZ units' 8 mm: SVG's serif font sets a⁽¹⁾[1] wider than TikZ's a^{(1)}_1


def figure_svg(figure: Figure) -> str:
    """The figure as one ``<svg>`` element (inline in Markdown and HTML), laid out as ``figure_tikz`` lays it."""
    margin = 2.2 * _PX if figure.kind == "units" else 1.2 * _PX
    columns = [node.column for node in figure.nodes]
    rows = [node.row for node in figure.nodes]
    left, top = min(columns) * figure.column_step, max(rows) * figure.row_step

    def at(node: Node) -> tuple[float, float]:
        # the same arithmetic as TikZ's (column × column step, row × row step), y pointing down in SVG
        return (
            margin + (node.column * figure.column_step - left) * _PX,
            margin + (top - node.row * figure.row_step) * _PX,
        )

    width = 2 * margin + (max(columns) - min(columns)) * figure.column_step * _PX
    height = 2 * margin + (max(rows) - min(rows)) * figure.row_step * _PX
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="max-width:100%;height:auto" font-family="serif" '
        'font-size="13">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    places = {node.key: at(node) for node in figure.nodes}
    half = {node.key: _half_size(node) for node in figure.nodes}
    labels: list[str] = []  # drawn last, as in figure_tikz, over the arrows
    for edge in figure.edges:
        (x1, y1), (x2, y2) = places[edge.source], places[edge.target]
        angle = math.atan2(y2 - y1, x2 - x1)
        start, end = _border(half[edge.source], angle), _border(half[edge.target], angle)
        sx, sy = x1 + start[0], y1 + start[1]
        ex, ey = x2 - end[0], y2 - end[1]
        out.append(
            f'<line x1="{sx:.1f}" y1="{sy:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" stroke="black" marker-end="url(#arrow)"/>'
        )
        if edge.label is None:
            continue
        mx, my = sx + edge.position * (ex - sx), sy + edge.position * (ey - sy)  # TikZ's pos
        turn = f'transform="rotate({math.degrees(angle):.1f} {mx:.1f} {my:.1f})"'
        colour = f"#{FORWARD_COLOUR}" if edge.numeric else "black"
        labels.append(_svg_text(mx, my - 3, edge.label.text, colour, 11, turn))
    for node in figure.nodes:
        x, y = places[node.key]
        if node.shape is not None:  # a whole layer's quantity, boxed as in figure_tikz
            w, h = half[node.key]
            fill = "#f2f2f2" if node.kind == "parameter" else "white"
            stroke = 3 if node.kind == "loss" else 1
            out.append(
                f'<rect x="{x - w:.1f}" y="{y - h:.1f}" width="{2 * w:.1f}" height="{2 * h:.1f}" rx="4" '
                f'fill="{fill}" stroke="black" stroke-width="{stroke}"/>'
            )
            out.append(_svg_text(x, y - 2, node.label.text, "black", 13))
            out.append(_svg_text(x, y + 12, node.shape or "", "black", 10))
        else:
            dash = ' stroke-dasharray="3,2"' if node.kind == "bias" else ""
            width_ = 3 if node.kind == "loss" else 1.5
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{_RADIUS:.1f}" fill="white" stroke="black" '
                f'stroke-width="{width_}"{dash}/>'
            )
            out.append(_svg_text(x, y + 4, node.label.text, "black", 10))
        lines = [(", ".join(lab.text for lab in node.values), f"#{FORWARD_COLOUR}")] if node.values else []
        lines += [(", ".join(lab.text for lab in node.gradients), f"#{GRADIENT_COLOUR}")] if node.gradients else []
        for k, (words_, colour) in enumerate(lines):
            if node.numbers_below:  # under the unit, first line first (figure_tikz's anchor=north)
                labels.append(_svg_text(x, y + _RADIUS + 13 + 13 * k, words_, colour, 11))
            else:
                labels.append(_svg_text(x, y - _RADIUS - 4 - 13 * (len(lines) - 1 - k), words_, colour, 11))
    out += labels
    out.append("</svg>")
    return "\n".join(out)


def _half_size(node: Node) -> tuple[float, float]:
    """Half the width and height of a node's outline, in pixels."""
    if node.shape is not None:
        return (max(22.0, 4.0 * max(len(node.label.text), len(node.shape or "")) + 6), 17.0)
    return (_RADIUS, _RADIUS)


def _border(half: tuple[float, float], angle: float) -> tuple[float, float]:
    """Where a line leaving the node's centre at ``angle`` crosses its outline (circle or rectangle)."""
    w, h = half
    dx, dy = math.cos(angle), math.sin(angle)
    if w == h == _RADIUS:
        return (w * dx, w * dy)
    scale = min(w / abs(dx) if dx else math.inf, h / abs(dy) if dy else math.inf)
    return (scale * dx, scale * dy)


def _svg_text(x: float, y: float, text: str, colour: str, size: int, extra: str = "") -> str:
    return (
        # a white halo (the stroke, painted under the fill) keeps a label readable where an arrow runs behind it
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" font-size="{size}" fill="{colour}" stroke="white" '
        f'stroke-width="3" paint-order="stroke" {extra}>'
        f"{xml_escape(text)}</text>"
    )
