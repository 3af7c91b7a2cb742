"""Explanations of a Derivation: LaTeX, Markdown and terminal text from one sequence of blocks.

``explain`` walks the derivation once and produces format-neutral blocks (headings, prose, equation
chains, a notation table); each backend only typesets them. So the three formats always say the same
thing, and every displayed chain ``lhs = e1 = e2 = ...`` comes straight from the derivation's
expressions, which ``tests/test_steps.py`` checks are equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from ._derivation import Derivation, LayerDerivation
from ._rules import LOSSES

# Above this many units a layer is explained by one general entry instead of every entry.
ENTRIES_SHOWN = 3
# Closed forms are displayed only while small: estimated nodes per entry (checked before building them),
# then LaTeX characters. Beyond that the δ form says it all.
CLOSED_FORM_NODES = 60
CLOSED_FORM_SHOWN = 400


@dataclass(frozen=True)
class Math:
    """One piece of mathematics, in both notations, with the SymPy expression it stands for (if any).

    ``value`` is what tests compare: in a Chain, every two consecutive terms that have a value must be
    equal once the intermediates are substituted back. Pure notation (``∂L/∂W``) has none.
    """

    latex: str
    text: str
    value: sympy.Basic | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Prose:
    parts: tuple[str | Math, ...]


@dataclass(frozen=True)
class Chain:
    """``terms[0] = terms[1] = ...``, one displayed equation (one row per term when it is long)."""

    terms: tuple[Math, ...]


@dataclass(frozen=True)
class Notation:
    rows: tuple[tuple[Math, str], ...]


Block = Heading | Prose | Chain | Notation


class _Latex(LatexPrinter):
    """SymPy's LaTeX printer with the derivation's symbol names and ⊙-free scalar output."""

    def __init__(self, names: Mapping[sympy.Symbol, str]):
        super().__init__({"symbol_names": dict(names), "mul_symbol": "dot", "order": "none"})

    def _print_Symbol(self, expr, style="plain"):
        # a^{(1)}_{1} squared must print as {a^{(1)}_{1}}^{2}, not as a double superscript
        name = super()._print_Symbol(expr, style)
        return f"{{{name}}}" if "^" in name else name


class _Text(StrPrinter):
    def __init__(self):
        super().__init__({"order": "none"})


class _Writer:
    def __init__(self, derivation: Derivation):
        self.derivation = derivation
        self.latex_printer = _Latex(derivation.latex_names)
        self.text_printer = _Text()

    def math(self, expression: sympy.Basic) -> Math:
        return Math(self.latex_printer.doprint(expression), self.text_printer.doprint(expression), expression)

    def partial(self, of: sympy.Basic | str, wrt: sympy.Basic, value: sympy.Basic | None = None) -> Math:
        of_latex = of if isinstance(of, str) else self.latex_printer.doprint(of)
        of_text = of if isinstance(of, str) else self.text_printer.doprint(of)
        wrt_m = self.math(wrt)
        return Math(_frac(of_latex, wrt_m.latex), f"∂{of_text}/∂{wrt_m.text}", value)


def _frac(of: str, wrt: str) -> str:
    return rf"\frac{{\partial {of}}}{{\partial {wrt}}}"


def _join(*pieces: Math, value: sympy.Basic | None = None) -> Math:
    """A product of factors as written; ``value`` is what the product equals (SymPy's derivatives)."""
    return Math(r" \cdot ".join(p.latex for p in pieces), " · ".join(p.text for p in pieces), value)


def _shown(count: int) -> list[int]:
    """Which entries of a layer to spell out: all of a small layer, else the first one."""
    return list(range(count)) if count <= ENTRIES_SHOWN else [0]


def explain(derivation: Derivation, values: Mapping[str, object] | None) -> list[Block]:
    w = _Writer(derivation)
    network, layers = derivation.network, derivation.layers
    depth = network.depth
    blocks: list[Block] = [
        Prose((f"Network {network.describe()}: {depth} weight layer(s), sizes {list(network.sizes)}.",)),
        Heading("Notation"),
        Notation(_notation(derivation)),
        Heading("Forward pass"),
        Prose(("Every intermediate gets a name, so the backward pass can reuse it.",)),
    ]
    for layer in layers:
        for i in _shown(len(layer.z)):
            blocks.append(Chain((w.math(layer.z[i]), w.math(layer.z_definition[i]))))
            blocks.append(Chain((w.math(layer.a[i]), w.math(layer.a_definition[i]))))
    blocks.append(Chain((Math("L", "L"), w.math(derivation.loss_definition))))
    blocks.append(
        Prose(
            (
                f"The loss is {network.loss}: {LOSSES[network.loss].description}, for one sample; "
                "a batch sums it over the samples (columns), and so its gradients.",
            )
        )
    )

    output = layers[-1]
    blocks += [Heading("Output layer"), *_output_delta(w, output)]
    blocks += _weight_chains(w, output)
    for layer in reversed(layers[:-1]):
        blocks += [Heading(f"Layer {layer.index}"), *_hidden_delta(w, layer, layers[layer.index])]
        blocks += _weight_chains(w, layer)

    blocks += [Heading("Gradients in matrix form"), *_matrix_form(w, derivation)]
    blocks += _closed_forms(w, derivation)
    if values is not None:
        blocks += _numbers(w, derivation, values)
    return blocks


def _notation(derivation: Derivation) -> tuple[tuple[Math, str], ...]:
    network = derivation.network
    rows = [
        (Math("x", "x"), f"input, {network.sizes[0]} x 1 (a batch puts samples in columns)"),
        (Math("y", "y"), f"target, {network.sizes[-1]} x 1"),
        (Math("W^{(l)}", "Wl"), "weights of layer l, [units of l, units of l-1]"),
    ]
    if network.bias:
        rows.append((Math("b^{(l)}", "bl"), "bias of layer l"))
    rows += [
        (Math("z^{(l)}", "zl"), "pre-activation of layer l"),
        (Math("a^{(l)}", "al"), "output of layer l (a0 = x; the last one is the prediction)"),
        (Math(r"\delta^{(l)}", "deltal"), "error of layer l, the derivative of L by its pre-activation"),
    ]
    seen = []
    for name in network.activations:
        if name in seen:
            continue
        seen.append(name)
        activation = derivation.layers[network.activations.index(name)].activation
        rows.append((Math(activation.latex, name), f"activation {name}"))
    rows.append((Math(r"\odot", "*"), "element-wise product"))
    return tuple(rows)


def _output_delta(w: _Writer, layer: LayerDerivation) -> list[Block]:
    l_ = layer.index
    blocks: list[Block] = [
        Prose(
            (
                "The chain rule starts at the loss. Its shared factor, the error of the output layer, is named ",
                Math(
                    rf"\delta^{{({l_})}}_i = \frac{{\partial L}}{{\partial z^{{({l_})}}_i}}",
                    f"delta{l_}[i] = ∂L/∂z{l_}[i]",
                ),
                " (the tutorial's red box); every layer below reuses it.",
            )
        )
    ]
    blocks += _derivative_statement(w, layer)

    def by_sympy(k: int, i: int) -> sympy.Expr:
        """∂L/∂a_k · ∂a_k/∂z_i, each factor by sympy.diff of its definition."""
        loss = w.derivation.loss_definition
        return sympy.diff(loss, layer.a[k]) * sympy.diff(layer.a_definition[k], layer.z[i])

    for i in _shown(len(layer.z)):
        z_i, a_i, delta_i = layer.z[i], layer.a[i], layer.delta[i]
        if layer.activation.elementwise:
            factors = _join(w.partial("L", a_i), w.partial(a_i, z_i), value=by_sympy(i, i))
            upstream, local = w.math(layer.upstream[i]), w.math(layer.local_jacobian[i, i])
            values = Math(
                rf"\left({upstream.latex}\right) \cdot \left({local.latex}\right)",
                f"({upstream.text}) · ({local.text})",
                sympy.Mul(layer.upstream[i], layer.local_jacobian[i, i], evaluate=False),
            )
        else:
            a_k = Math(f"a^{{({l_})}}_k", f"a{l_}[k]")
            factors = Math(
                rf"\sum_{{k}} {_frac('L', a_k.latex)} {_frac(a_k.latex, w.math(z_i).latex)}",
                f"Σ_k ∂L/∂{a_k.text} · ∂{a_k.text}/∂{w.math(z_i).text}",
                sympy.Add(*(by_sympy(k, i) for k in range(len(layer.z)))),
            )
            values = w.math(
                sympy.Add(
                    *(
                        sympy.Mul(layer.upstream[k], layer.local_jacobian[k, i], evaluate=False)
                        for k in range(len(layer.z))
                    ),
                    evaluate=False,
                )
            )
        terms = [w.math(delta_i), factors, values, w.math(layer.delta_chain[i])]
        if layer.delta_definition[i] != layer.delta_chain[i]:
            terms.append(w.math(layer.delta_definition[i]))
        blocks.append(Chain(_dedupe(terms)))
    if not layer.activation.elementwise:
        blocks.append(
            Prose(
                (
                    "When the target is a probability vector (its entries sum to 1) this is ",
                    Math(rf"\delta^{{({l_})}} = a^{{({l_})}} - y", f"delta{l_} = a{l_} - y"),
                    ": the softmax Jacobian and the log cancel.",
                )
            )
        )
    return blocks


def _derivative_statement(w: _Writer, layer: LayerDerivation) -> list[Block]:
    activation = layer.activation
    z = sympy.Symbol("z", real=True)
    if activation.elementwise:
        a = sympy.Symbol("a", real=True)
        return [
            Prose(
                (
                    "The activation's derivative, written through its output ",
                    Math(rf"a = {activation.latex}(z)", f"a = {activation.name}(z)"),
                    ":",
                )
            ),
            Chain(
                _dedupe(
                    [
                        Math(rf"{activation.latex}'(z)", f"{activation.name}'(z)"),
                        w.math(sympy.diff(activation.function(z), z)),
                        replace(
                            w.math(activation.derivative(z, a)), value=activation.derivative(z, activation.function(z))
                        ),
                    ]
                )
            ),
        ]
    return [
        Prose(
            (
                "The softmax couples the units: ",
                Math(
                    r"\frac{\partial a_k}{\partial z_i} = a_k\left(\delta_{ki} - a_i\right)",
                    "∂a_k/∂z_i = a_k (δ_ki − a_i)",
                ),
                " (Kronecker δ), so the chain rule sums over every output.",
            )
        )
    ]


def _hidden_delta(w: _Writer, layer: LayerDerivation, above: LayerDerivation) -> list[Block]:
    l_, up = layer.index, above.index
    blocks: list[Block] = [
        Prose(
            (
                "The error flows back through ",
                Math(rf"W^{{({up})}}", f"W{up}"),
                ": a unit's output feeds every unit of the layer above, so its share sums over them, ",
                Math(
                    rf"\delta^{{({l_})}} = \left(W^{{({up})\top}} \delta^{{({up})}}\right) "
                    rf"\odot {layer.activation.latex}'\left(z^{{({l_})}}\right)",
                    f"delta{l_} = (W{up}^T delta{up}) * {layer.activation.name}'(z{l_})",
                ),
                ".",
            )
        )
    ]
    blocks += _derivative_statement(w, layer)
    for j in _shown(len(layer.z)):
        a_j, z_j = layer.a[j], layer.z[j]
        z_i, a_j_math = Math(f"z^{{({up})}}_i", f"z{up}[i]"), w.math(a_j)
        factors = Math(
            rf"\left(\sum_{{i}} {_frac('L', z_i.latex)} {_frac(z_i.latex, a_j_math.latex)}\right) "
            rf"\cdot {w.partial(a_j, z_j).latex}",
            f"(Σ_i ∂L/∂{z_i.text} · ∂{z_i.text}/∂{a_j_math.text}) · ∂{a_j_math.text}/∂{w.math(z_j).text}",
            sympy.Add(*(above.delta[i] * sympy.diff(above.z_definition[i], a_j) for i in range(len(above.z))))
            * sympy.diff(layer.a_definition[j], z_j),
        )
        blocks.append(Chain((w.math(layer.delta[j]), factors, w.math(layer.delta_definition[j]))))
    return blocks


def _weight_chains(w: _Writer, layer: LayerDerivation) -> list[Block]:
    blocks: list[Block] = []
    rows = _shown(layer.weight.rows)
    cols = _shown(layer.weight.cols)
    for i in rows:
        for j in cols:
            weight = layer.weight[i, j]
            terms = (
                w.partial("L", weight),
                _join(
                    w.partial("L", layer.z[i]),
                    w.partial(layer.z[i], weight),
                    value=layer.delta[i] * sympy.diff(layer.z_definition[i], weight),
                ),
                w.math(layer.delta[i] * layer.inputs[j]),
            )
            blocks.append(Chain(terms))
    if layer.bias is not None:
        for i in rows:
            factors = _join(
                w.partial("L", layer.z[i]),
                w.partial(layer.z[i], layer.bias[i]),
                value=layer.delta[i] * sympy.diff(layer.z_definition[i], layer.bias[i]),
            )
            blocks.append(Chain((w.partial("L", layer.bias[i]), factors, w.math(layer.delta[i]))))
    return blocks


def _matrix_form(w: _Writer, derivation: Derivation) -> list[Block]:
    blocks: list[Block] = [
        Prose(
            (
                "Each entry above is one entry of an outer product, so the whole gradient is a matrix product; "
                "for a batch the product also sums over the samples.",
            )
        )
    ]
    for layer in derivation.layers:
        l_ = layer.index
        previous = "x" if l_ == 1 else f"{{a^{{({l_ - 1})}}}}"
        blocks.append(
            Chain(
                (
                    Math(rf"\frac{{\partial L}}{{\partial W^{{({l_})}}}}", f"∂L/∂W{l_}"),
                    Math(rf"\delta^{{({l_})}} {previous}^{{\top}}", f"delta{l_} {'x' if l_ == 1 else f'a{l_ - 1}'}^T"),
                )
            )
        )
        if layer.bias is not None:
            blocks.append(
                Chain(
                    (
                        Math(rf"\frac{{\partial L}}{{\partial b^{{({l_})}}}}", f"∂L/∂b{l_}"),
                        Math(rf"\delta^{{({l_})}}", f"delta{l_}"),
                    )
                )
            )
    return blocks


def _closed_forms(w: _Writer, derivation: Derivation) -> list[Block]:
    shown: list[Block] = []
    for name in derivation.parameters:
        entries = len(derivation.symbols[name])
        if derivation.closed_form_size(name) > min(CLOSED_FORM_NODES * entries, derivation.closed_form_budget):
            continue
        matrix = derivation.closed_form(name)
        symbols = derivation.symbols[name]
        for i, j in [(i, j) for i in range(matrix.rows) for j in range(matrix.cols)]:
            entry = w.math(matrix[i, j])
            if len(entry.latex) <= CLOSED_FORM_SHOWN:
                by_program = derivation.gradient_definitions[name][i, j]
                shown.append(Chain((w.partial("L", symbols[i, j], by_program), entry)))
    if not shown:
        return []
    return [
        Heading("Closed form"),
        Prose(("Substituting every intermediate back gives each entry in x, y and the weights:",)),
        *shown,
    ]


def _numbers(w: _Writer, derivation: Derivation, values: Mapping[str, object]) -> list[Block]:
    result = derivation.evaluate(values)
    blocks: list[Block] = [Heading("Numbers"), Prose(("At the given values (evaluated exactly, then rounded):",))]
    blocks.append(Chain((Math("L", "L"), _number(result["loss"]))))
    for name in derivation.parameters:
        rows = result[name]
        latex_rows = r" \\ ".join(" & ".join(_number(v).latex for v in row) for row in rows)
        text_rows = "; ".join(", ".join(_number(v).text for v in row) for row in rows)
        letter, layer = name[0], name[1:]
        blocks.append(
            Chain(
                (
                    Math(rf"\frac{{\partial L}}{{\partial {letter}^{{({layer})}}}}", f"∂L/∂{name}"),
                    Math(rf"\begin{{bmatrix}} {latex_rows} \end{{bmatrix}}", f"[{text_rows}]"),
                )
            )
        )
    return blocks


def _number(value: float) -> Math:
    text = f"{value:.5g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return Math(rf"{mantissa} \times 10^{{{int(exponent)}}}", text)
    return Math(text, text)


def _dedupe(terms: list[Math]) -> tuple[Math, ...]:
    kept: list[Math] = []
    for term in terms:
        if not kept or kept[-1].latex != term.latex:
            kept.append(term)
    return tuple(kept)


# --- backends ----------------------------------------------------------------------------------------

_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=2.2cm]{geometry}
\usepackage{amsmath}
\allowdisplaybreaks
\begin{document}
\section*{Backpropagation by the chain rule}
"""


def _latex_prose(block: Prose) -> str:
    out = []
    for part in block.parts:
        out.append(f"${part.latex}$" if isinstance(part, Math) else _escape(part))
    return "".join(out)


def _escape(text: str) -> str:
    replacements = {
        "_": r"\_",
        "%": r"\%",
        "&": r"\&",
        "#": r"\#",
        "^": r"\^{}",
        "½": r"$\frac{1}{2}$",
        "Σ": r"$\Sigma$",
        "ŷ": r"$\hat{y}$",
        "−": "-",
        "²": r"$^2$",
        "∂": r"$\partial$",
        "δ": r"$\delta$",
        "⊙": r"$\odot$",
    }
    return "".join(replacements.get(ch, ch) for ch in text)


def _latex_chain(block: Chain) -> str:
    first, *rest = block.terms
    if sum(len(t.latex) for t in block.terms) <= 90:
        return "\\begin{equation*}\n" + " = ".join(t.latex for t in block.terms) + "\n\\end{equation*}"
    lines = [f"{first.latex} &= {rest[0].latex}"] + [f"&= {t.latex}" for t in rest[1:]]
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}"


def render_latex(derivation: Derivation, document: bool = False, values: Mapping[str, object] | None = None) -> str:
    parts = []
    for block in explain(derivation, values):
        if isinstance(block, Heading):
            parts.append(f"\\subsection*{{{_escape(block.text)}}}")
        elif isinstance(block, Prose):
            parts.append(_latex_prose(block))
        elif isinstance(block, Chain):
            parts.append(_latex_chain(block))
        else:
            rows = " \\\\\n".join(f"${m.latex}$ & {_escape(desc)}" for m, desc in block.rows)
            parts.append("\\begin{center}\n\\begin{tabular}{ll}\n" + rows + "\n\\end{tabular}\n\\end{center}")
    body = "\n\n".join(parts) + "\n"
    return _PREAMBLE + body + "\\end{document}\n" if document else body


def render_markdown(derivation: Derivation, values: Mapping[str, object] | None = None) -> str:
    parts = ["# Backpropagation by the chain rule"]
    for block in explain(derivation, values):
        if isinstance(block, Heading):
            parts.append(f"## {block.text}")
        elif isinstance(block, Prose):
            parts.append("".join(f"${p.latex}$" if isinstance(p, Math) else p for p in block.parts))
        elif isinstance(block, Chain):
            body = " = ".join(t.latex for t in block.terms)
            if len(body) > 90:
                body = (
                    "\\begin{aligned}"
                    + " \\\\ ".join(
                        [f"{block.terms[0].latex} &= {block.terms[1].latex}"]
                        + [f"&= {t.latex}" for t in block.terms[2:]]
                    )
                    + "\\end{aligned}"
                )
            parts.append(f"$$\n{body}\n$$")
        else:
            parts.append(
                "| symbol | meaning |\n|---|---|\n" + "\n".join(f"| ${m.latex}$ | {d} |" for m, d in block.rows)
            )
    return "\n\n".join(parts) + "\n"


def render_text(derivation: Derivation, values: Mapping[str, object] | None = None) -> str:
    lines: list[str] = []
    for block in explain(derivation, values):
        if isinstance(block, Heading):
            lines += ["", block.text, "-" * len(block.text)]
        elif isinstance(block, Prose):
            lines.append("".join(p.text if isinstance(p, Math) else p for p in block.parts))
        elif isinstance(block, Chain):
            first, *rest = block.terms
            lines.append(f"  {first.text} = {rest[0].text}")
            lines += [f"  {' ' * len(first.text)} = {t.text}" for t in rest[1:]]
        else:
            width = max(len(m.text) for m, _ in block.rows)
            lines += [f"  {m.text.ljust(width)}  {d}" for m, d in block.rows]
    return "\n".join(lines).lstrip("\n") + "\n"
