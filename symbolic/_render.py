"""Explanations of a Derivation: LaTeX, Markdown and terminal text from one sequence of blocks.

``explain`` walks the derivation once and produces format-neutral blocks (headings, prose, equation
chains, a notation table); each backend only typesets them, so the formats always say the same thing.
Every term of a chain that stands for an expression carries it (``Math.value``): the factors of the
chain rule as ``sympy.diff`` of their definitions, the rest as the derivation's own expressions.
``tests/test_steps.py`` checks that each such term equals the one before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import sympy
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from ._derivation import Derivation
from ._elementwise import LayerDerivation

ENTRIES_SHOWN = 3  # a layer with more units shows its first unit, standing for all
TERMS_SHOWN = 4  # a sum with more terms is written with Σ
VALUES_UP_TO = 64  # a wider output layer's loss is shown in Σ form without building its terms
GENERAL_FROM_DEPTH = 4  # from this depth on, the hidden layers get one general layer-l step
CLOSED_FORM_NODES = 60  # closed forms shown while this small (estimated nodes per entry) ...
CLOSED_FORM_SHOWN = 400  # ... and this short (LaTeX characters)
NUMBERS_SHOWN = (6, 4)  # the largest matrix of numbers printed in full (rows, columns) ...
VECTOR_SHOWN = 6  # ... and the longest vector
WIDE = 72  # characters of an equation's text form (a fair measure of its printed width) before it breaks


# --- blocks --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Math:
    """One piece of mathematics, in both notations, with the SymPy expression it stands for (if any).

    In a Chain every two consecutive terms that have a value must be equal once the intermediates are
    substituted back. Pure notation (``∂L/∂W``) has none.
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


# --- writing mathematics ----------------------------------------------------------------------------------


class _Latex(LatexPrinter):
    """SymPy's LaTeX printer with the derivation's symbol names, printing products with a dot."""

    def __init__(self, names: Mapping[sympy.Symbol, str]):
        # not copied: the derivation's names cover entries built after this printer (a lazy Mapping)
        super().__init__({"symbol_names": names, "mul_symbol": "dot", "order": "none"})

    def _print_Symbol(self, expr, style="plain"):
        # a^{(1)}_{1} squared must print as {a^{(1)}_{1}}^{2}, not as a double superscript
        name = super()._print_Symbol(expr, style)
        return f"{{{name}}}" if "^" in name else name


class _UnitLatex(_Latex):
    """Prints a matrix-program expression as its entry for one unit: a3 -> a^{(3)}_{1}, unit_sum -> Σ_k."""

    def __init__(self, unit_names: Mapping[sympy.Symbol, str], sum_names: Mapping[sympy.Symbol, str]):
        super().__init__(unit_names)
        self.sum_printer = _Latex(sum_names)

    def _print_unit_sum(self, expr):
        return rf"\sum_{{k}} {self.sum_printer.parenthesize(expr.args[0], 50)}"


class _UnitText(StrPrinter):
    def __init__(self, unit_names: Mapping[sympy.Symbol, str], sum_names: Mapping[sympy.Symbol, str]):
        super().__init__({"order": "none"})
        self.names, self.sum_names = unit_names, sum_names

    def _print_Symbol(self, expr):
        return self.names.get(expr, expr.name)

    def _print_unit_sum(self, expr):
        inner = StrPrinter({"order": "none"})
        inner._print_Symbol = lambda symbol: self.sum_names.get(symbol, symbol.name)
        return f"Σ_k {inner.parenthesize(expr.args[0], 50)}"


def _unit_form(expression: sympy.Expr, layer: int, unit: str) -> Math:
    """A matrix-program expression (a{layer}, z{layer}, y) written for unit ``unit``, sums over k."""
    symbols = {name: sympy.Symbol(name, real=True) for name in (f"a{layer}", f"z{layer}", "y")}

    def names(index: str, text: bool) -> dict[sympy.Symbol, str]:
        if text:
            return {
                symbols[f"a{layer}"]: f"a{layer}[{index}]",
                symbols[f"z{layer}"]: f"z{layer}[{index}]",
                symbols["y"]: f"y[{index}]",
            }
        return {
            symbols[f"a{layer}"]: f"a^{{({layer})}}_{{{index}}}",
            symbols[f"z{layer}"]: f"z^{{({layer})}}_{{{index}}}",
            symbols["y"]: f"y_{{{index}}}",
        }

    latex = _UnitLatex(names(unit, False), names("k", False)).doprint(expression)
    text = _UnitText(names(unit, True), names("k", True)).doprint(expression)
    return Math(latex, text)


def _frac(of: str, wrt: str) -> str:
    return rf"\frac{{\partial {of}}}{{\partial {wrt}}}"


def _layer(letter: str, layer: int, index: str | None = None) -> Math:
    """Notation such as a^{(2)}_k (LaTeX) / a2[k] (text)."""
    latex = f"{letter}^{{({layer})}}" + (f"_{{{index}}}" if index else "")
    text_letter = "delta" if letter == r"\delta" else letter
    return Math(latex, f"{text_letter}{layer}" + (f"[{index}]" if index else ""))


class _Writer:
    def __init__(self, derivation: Derivation):
        self.derivation = derivation
        self.latex_printer = _Latex(derivation.latex_names)
        self.text_printer = StrPrinter({"order": "none"})

    def math(self, expression: sympy.Basic) -> Math:
        return Math(self.latex_printer.doprint(expression), self.text_printer.doprint(expression), expression)

    def partial(self, of: sympy.Basic | Math | str, wrt: sympy.Basic | Math, value: sympy.Basic | None = None) -> Math:
        of_m = of if isinstance(of, Math) else Math(of, of) if isinstance(of, str) else self.math(of)
        wrt_m = wrt if isinstance(wrt, Math) else self.math(wrt)
        return Math(_frac(of_m.latex, wrt_m.latex), f"∂{of_m.text}/∂{wrt_m.text}", value)

    def product(self, *factors: sympy.Basic) -> Math:
        """Factors as written, each in parentheses when it is a sum; its value is their product."""
        pieces = [self.math(f) for f in factors]
        latex = r" \cdot ".join(
            rf"\left({p.latex}\right)" if isinstance(f, sympy.Add) else p.latex for p, f in zip(pieces, factors)
        )
        text = " · ".join(f"({p.text})" if isinstance(f, sympy.Add) else p.text for p, f in zip(pieces, factors))
        return Math(latex, text, sympy.Mul(*factors, evaluate=False))

    def sum_or_terms(self, expression: sympy.Expr, general: Math) -> Math:
        """The expression itself, or the Σ form ``general`` when it has too many terms to read."""
        if isinstance(expression, sympy.Add) and len(expression.args) > TERMS_SHOWN:
            return replace(general, value=expression)
        return self.math(expression)


def _join(*pieces: Math, value: sympy.Basic | None = None) -> Math:
    """A product of factors as written; ``value`` is what the product equals (SymPy's derivatives)."""
    return Math(r" \cdot ".join(p.latex for p in pieces), " · ".join(p.text for p in pieces), value)


def _shown(count: int) -> list[int]:
    """Which entries of a layer to spell out: all of a small layer, else the first one."""
    return list(range(count)) if count <= ENTRIES_SHOWN else [0]


def _previous(layer: LayerDerivation) -> Math:
    return Math("x", "x") if layer.index == 1 else _layer("a", layer.index - 1)


# --- the explanation ---------------------------------------------------------------------------------------


def explain(derivation: Derivation, values: Mapping[str, object] | None = None) -> list[Block]:
    """The derivation as blocks: notation, forward pass, chain rule layer by layer, matrix form, numbers."""
    w = _Writer(derivation)
    network, layers = derivation.network, derivation.layers
    blocks: list[Block] = [
        Prose(
            (
                f"Network {network.describe()}: sizes {list(network.sizes)}, {network.depth} weight layer(s). "
                "Every equation below was derived by SymPy, and every equality in it is checked by the tests.",
            )
        ),
        Heading("Notation"),
        Notation(_notation(derivation)),
        Heading("Forward pass"),
        *_forward(w, derivation),
        Heading(f"Output layer (layer {network.depth})"),
        *_output_layer(w, layers[-1]),
    ]
    hidden = list(reversed(layers[:-1]))
    if network.depth >= GENERAL_FROM_DEPTH:
        blocks += [Heading(f"Hidden layers l = {network.depth - 1}, ..., 1"), *_general_layer(w, layers)]
    else:
        for layer in hidden:
            blocks += [Heading(f"Layer {layer.index}"), *_hidden_layer(w, layer, layers[layer.index])]
    blocks += [Heading("Gradients in matrix form"), *_matrix_form(derivation)]
    blocks += _closed_forms(w, derivation)
    if values is not None:
        blocks += _numbers(derivation, values)
    return blocks


def _notation(derivation: Derivation) -> tuple[tuple[Math, str], ...]:
    network = derivation.network
    rows = [
        (Math("x", "x"), f"input, a column of {network.sizes[0]} (a batch puts its samples in columns)"),
        (Math("y", "y"), f"target, a column of {network.sizes[-1]}"),
        (Math("W^{(l)}", "Wl"), "weights of layer l: one row per unit of layer l, one column per unit of layer l-1"),
    ]
    if network.bias:
        rows.append((Math("b^{(l)}", "bl"), "bias of layer l"))
    rows += [
        (Math("z^{(l)}", "zl"), "pre-activation of layer l"),
        (Math("a^{(l)}", "al"), "output of layer l; the input counts as a0 = x, the last output is the prediction"),
        (Math(r"\delta^{(l)}", "deltal"), "error of layer l: the derivative of L by its pre-activation"),
    ]
    for name in dict.fromkeys(network.activations):
        activation = derivation.layers[network.activations.index(name)].activation
        used = [str(i + 1) for i, n in enumerate(network.activations) if n == name]
        rows.append((Math(activation.latex, name), f"activation {name}, used in layer {', '.join(used)}"))
    rows.append((Math(r"\odot", "*"), "element-wise product"))
    return tuple(rows)


def _forward(w: _Writer, derivation: Derivation) -> list[Block]:
    blocks: list[Block] = [Prose(("Every intermediate gets a name, so that the backward pass can reuse it:",))]
    for layer in derivation.layers:
        l_, prev = layer.index, _previous(layer)
        bias = (f" + b^{{({l_})}}", f" + b{l_}") if layer.bias is not None else ("", "")
        blocks.append(
            Chain((_layer("z", l_), Math(f"W^{{({l_})}} {prev.latex}{bias[0]}", f"W{l_} {prev.text}{bias[1]}")))
        )
        blocks.append(
            Chain(
                (
                    _layer("a", l_),
                    Math(rf"{layer.activation.latex}\left(z^{{({l_})}}\right)", f"{layer.activation.name}(z{l_})"),
                )
            )
        )
    blocks.append(Prose(("Entry by entry:",)))
    for layer in derivation.layers:
        l_, prev = layer.index, _previous(layer)
        for i in _shown(len(layer.z)):
            index = str(i + 1)
            bias = (f" + b^{{({l_})}}_{{{index}}}", f" + b{l_}[{index}]") if layer.bias is not None else ("", "")
            general = Math(
                rf"\sum_{{j=1}}^{{{len(layer.inputs)}}} W^{{({l_})}}_{{{index}j}} {prev.latex}_{{j}}{bias[0]}",
                f"Σ_j W{l_}[{index},j] {prev.text}[j]{bias[1]}",
            )
            wide = len(layer.inputs) > VALUES_UP_TO  # shown in Σ form, not built just to be checked
            shown_z = general if wide else w.sum_or_terms(layer.z_definition[i], general)
            blocks.append(Chain((w.math(layer.z[i]), shown_z)))
            n_units = len(layer.z)
            if layer.activation.elementwise or n_units <= TERMS_SHOWN:
                shown_a = w.math(layer.a_definition[i])
            else:  # softmax over a wide layer: its Σ form, not every term
                shown_a = Math(
                    rf"\frac{{e^{{z^{{({l_})}}_{{{index}}}}}}}{{\sum_{{k=1}}^{{{n_units}}} e^{{z^{{({l_})}}_{{k}}}}}}",
                    f"exp(z{l_}[{index}]) / Σ_k exp(z{l_}[k])",
                    layer.a_definition[i] if n_units <= VALUES_UP_TO else None,
                )
            blocks.append(Chain((w.math(layer.a[i]), shown_a)))
    output = derivation.layers[-1]
    n = len(output.a)
    general_loss = Math(
        rf"\sum_{{k=1}}^{{{n}}} \ell\left(a^{{({output.index})}}_k, y_k\right)", f"Σ_k ℓ(a{output.index}[k], y[k])"
    )
    # a wide output layer shows the Σ form without building every unit's term (width must not cost)
    loss_shown = w.sum_or_terms(derivation.loss_definition, general_loss) if n <= VALUES_UP_TO else general_loss
    blocks.append(Chain((Math("L", "L"), loss_shown)))
    loss = derivation.network.loss
    blocks.append(
        Prose(
            (
                f"The loss is {loss}, {derivation.network.loss_rule.description}, for one sample; "
                + (
                    'a batch takes its mean over the samples (reduction "mean", PyTorch\'s default): each '
                    "sample's loss is divided by the batch size B, and so are its gradients, through the 1/B "
                    "in the output layer's δ."
                    if derivation.network.reduction == "mean"
                    else "a batch sums it over its samples, and so its gradients."
                ),
            )
        )
    )
    return blocks


def _derivative_statement(w: _Writer, layer: LayerDerivation) -> list[Block]:
    activation = layer.activation
    z = sympy.Symbol("z", real=True)
    if activation.elementwise:
        a = sympy.Symbol("a", real=True)
        through_output = replace(
            w.math(activation.derivative(z, a)), value=activation.derivative(z, activation.function(z))
        )
        return [
            Prose(
                (
                    "The derivative of the activation, written through its output ",
                    Math(rf"a = {activation.latex}(z)", f"a = {activation.name}(z)"),
                    ":",
                )
            ),
            Chain(
                _dedupe(
                    [
                        Math(rf"{activation.latex}'(z)", f"{activation.name}'(z)"),
                        w.math(sympy.diff(activation.function(z), z)),
                        through_output,
                    ]
                )
            ),
        ]
    return [
        Prose(
            (
                "The softmax couples the units of its layer: ",
                Math(
                    r"\frac{\partial a_k}{\partial z_i} = a_k\left(\delta_{ki} - a_i\right)",
                    "∂a_k/∂z_i = a_k (δ_ki − a_i)",
                ),
                " (with the Kronecker delta), so the chain rule sums over every output.",
            )
        )
    ]


def _output_layer(w: _Writer, layer: LayerDerivation) -> list[Block]:
    derivation, l_ = w.derivation, layer.index
    n = len(layer.z)
    prev = _previous(layer)
    i, j = 0, 0
    z_i, a_i, weight = layer.z[i], layer.a[i], layer.weight[i, j]
    dz_dw = layer.z_derivative(i, weight)

    blocks: list[Block] = [
        Prose(
            (
                "The chain rule follows the path from a weight to the loss. For an entry of ",
                Math(f"W^{{({l_})}}", f"W{l_}"),
                ", shown for ",
                w.math(weight),
                " (every entry works the same way):",
            )
        )
    ]
    blocks += _derivative_statement(w, layer)
    if layer.activation.elementwise:
        by_sympy = layer.upstream[i] * sympy.diff(layer.a_definition[i], z_i) * dz_dw  # upstream: diff of ℓ by a_i
        factors = _join(w.partial("L", a_i), w.partial(a_i, z_i), w.partial(z_i, weight), value=by_sympy)
        written = w.product(layer.upstream[i], layer.local_jacobian[i, i], layer.inputs[j])
    else:
        a_k = _layer("a", l_, "k")
        by_sympy = (  # a wide layer's Σ is shown, not built just to be checked
            sympy.Add(*(layer.upstream[k] * layer.local_jacobian[k, i] for k in range(n))) * dz_dw
            if n <= VALUES_UP_TO
            else None
        )
        factors = Math(
            rf"\left(\sum_{{k}} {_frac('L', a_k.latex)} {_frac(a_k.latex, w.math(z_i).latex)}\right) "
            rf"\cdot {w.partial(z_i, weight).latex}",
            f"(Σ_k ∂L/∂{a_k.text} · ∂{a_k.text}/∂{w.math(z_i).text}) · ∂{w.math(z_i).text}/∂{w.math(weight).text}",
            by_sympy,
        )
        # a wide sum is shown in Σ form: print it only when it is shown (printing 5000 terms costs minutes)
        written = (
            w.product(layer.delta_chain[i], layer.inputs[j])
            if n <= TERMS_SHOWN
            else Math(
                "", "", sympy.Mul(layer.delta_chain[i], layer.inputs[j], evaluate=False) if n <= VALUES_UP_TO else None
            )
        )
        if n > TERMS_SHOWN:  # Σ over the outputs rather than every term
            general = _softmax_sum(w, layer, i)
            written = Math(
                rf"\left({general.latex}\right) \cdot {w.math(layer.inputs[j]).latex}",
                f"({general.text}) · {w.math(layer.inputs[j]).text}",
                written.value,
            )
    blocks.append(Chain((w.partial("L", weight), factors, written)))

    blocks.append(
        Prose(
            (
                "Everything before the last factor depends on the unit ",
                Math("i", "i"),
                " but not on the input ",
                Math("j", "j"),
                ". It is the shared factor (the tutorial's red box), named the error of the unit, ",
                Math(rf"\delta^{{({l_})}}_i = {_frac('L', f'z^{{({l_})}}_i')}", f"delta{l_}[i] = ∂L/∂z{l_}[i]"),
                ":",
            )
        )
    )
    for unit in _shown(n):
        z_u, a_u = layer.z[unit], layer.a[unit]
        if layer.activation.elementwise:
            factors = _join(
                w.partial("L", a_u),
                w.partial(a_u, z_u),
                value=layer.upstream[unit] * sympy.diff(layer.a_definition[unit], z_u),
            )
            written = w.product(layer.upstream[unit], layer.local_jacobian[unit, unit])
        else:
            a_k = _layer("a", l_, "k")
            factors = Math(
                rf"\sum_{{k}} {_frac('L', a_k.latex)} {_frac(a_k.latex, w.math(z_u).latex)}",
                f"Σ_k ∂L/∂{a_k.text} · ∂{a_k.text}/∂{w.math(z_u).text}",
                sympy.Add(*(layer.upstream[k] * layer.local_jacobian[k, unit] for k in range(n)))
                if n <= VALUES_UP_TO
                else None,
            )
            as_written = (
                sympy.Add(
                    *(sympy.Mul(layer.upstream[k], layer.local_jacobian[k, unit], evaluate=False) for k in range(n)),
                    evaluate=False,
                )
                if n <= VALUES_UP_TO
                else None
            )
            written = w.math(as_written) if n <= TERMS_SHOWN else Math("", "", as_written)
        wide_softmax = not layer.activation.elementwise and n > TERMS_SHOWN
        terms = [
            w.math(layer.delta[unit]),
            factors,
            written,
            *(() if wide_softmax else (w.math(layer.delta_chain[unit]), w.math(layer.delta_definition[unit]))),
        ]
        if not layer.activation.elementwise and n > TERMS_SHOWN:  # Σ over the outputs, not every term
            delta_step = next(s for s in derivation.matrix_program.steps if s.target.name == f"delta{l_}")
            simplified = _unit_form(delta_step.expression, l_, str(unit + 1))
            terms = [
                terms[0],
                factors,
                replace(_softmax_sum(w, layer, unit), value=written.value),
                replace(simplified, value=layer.delta_definition[unit] if n <= VALUES_UP_TO else None),
            ]
        blocks.append(Chain(_dedupe(terms)))
    if not layer.activation.elementwise:
        blocks.append(
            Prose(
                (
                    "When the target is a probability vector (its entries sum to 1) this is ",
                    Math(rf"\delta^{{({l_})}} = a^{{({l_})}} - y", f"delta{l_} = a{l_} - y"),
                    ": the softmax Jacobian and the logarithm cancel.",
                )
            )
        )
    blocks.append(
        Prose(
            (
                "So each gradient entry is an error times an input, ",
                Math(
                    rf"{_frac('L', f'W^{{({l_})}}_{{ij}}')} = \delta^{{({l_})}}_i {prev.latex}_j",
                    f"∂L/∂W{l_}[i,j] = delta{l_}[i] {prev.text}[j]",
                ),
                ":",
            )
        )
    )
    blocks += _gradient_entries(w, layer)
    return blocks


def _softmax_sum(w: _Writer, layer: LayerDerivation, unit: int) -> Math:
    """Σ_k ∂L/∂a_k · a_k (δ_ki − a_i) with ∂L/∂a_k written for a general output k."""
    l_, index = layer.index, str(unit + 1)
    a, y = sympy.Symbol(f"a{l_}", real=True), sympy.Symbol("y", real=True)
    per_unit = w.derivation.network.loss_rule.per_unit(a, y, len(layer.z))
    upstream = _unit_form(sympy.diff(per_unit, a), l_, "k")
    a_k, a_i = f"a^{{({l_})}}_{{k}}", f"a^{{({l_})}}_{{{index}}}"
    kronecker = rf"\left(\delta_{{k{index}}} - {a_i}\right)"
    return Math(
        rf"\sum_{{k=1}}^{{{len(layer.z)}}} \left({upstream.latex}\right) {a_k} {kronecker}",
        f"Σ_k ({upstream.text}) a{l_}[k] (δ_k{index} − a{l_}[{index}])",
    )


def _gradient_entries(w: _Writer, layer: LayerDerivation) -> list[Block]:
    blocks: list[Block] = []
    for i in _shown(layer.weight.rows):
        for j in _shown(layer.weight.cols):
            weight = layer.weight[i, j]
            factors = _join(
                w.partial("L", layer.z[i]),
                w.partial(layer.z[i], weight),
                value=layer.delta[i] * layer.z_derivative(i, weight),
            )
            blocks.append(Chain((w.partial("L", weight), factors, w.math(layer.delta[i] * layer.inputs[j]))))
    if layer.bias is not None:
        for i in _shown(layer.bias.rows):
            factors = _join(
                w.partial("L", layer.z[i]),
                w.partial(layer.z[i], layer.bias[i]),
                value=layer.delta[i] * layer.z_derivative(i, layer.bias[i]),
            )
            blocks.append(Chain((w.partial("L", layer.bias[i]), factors, w.math(layer.delta[i]))))
    return blocks


def _hidden_delta_chain(w: _Writer, layer: LayerDerivation, above: LayerDerivation, j: int) -> Chain:
    up, a_j, z_j = above.index, layer.a[j], layer.z[j]
    z_up = _layer("z", up, "i")
    a_j_math = w.math(a_j)
    wide = len(above.z) > VALUES_UP_TO  # the Σ over the layer above is shown, not built just to be checked
    by_sympy = (
        None if wide else sympy.Add(*(above.delta[i] * above.input_derivative(i, j) for i in range(len(above.z))))
    )
    factors = Math(
        rf"\left(\sum_{{i}} {_frac('L', z_up.latex)} {_frac(z_up.latex, a_j_math.latex)}\right) "
        rf"\cdot {w.partial(a_j, z_j).latex}",
        f"(Σ_i ∂L/∂{z_up.text} · ∂{z_up.text}/∂{a_j_math.text}) · ∂{a_j_math.text}/∂{w.math(z_j).text}",
        None if wide else by_sympy * sympy.diff(layer.a_definition[j], z_j),
    )
    index = str(j + 1)
    general = Math(
        rf"\left(\sum_{{i=1}}^{{{len(above.z)}}} W^{{({up})}}_{{i{index}}} \delta^{{({up})}}_i\right) "
        rf"\cdot {w.math(layer.local_jacobian[j, j]).latex}",
        f"(Σ_i W{up}[i,{index}] delta{up}[i]) · {w.math(layer.local_jacobian[j, j]).text}",
    )
    if wide:  # Σ_i over the layer above: shown, not built just to be checked
        written = general
    else:
        upstream = layer.upstream[j]
        written = (
            replace(general, value=upstream * layer.local_jacobian[j, j])
            if isinstance(upstream, sympy.Add) and len(upstream.args) > TERMS_SHOWN
            else w.product(upstream, layer.local_jacobian[j, j])
        )
    return Chain(_dedupe([w.math(layer.delta[j]), factors, written]))


def _hidden_layer(w: _Writer, layer: LayerDerivation, above: LayerDerivation) -> list[Block]:
    l_, up = layer.index, above.index
    blocks: list[Block] = [
        Prose(
            (
                "A unit's output feeds every unit of the layer above, so its error collects theirs through ",
                Math(f"W^{{({up})}}", f"W{up}"),
                ", reusing ",
                Math(rf"\delta^{{({up})}}", f"delta{up}"),
                ": ",
                Math(
                    rf"\delta^{{({l_})}} = \left(W^{{({up})\top}} \delta^{{({up})}}\right) \odot "
                    rf"{layer.activation.latex}'\left(z^{{({l_})}}\right)",
                    f"delta{l_} = (W{up}^T delta{up}) * {layer.activation.name}'(z{l_})",
                ),
                ".",
            )
        )
    ]
    blocks += _derivative_statement(w, layer)
    blocks += [_hidden_delta_chain(w, layer, above, j) for j in _shown(len(layer.z))]
    blocks += _gradient_entries(w, layer)
    return blocks


def _general_layer(w: _Writer, layers: Sequence[LayerDerivation]) -> list[Block]:
    """One step for every hidden layer of a deep network, checked at the layer just below the output."""
    depth = len(layers)
    layer, above = layers[-2], layers[-1]
    blocks: list[Block] = [
        Prose(
            (
                "Every hidden layer repeats one step. A unit's output feeds every unit of the layer above, so its "
                "error collects theirs, reusing the error of the layer above: for ",
                Math(f"l = {depth - 1}, \\ldots, 1", f"l = {depth - 1}, ..., 1"),
                ",",
            )
        ),
        Chain(
            (
                Math(r"\delta^{(l)}", "delta_l"),
                Math(
                    r"\left(W^{(l+1)\top} \delta^{(l+1)}\right) \odot f_l'\left(z^{(l)}\right)",
                    "(W_{l+1}^T delta_{l+1}) * f_l'(z_l)",
                ),
            )
        ),
        Prose(
            (
                "where ",
                Math("f_l", "f_l"),
                " is the activation of layer l (see the notation). Entry by entry, shown for ",
                Math(f"l = {layer.index}", f"l = {layer.index}"),
                ":",
            )
        ),
    ]
    for name in dict.fromkeys(lay.activation.name for lay in layers[:-1]):
        blocks += _derivative_statement(w, next(lay for lay in layers[:-1] if lay.activation.name == name))
    blocks.append(_hidden_delta_chain(w, layer, above, 0))
    blocks += _gradient_entries(w, layer)
    return blocks


def _matrix_form(derivation: Derivation) -> list[Block]:
    blocks: list[Block] = [
        Prose(
            (
                "Each entry above is one entry of an outer product, so a whole gradient is one matrix product; "
                "for a batch the same product also sums over the samples:",
            )
        )
    ]
    for layer in derivation.layers:
        l_, prev = layer.index, _previous(layer)
        blocks.append(
            Chain(
                (
                    Math(_frac("L", f"W^{{({l_})}}"), f"∂L/∂W{l_}"),
                    Math(rf"\delta^{{({l_})}} {{{prev.latex}}}^{{\top}}", f"delta{l_} {prev.text}^T"),
                )
            )
        )
        if layer.bias is not None:
            blocks.append(
                Chain((Math(_frac("L", f"b^{{({l_})}}"), f"∂L/∂b{l_}"), Math(rf"\delta^{{({l_})}}", f"delta{l_}")))
            )
    if "x" in derivation.wrt:
        blocks += [
            Prose(
                (
                    "The input's gradient is the first layer's δ carried back through its weights once more, "
                    "one column per sample (it is not summed over the batch):",
                )
            ),
            Chain((Math(_frac("L", "x"), "∂L/∂x"), Math(r"{W^{(1)}}^{\top} \delta^{(1)}", "W1^T delta1"))),
        ]
    return blocks


def _closed_forms(w: _Writer, derivation: Derivation) -> list[Block]:
    shown: list[Block] = []
    for name in derivation.parameters:
        symbols = derivation.symbols[name]
        if derivation.closed_form_size(name) > min(CLOSED_FORM_NODES * len(symbols), derivation.closed_form_budget):
            continue
        matrix = derivation.closed_form(name)
        for i in range(matrix.rows):
            for j in range(matrix.cols):
                entry = w.math(matrix[i, j])
                if len(entry.latex) <= CLOSED_FORM_SHOWN:
                    by_program = derivation.gradient_definitions[name][i, j]
                    shown.append(Chain((w.partial("L", symbols[i, j], by_program), entry)))
    if not shown:
        return []
    return [
        Heading("Closed form"),
        Prose(("Substituting every intermediate back gives the entries in x, y and the parameters:",)),
        *shown,
    ]


def _numbers(derivation: Derivation, values: Mapping[str, object]) -> list[Block]:
    named = derivation.intermediates(values)
    result = derivation.evaluate(values)
    blocks: list[Block] = [
        Heading("Numbers"),
        Prose(("At the values below (evaluated with 20 significant digits, shown rounded):",)),
    ]
    for name in ("x", "y", *derivation.parameters):
        blocks.append(Chain((_symbol_of(name), _matrix_of(values[name]))))
    for layer in derivation.layers:
        for kind in ("z", "a"):
            blocks.append(Chain((_layer(kind, layer.index), _matrix_of(named[f"{kind}{layer.index}"]))))
    blocks.append(Chain((Math("L", "L"), _number(result["loss"]))))
    for layer in reversed(derivation.layers):
        blocks.append(Chain((_layer(r"\delta", layer.index), _matrix_of(named[f"delta{layer.index}"]))))
    for name in derivation.parameters:
        symbol = _symbol_of(name)
        blocks.append(Chain((Math(_frac("L", symbol.latex), f"∂L/∂{name}"), _matrix_of(result[name]))))
    return blocks


def _symbol_of(name: str) -> Math:
    if name in ("x", "y"):
        return Math(name, name)
    return _layer(name[0], int(name[1:]))


def _matrix_of(rows: Sequence[Sequence[float]]) -> Math:
    """Numbers as a matrix; a column vector as a transposed row, [v1, v2, ...]ᵀ, to keep pages short."""
    max_rows, max_cols = NUMBERS_SHOWN
    column = all(len(row) == 1 for row in rows)
    flat = [float(row[0]) for row in rows] if column else None
    if column and len(flat) <= VECTOR_SHOWN:
        cells = [_number(v) for v in flat]
        return Math(
            rf"\begin{{bmatrix}} {' & '.join(c.latex for c in cells)} \end{{bmatrix}}^{{\top}}",
            f"[{', '.join(c.text for c in cells)}]^T",
        )
    if column or len(rows) > max_rows or len(rows[0]) > max_cols:
        largest = max(abs(float(v)) for row in rows for v in row)
        shape = f"{len(rows)} x {len(rows[0])}"
        return Math(
            rf"\text{{a {shape} matrix, largest entry }} {_number(largest).latex}",
            f"a {shape} matrix, largest |entry| {_number(largest).text}",
        )
    cells = [[_number(float(v)) for v in row] for row in rows]
    latex = r" \\ ".join(" & ".join(c.latex for c in row) for row in cells)
    text = "; ".join(", ".join(c.text for c in row) for row in cells)
    return Math(rf"\begin{{bmatrix}} {latex} \end{{bmatrix}}", f"[{text}]")


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


# --- backends ----------------------------------------------------------------------------------------------

_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[margin=2.2cm]{geometry}
\usepackage{amsmath}
\allowdisplaybreaks
\begin{document}
\section*{Backpropagation by the chain rule}
"""

_TEXT_TO_LATEX = {
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
    "σ": r"$\sigma$",
    "⊙": r"$\odot$",
}


def _escape(text: str) -> str:
    return "".join(_TEXT_TO_LATEX.get(ch, ch) for ch in text)


def _aligned(terms: Sequence[Math]) -> list[str]:
    first, *rest = terms
    return [f"{first.latex} &= {rest[0].latex}"] + [f"&= {t.latex}" for t in rest[1:]]


def _width(block: Chain) -> int:
    return sum(len(term.text) + 3 for term in block.terms)


def _latex_chain(block: Chain) -> str:
    if _width(block) <= WIDE:
        return "\\begin{equation*}\n" + " = ".join(t.latex for t in block.terms) + "\n\\end{equation*}"
    return "\\begin{align*}\n" + " \\\\\n".join(_aligned(block.terms)) + "\n\\end{align*}"


def render_latex(derivation: Derivation, document: bool = False, values: Mapping[str, object] | None = None) -> str:
    parts = []
    for block in explain(derivation, values):
        if isinstance(block, Heading):
            parts.append(f"\\subsection*{{{_escape(block.text)}}}")
        elif isinstance(block, Prose):
            parts.append("".join(f"${p.latex}$" if isinstance(p, Math) else _escape(p) for p in block.parts))
        elif isinstance(block, Chain):
            parts.append(_latex_chain(block))
        else:
            rows = " \\\\\n".join(f"${m.latex}$ & {_escape(desc)}" for m, desc in block.rows)
            parts.append(
                "\\begin{center}\n\\begin{tabular}{lp{0.78\\textwidth}}\n" + rows + "\n\\end{tabular}\n\\end{center}"
            )
    body = "\n\n".join(parts) + "\n"
    return _PREAMBLE + body + "\\end{document}\n" if document else body


def _display_math(block: Chain) -> str:
    body = " = ".join(t.latex for t in block.terms)
    if _width(block) > WIDE:
        body = "\\begin{aligned}" + " \\\\ ".join(_aligned(block.terms)) + "\\end{aligned}"
    return body


def render_markdown(derivation: Derivation, values: Mapping[str, object] | None = None) -> str:
    parts = ["# Backpropagation by the chain rule"]
    for block in explain(derivation, values):
        if isinstance(block, Heading):
            parts.append(f"## {block.text}")
        elif isinstance(block, Prose):
            parts.append("".join(f"${p.latex}$" if isinstance(p, Math) else p for p in block.parts))
        elif isinstance(block, Chain):
            parts.append(f"$$\n{_display_math(block)}\n$$")
        else:
            table = "\n".join(f"| ${m.latex}$ | {d} |" for m, d in block.rows)
            parts.append("| symbol | meaning |\n|---|---|\n" + table)
    return "\n\n".join(parts) + "\n"


def render_math(derivation: Derivation, values: Mapping[str, object] | None = None) -> str:
    """Display math only (what a notebook's MathJax renders for ``_repr_latex_``): the equations in order."""
    chains = [block for block in explain(derivation, values) if isinstance(block, Chain)]
    return "\n".join(f"$${_display_math(block)}$$" for block in chains) + "\n"


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
