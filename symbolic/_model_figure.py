"""A layer's computational graph as a small figure: where the paths from its input into the loss meet.

One description (``Graph``: nodes at a column and a row, arrows coloured by the path they belong to), two
backends: TikZ for the PDF (``graph_tikz``) and SVG for the web page and Markdown (``graph_svg``), laid out from
the same two indices as ``_figure`` lays out the network. The terminal gets the paths as one line of text
(``graph_text``). The graphs are a handful of nodes each (BatchNorm's x, μ, σ², x̂, y, L), placed by the page
that knows which quantity feeds which; what TikZ and SVG cannot do for us is only to say which arrow is which
path's, hence the colours here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape as xml_escape

from ._blocks import Picture

# one colour per path (Okabe-Ito, told apart by colour-blind readers), and black for an arrow on no single path
PATH_COLOURS = ("0072B2", "E69F00", "009E73", "CC79A7")


@dataclass(frozen=True)
class GraphNode:
    key: str
    latex: str  # math mode
    text: str
    column: float
    row: float
    kind: str = "value"  # "value" (a box), "parameter" (a grey box), "sum" (a circle), "loss" (a double box)


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    path: int | None = None  # the index of the path it belongs to (its colour), None: shared or none


@dataclass(frozen=True)
class Graph:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    paths: tuple[str, ...]  # each path in words, in text (x → x̂ → y), for the caption and the terminal
    caption: str
    column_step: float = 1.9  # centimetres
    row_step: float = 1.1


def graph_tikz(graph: Graph) -> str:
    lines = [
        rf"\begin{{tikzpicture}}[x={graph.column_step:.2f}cm, y={graph.row_step:.2f}cm, >=stealth, thick, "
        r"every node/.style={font=\footnotesize}, "
        r"value/.style={rectangle, rounded corners, draw, inner sep=3pt, minimum width=8mm, minimum height=6mm}, "
        r"parameter/.style={rectangle, draw, fill=black!5, inner sep=3pt, minimum width=8mm, minimum height=6mm}, "
        r"sum/.style={circle, draw, inner sep=1pt, minimum size=6mm}, "
        r"loss/.style={rectangle, rounded corners, draw, double, inner sep=3pt, minimum width=8mm}]",
    ]
    lines += [rf"\definecolor{{path{k}}}{{HTML}}{{{colour}}}" for k, colour in enumerate(PATH_COLOURS)]
    for node in graph.nodes:
        lines.append(rf"\node[{node.kind}] ({node.key}) at ({node.column:g}, {node.row:g}) {{${node.latex}$}};")
    for edge in graph.edges:
        colour = "black" if edge.path is None else f"path{edge.path % len(PATH_COLOURS)}"
        lines.append(rf"\draw[->, {colour}] ({edge.source}) -- ({edge.target});")
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


_PX = 40  # pixels per centimetre


def graph_svg(graph: Graph) -> str:
    margin = 30.0
    columns = [n.column for n in graph.nodes]
    rows = [n.row for n in graph.nodes]
    left, top = min(columns), max(rows)

    def at(node: GraphNode) -> tuple[float, float]:
        return (
            margin + (node.column - left) * graph.column_step * _PX,
            margin + (top - node.row) * graph.row_step * _PX,
        )

    width = 2 * margin + (max(columns) - left) * graph.column_step * _PX
    height = 2 * margin + (top - min(rows)) * graph.row_step * _PX
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" style="max-width:100%;height:auto" font-family="serif" '
        'font-size="13">',
        "<defs>"
        + "".join(
            f'<marker id="arrow{k}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#{colour}"/></marker>'
            for k, colour in enumerate((*PATH_COLOURS, "000000"))
        )
        + "</defs>",
    ]
    places = {node.key: at(node) for node in graph.nodes}
    half = {node.key: (max(16.0, 4.5 * len(node.text) + 6), 12.0) for node in graph.nodes}
    for edge in graph.edges:
        (x1, y1), (x2, y2) = places[edge.source], places[edge.target]
        angle = math.atan2(y2 - y1, x2 - x1)
        (sx, sy), (ex, ey) = _border(half[edge.source], angle), _border(half[edge.target], angle)
        k = len(PATH_COLOURS) if edge.path is None else edge.path % len(PATH_COLOURS)
        colour = "000000" if edge.path is None else PATH_COLOURS[k]
        out.append(
            f'<line x1="{x1 + sx:.1f}" y1="{y1 + sy:.1f}" x2="{x2 - ex:.1f}" y2="{y2 - ey:.1f}" '
            f'stroke="#{colour}" stroke-width="1.6" marker-end="url(#arrow{k})"/>'
        )
    for node in graph.nodes:
        x, y = places[node.key]
        w, h = half[node.key]
        if node.kind == "sum":
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{h:.1f}" fill="white" stroke="black"/>')
        else:
            fill = "#f2f2f2" if node.kind == "parameter" else "white"
            stroke = 2.5 if node.kind == "loss" else 1
            out.append(
                f'<rect x="{x - w:.1f}" y="{y - h:.1f}" width="{2 * w:.1f}" height="{2 * h:.1f}" rx="4" '
                f'fill="{fill}" stroke="black" stroke-width="{stroke}"/>'
            )
        out.append(f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">{xml_escape(node.text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _border(half: tuple[float, float], angle: float) -> tuple[float, float]:
    """Where a line leaving a box's centre at ``angle`` crosses the box's outline."""
    w, h = half
    dx, dy = math.cos(angle), math.sin(angle)
    scale = min(w / abs(dx) if dx else math.inf, h / abs(dy) if dy else math.inf)
    return (scale * dx, scale * dy)


def graph_text(graph: Graph) -> str:
    return "; ".join(graph.paths)


def picture(graph: Graph) -> Picture:
    """The graph as a page block: every format's drawing of it, and its caption."""
    return Picture(graph_tikz(graph), graph_svg(graph), graph_text(graph), graph.caption)
