"""What a page must teach is there, and in order: every required step of the derivation, in the text, Markdown and
LaTeX outputs, in English and in Chinese.

The other page tests check that what is shown is true (each side equals the next, each printed side reads back
to what was checked). These check that what must be shown is shown: the notation rows the network uses, the
forward pass of every layer, the loss, for each layer its δ chain from its first line (the chain rule factor by
factor), the weight gradient, the bias chain when there is a bias, the matrix form, the numbers when values are
given. The expectation is written from the network (its depth, widths, bias, activations, loss), in the page's
notation, and the sentences come from the word tables; each sentence also carries a word of its meaning written
here (``MEANING``), so that two sentences swapped in a table cannot pass for each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
import torch

from symbolic import ACTIVATIONS, TUTORIAL, TUTORIAL_VALUES, Network, derive, sample_values, words
from symbolic._render import ENTRIES_SHOWN
from tests.reference_model import OUTPUT_ACTIVATIONS, reference_loss
from tests.test_steps import read_number

FORMATS = ("text", "markdown", "latex")
LANGS = ("en", "zh")

# A word of what each sentence says, written here, not taken from the tables: a sentence that turns up where
# another belongs (two entries swapped in a table) lacks its word.
MEANING: Mapping[str, Mapping[str, str]] = {
    "en": {
        "title": "Backpropagation",
        "motivation": "Gradient descent",
        "motivation_bias": "every weight W and bias b",
        "heading_backward": "Backward",
        "backward_intro": "chain rule",
        "heading_checked": "checked",
        "network": "layer sizes",
        "what_is_derived": "differentiated",
        "heading_notation": "Notation",
        "notation_x": "input",
        "notation_y": "target",
        "notation_W": "weights",
        "notation_b": "bias",
        "notation_z": "pre-activation",
        "notation_a": "output of layer",
        "notation_delta": "error",
        "notation_activation": "activation function",
        "notation_activation_layers": "activation function",
        "notation_hadamard": "element-wise",
        "notation_ones": "ones",
        "notation_indicator": "condition",
        "notation_B": "batch size",
        "heading_forward": "Forward",
        "forward_names": "name",
        "entry_by_entry": "Entry by entry",
        "loss_is": "loss function",
        "loss_is_coupled": "couples",
        "heading_output": "Output",
        "chain_path": "path",
        "derivative_through_output": "in terms of its output",
        "derivative": "Its derivative",
        "softmax_couples": "softmax couples",
        "shared_factor": "tutorial's red box",
        "shared_factor_boxed": "boxed in red",
        "delta_is_difference": "simplifies",
        "delta_is_difference_for_probabilities": "probability",
        "error_times_input": "error of the unit",
        "heading_layer": "Hidden layer",
        "hidden_collects": "collects",
        "heading_hidden": "Hidden",
        "general_step": "repeats",
        "general_where": "activation of layer l",
        "heading_matrix": "matrix form",
        "matrix_outer": "outer product",
        "matrix_bias": "bias",
        "heading_numbers": "Numbers",
        "numbers_intro": "values",
        "batch_sum": "sums",
        "batch_mean": "mean",
    },
    "zh": {
        "title": "反向传播",
        "motivation": "梯度下降",
        "motivation_bias": "和偏置",
        "heading_backward": "反向传播",
        "backward_intro": "链式法则",
        "heading_checked": "验证",
        "network": "各层大小",
        "what_is_derived": "求导",
        "heading_notation": "记号",
        "notation_x": "输入",
        "notation_y": "目标",
        "notation_W": "权重",
        "notation_b": "偏置",
        "notation_z": "激活前",
        "notation_a": "输出",
        "notation_delta": "误差项",
        "notation_activation": "激活函数",
        "notation_activation_layers": "激活函数",
        "notation_hadamard": "逐元素",
        "notation_ones": "全为 1",
        "notation_indicator": "条件",
        "notation_B": "批大小",
        "heading_forward": "正向传播",
        "forward_names": "名字",
        "entry_by_entry": "逐个分量",
        "loss_is": "损失函数",
        "loss_is_coupled": "耦合",
        "heading_output": "输出层",
        "chain_path": "路径",
        "derivative_through_output": "输出",
        "derivative": "导数",
        "softmax_couples": "耦合",
        "shared_factor": "教程中的红框",
        "shared_factor_boxed": "红框",
        "delta_is_difference": "化简",
        "delta_is_difference_for_probabilities": "概率",
        "error_times_input": "误差项乘以它所传递的输入",
        "heading_layer": "层",
        "hidden_collects": "收集",
        "heading_hidden": "隐藏层",
        "general_step": "重复同一步",
        "general_where": "激活函数",
        "heading_matrix": "矩阵形式",
        "matrix_outer": "外积",
        "matrix_bias": "偏置",
        "heading_numbers": "数值",
        "numbers_intro": "数值处",
        "batch_sum": "求和",
        "batch_mean": "平均",
    },
}

# Activations whose derivative the page writes through the output a (README: σ' = a(1 − a), tanh' = 1 − a²).
THROUGH_OUTPUT = {"sigmoid", "tanh"}
TEXT_SYMBOL = {"sigmoid": "σ"}  # how the text page writes an activation; the others by name
COUPLED_LOSSES = {"softmax_cross_entropy"}  # losses with no per-unit term (log-sum-exp over the units)


# --- the page's notation, in both forms ---------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("0123456789l+", "⁰¹²³⁴⁵⁶⁷⁸⁹ˡ⁺")


@dataclass(frozen=True)
class M:
    """A piece of mathematics as the text page and as LaTeX (Markdown uses the LaTeX) write it."""

    text: str
    latex: str


def _greek(letter: str) -> M:
    return M("δ", r"\delta") if letter == "delta" else M(letter, letter)


def vector(letter: str, layer: int | str | None = None) -> M:
    """x, y, or a layer's W⁽ˡ⁾, b⁽ˡ⁾, z⁽ˡ⁾, a⁽ˡ⁾, δ⁽ˡ⁾ (layer 0 of a is the input x)."""
    if letter == "a" and layer == 0:
        return M("x", "x")
    base = _greek(letter)
    if layer is None:
        return base
    return M(f"{base.text}⁽{str(layer).translate(_SUPERSCRIPT)}⁾", f"{base.latex}^{{({layer})}}")


def entry(letter: str, layer: int | None, *index: int | str) -> M:
    """One entry: x[1], W⁽²⁾[1,1], δ⁽²⁾[i]; LaTeX braces an entry of a numbered unit, not an index form."""
    if letter == "a" and layer == 0:
        letter, layer = "x", None
    whole = vector(letter, layer)
    text = f"{whole.text}[{','.join(map(str, index))}]"
    latex = f"{whole.latex}_{{{''.join(map(str, index))}}}"
    numbered = all(isinstance(i, int) for i in index) and layer is not None
    return M(text, f"{{{latex}}}" if numbered else latex)


def partial(top: M, bottom: M) -> M:
    return M(f"∂{top.text}/∂{bottom.text}", rf"\frac{{\partial {top.latex}}}{{\partial {bottom.latex}}}")


def product(*factors: M) -> M:
    return M(" · ".join(f.text for f in factors), r" \cdot ".join(f.latex for f in factors))


def parenthesised(inner: M) -> M:
    return M(f"({inner.text})", rf"\left({inner.latex}\right)")


def summed(index: str, count: int, term: M) -> M:
    return M(f"Σ[{index}=1..{count}] {term.text}", rf"\sum_{{{index}=1}}^{{{count}}} {term.latex}")


def transposed(matrix: M) -> M:
    latex = f"{matrix.latex}^{{\\top}}" if len(matrix.latex) == 1 else f"{{{matrix.latex}}}^{{\\top}}"
    return M(f"{matrix.text}ᵀ", latex)


def applied(function: M, argument: M, prime: bool = False) -> M:
    mark = "'" if prime else ""
    return M(f"{function.text}{mark}({argument.text})", rf"{function.latex}{mark}\left({argument.latex}\right)")


def boxed(inner: M) -> M:
    """The red box around the shared factor, where δ is first named."""
    return M(f"⟦{inner.text}⟧", rf"{{\color{{red}}\boxed{{\color{{black}}{inner.latex}}}}}")


def equals(*sides: M) -> M:
    return M(" = ".join(s.text for s in sides), " = ".join(s.latex for s in sides))


def activation_symbol(name: str) -> M:
    return M(TEXT_SYMBOL.get(name, name), ACTIVATIONS[name].latex)


LOSS = M("L", "L")


# --- the steps a page must hold -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wild:
    """A piece the expectation does not spell out (a loss's formula, a number): anything on the line."""


WILD = Wild()


@dataclass(frozen=True)
class Sentence:
    key: str
    fields: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Heading:
    key: str
    fields: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Row:
    symbol: M
    key: str
    fields: tuple[tuple[str, object], ...] = ()
    shape: M | None = None  # the shape column: the symbol's shape, one per layer for a layer's symbol


@dataclass(frozen=True)
class Equation:
    """An equation's first sides, in order (later sides may follow); ``contains`` must be on its first line."""

    sides: tuple[M | Wild, ...]
    contains: tuple[M, ...] = ()


Step = Sentence | Heading | Row | Equation


def _fields(**pieces: object) -> tuple[tuple[str, object], ...]:
    return tuple(pieces.items())


def _shown(count: int) -> list[int]:
    """The units a layer spells out: every one of a narrow layer, else the first, standing for all."""
    return list(range(1, count + 1)) if count <= ENTRIES_SHOWN else [1]


@dataclass(frozen=True)
class Page:
    """A network and what its page must say beyond the network itself."""

    network: Network
    values: Mapping[str, object] | None = None
    difference: str | None = None  # "always" or "probability": δ_L = a_L − y holds (by the mathematics)


def describe(network: Network, lang: str) -> str:
    w = words(lang)
    activations = network.activations
    shown = activations[0] if len(set(activations)) == 1 else "/".join(activations)
    extras = ([w["describe_bias"]] if network.bias else []) + (
        [w["describe_mean"]] if network.reduction == "mean" else []
    )
    return w["list_separator"].join(["-".join(map(str, network.sizes)), shown, network.loss, *extras])


def _derivative_statement(name: str, layer: int) -> list[Step]:
    """What the page says the first time it meets an activation: its derivative, by SymPy."""
    symbol, z = activation_symbol(name), M("z", "z")
    if name == "softmax":
        k, i = entry("a", layer, "k"), entry("z", layer, "i")
        return [Sentence("softmax_couples"), Equation((partial(k, i), WILD))]
    if name in THROUGH_OUTPUT:
        output = equals(M("a", "a"), applied(symbol, z))
        return [
            Sentence("derivative_through_output", _fields(definition=WILD, a=output)),
            Equation((applied(symbol, z, prime=True), WILD)),
        ]
    return [Sentence("derivative", _fields(definition=WILD)), Equation((applied(symbol, z, prime=True), WILD))]


def _weight_and_bias_chains(network: Network, layer: int) -> list[Step]:
    z1, weight = entry("z", layer, 1), entry("W", layer, 1, 1)
    steps: list[Step] = [
        Equation(
            (
                partial(LOSS, weight),
                product(partial(LOSS, z1), partial(z1, weight)),
                product(entry("delta", layer, 1), entry("a", layer - 1, 1)),
            )
        )
    ]
    if network.bias:
        bias = entry("b", layer, 1)
        steps.append(
            Equation((partial(LOSS, bias), product(partial(LOSS, z1), partial(z1, bias)), entry("delta", layer, 1)))
        )
    return steps


def _hidden_delta_chain(network: Network, layer: int, unit: int) -> Equation:
    above = layer + 1
    z_i, a_j, z_j = entry("z", above, "i"), entry("a", layer, unit), entry("z", layer, unit)
    collected = parenthesised(summed("i", network.sizes[above], product(partial(LOSS, z_i), partial(z_i, a_j))))
    return Equation((entry("delta", layer, unit), product(collected, partial(a_j, z_j))))


def _recursion(layer: int | str, above: int | str, function: M) -> Equation:
    """δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ f'(z⁽ˡ⁾)."""
    weight, delta = transposed(vector("W", above)), vector("delta", above)
    back = parenthesised(M(f"{weight.text} {delta.text}", f"{weight.latex} {delta.latex}"))
    derivative = applied(function, vector("z", layer), prime=True)
    return Equation(
        (vector("delta", layer), M(f"{back.text} ⊙ {derivative.text}", rf"{back.latex} \odot {derivative.latex}"))
    )


def expected_steps(page: Page, lang: str) -> list[Step]:
    """Every step the page of ``page.network`` must hold, in the order a student needs them."""
    network = page.network
    depth, sizes, activations = network.depth, network.sizes, network.activations
    steps: list[Step] = [  # why first: gradient descent needs ∂L/∂W, backpropagation reuses δ
        Sentence(
            "motivation_bias" if network.bias else "motivation",
            _fields(dW=partial(LOSS, M("W", "W")), delta=_greek("delta")),
        ),
        Sentence("network", _fields(network=describe(network, lang), sizes=f"[{', '.join(map(str, sizes))}]")),
    ]

    # notation: the rows this network uses, each with its shape, each activation once with the layers it is on
    def shape(*dims: tuple[object, object]) -> M:
        return M(", ".join(f"{r}×{c}" for r, c in dims), ", ".join(rf"{r} \times {c}" for r, c in dims))

    per_layer = [(sizes[index], "B") for index in range(1, depth + 1)]
    steps += [
        Heading("heading_notation"),
        Row(M("x", "x"), "notation_x", _fields(n=sizes[0]), shape((sizes[0], "B"))),
        Row(M("y", "y"), "notation_y", _fields(n=sizes[-1]), shape((sizes[-1], "B"))),
        Row(M("B", "B"), "notation_B"),
        Row(vector("W", "l"), "notation_W", (), shape(*((sizes[i], sizes[i - 1]) for i in range(1, depth + 1)))),
    ]
    if network.bias:
        steps.append(Row(vector("b", "l"), "notation_b", (), shape(*((sizes[i], 1) for i in range(1, depth + 1)))))
    steps += [
        Row(vector("z", "l"), "notation_z", (), shape(*per_layer)),
        Row(vector("a", "l"), "notation_a", (), shape(*per_layer)),
        Row(vector("delta", "l"), "notation_delta", (), shape(*per_layer)),
    ]
    for name in dict.fromkeys(activations):
        layers = [str(index) for index, other in enumerate(activations, start=1) if other == name]
        key = "notation_activation" if len(layers) == 1 else "notation_activation_layers"
        listed = words(lang)["list_separator"].join(layers)
        steps.append(Row(activation_symbol(name), key, _fields(name=name, layers=listed)))
    # only the notation the page uses: ⊙ (every network here has a hidden layer's Wᵀδ ⊙ f'(z)), 𝟏 where a bias
    # gradient sums the batch, 𝟙 where relu's derivative (𝟙[z > 0]) or softmax's Jacobian (𝟙[k = i]) is written
    steps.append(Row(M("u ⊙ v", r"u \odot v"), "notation_hadamard"))
    if network.bias:
        steps.append(Row(M("𝟏", r"\mathbf{1}"), "notation_ones", (), shape(("B", 1))))
    if {"relu", "softmax"} & set(activations):
        steps.append(Row(M("𝟙[P]", r"\mathbb{1}\left[P\right]"), "notation_indicator"))

    # the forward pass: every layer as a whole, then entry by entry, then the loss
    steps += [Heading("heading_forward"), Sentence("forward_names")]
    for layer in range(1, depth + 1):
        linear = f"{vector('W', layer).text} {vector('a', layer - 1).text}"
        linear_latex = f"{vector('W', layer).latex} {vector('a', layer - 1).latex}"
        if network.bias:
            linear, linear_latex = (
                f"{linear} + {vector('b', layer).text}",
                f"{linear_latex} + {vector('b', layer).latex}",
            )
        steps.append(Equation((vector("z", layer), M(linear, linear_latex))))
        steps.append(
            Equation((vector("a", layer), applied(activation_symbol(activations[layer - 1]), vector("z", layer))))
        )
    steps.append(Sentence("entry_by_entry"))
    for layer in range(1, depth + 1):
        for unit in _shown(sizes[layer]):
            row = M(f"W⁽{str(layer).translate(_SUPERSCRIPT)}⁾[{unit},", f"W^{{({layer})}}_{{{unit}")
            bias = (entry("b", layer, unit),) if network.bias else ()
            steps.append(Equation((entry("z", layer, unit), WILD), (row, *bias)))
            steps.append(Equation((entry("a", layer, unit), WILD)))
    steps.append(Equation((LOSS, WILD)))
    batch = words(lang)["batch_mean" if network.reduction == "mean" else "batch_sum"]
    if network.loss in COUPLED_LOSSES:
        steps.append(Sentence("loss_is_coupled", _fields(loss=network.loss, batch=batch)))
    else:
        steps.append(Sentence("loss_is", _fields(loss=network.loss, per_unit=WILD, prediction=WILD, batch=batch)))

    # the output layer: the chain rule factor by factor, δ named, each gradient entry an error times an input
    top, explained = depth, set()
    output = activations[-1]
    z1, a1, weight = entry("z", top, 1), entry("a", top, 1), entry("W", top, 1, 1)
    steps += [
        Heading("heading_backward"),
        Sentence("backward_intro"),
        Heading("heading_output", _fields(layer=top)),
        *_derivative_statement(output, top),
        Sentence("chain_path", _fields(W=vector("W", top), weight=weight)),
    ]
    explained.add(output)
    a_k = entry("a", top, "k")
    if output == "softmax":
        coupled = boxed(summed("k", sizes[top], product(partial(LOSS, a_k), partial(a_k, z1))))
        steps.append(Equation((partial(LOSS, weight), product(coupled, partial(z1, weight)))))
    else:
        shared = boxed(product(partial(LOSS, a1), partial(a1, z1)))
        steps.append(Equation((partial(LOSS, weight), product(shared, partial(z1, weight)))))
    named = equals(entry("delta", top, "i"), partial(LOSS, entry("z", top, "i")))
    tutorial = network == TUTORIAL  # only its page names the tutorial's red box
    key = "shared_factor" if tutorial else "shared_factor_boxed"
    steps.append(Sentence(key, _fields(i=M("i", "i"), j=M("j", "j"), delta=named)))
    for unit in _shown(sizes[top]):
        a_u, z_u = entry("a", top, unit), entry("z", top, unit)
        if output == "softmax":
            chain = boxed(summed("k", sizes[top], product(partial(LOSS, a_k), partial(a_k, z_u))))
        else:
            chain = boxed(product(partial(LOSS, a_u), partial(a_u, z_u)))
        steps.append(Equation((entry("delta", top, unit), chain)))
    if page.difference is not None:
        key = "delta_is_difference" if page.difference == "always" else "delta_is_difference_for_probabilities"
        difference = M(f"{vector('a', top).text} − y", f"{vector('a', top).latex} - y")
        steps.append(Sentence(key, _fields(equation=equals(vector("delta", top), difference))))
    steps += [
        Sentence("error_times_input"),
        Equation(
            (partial(LOSS, entry("W", top, "i", "j")), product(entry("delta", top, "i"), entry("a", top - 1, "j")))
        ),
        *_weight_and_bias_chains(network, top),
    ]

    # the hidden layers: one section each, or one general step for a deep network
    if depth >= 4:
        below = depth - 1
        steps.append(Heading("heading_hidden", _fields(top=below)))
        for name in activations[:-1]:  # the derivatives before the recursion that uses them
            if name not in explained:
                explained.add(name)
                steps += _derivative_statement(name, 0)
        steps += [
            Sentence("general_step", _fields(range=M(f"l = {below}, …, 1", rf"l = {below}, \ldots, 1"))),
            _recursion("l", "l+1", M("f_l", "f_l")),
            Sentence("general_where", _fields(f=M("f_l", "f_l"), l=M(f"l = {below}", f"l = {below}"))),
        ]
        steps.append(_hidden_delta_chain(network, below, 1))
        steps += _weight_and_bias_chains(network, below)
    else:
        for layer in range(depth - 1, 0, -1):
            name = activations[layer - 1]
            steps.append(Heading("heading_layer", _fields(layer=layer)))
            if name not in explained:  # the derivative before the recursion that uses it
                explained.add(name)
                steps += _derivative_statement(name, layer)
            steps += [
                Sentence("hidden_collects", _fields(W=vector("W", layer + 1), delta=vector("delta", layer + 1))),
                _recursion(layer, layer + 1, activation_symbol(name)),
            ]
            steps += [_hidden_delta_chain(network, layer, unit) for unit in _shown(sizes[layer])]
            steps += _weight_and_bias_chains(network, layer)

    # the matrix form over a batch
    steps += [Heading("heading_matrix"), Sentence("matrix_outer")]
    for layer in range(1, depth + 1):
        outer = M(
            f"{vector('delta', layer).text} {transposed(vector('a', layer - 1)).text}",
            f"{vector('delta', layer).latex} {transposed(vector('a', layer - 1)).latex}",
        )
        steps.append(Equation((partial(LOSS, vector("W", layer)), outer)))
    if network.bias:
        steps.append(Sentence("matrix_bias"))
        for layer in range(1, depth + 1):
            ones = M(f"{vector('delta', layer).text} 𝟏", rf"{vector('delta', layer).latex} \mathbf{{1}}")
            steps.append(Equation((partial(LOSS, vector("b", layer)), ones)))

    # the numbers: inputs, every intermediate forward, the loss, every δ backward, every gradient
    if page.values is not None:
        steps += [Heading("heading_numbers"), Sentence("numbers_intro")]
        shown = [M("x", "x"), M("y", "y")]
        for layer in range(1, depth + 1):
            shown.append(vector("W", layer))
            if network.bias:
                shown.append(vector("b", layer))
        for layer in range(1, depth + 1):
            shown += [vector("z", layer), vector("a", layer)]
        shown.append(LOSS)
        shown += [vector("delta", layer) for layer in range(depth, 0, -1)]
        for layer in range(1, depth + 1):
            shown.append(partial(LOSS, vector("W", layer)))
            if network.bias:
                shown.append(partial(LOSS, vector("b", layer)))
        steps += [Equation((name, WILD)) for name in shown]
    # how the page was checked, at its end
    steps += [
        Heading("heading_checked"),
        Sentence("what_is_derived", _fields(layer_map=WILD, z=M("z", "z"), a=M("a", "a"), delta=_greek("delta"))),
    ]
    return steps


# --- the steps as patterns of each format ---------------------------------------------------------------------


def _plain(character: str) -> bool:
    """Characters LaTeX prose keeps as they are (ASCII words and punctuation, CJK); others it spells its way."""
    code = ord(character)
    if code < 128:
        return character not in "_%&#^{}|~\\$"
    return 0x3000 <= code <= 0x9FFF or 0xFF00 <= code <= 0xFFEF


def _prose(text: str, fmt: str) -> str:
    """A regex for prose words: LaTeX spells a special character as a short command ($\\delta$, \\_)."""
    if fmt != "latex":
        return re.escape(text)
    return "".join(re.escape(c) if _plain(c) else r"\S{1,16}?" for c in text)


def _math(piece: M | Wild, fmt: str, inline: bool) -> str:
    if isinstance(piece, Wild):
        return r"[^\n]*?"
    if fmt == "text":
        return re.escape(piece.text)
    return re.escape(f"${piece.latex}$" if inline else piece.latex)


def _sentence(template: str, fields: Mapping[str, object], fmt: str) -> str:
    """The sentence with its placeholders filled: mathematics in the format's notation, words as words."""
    pattern, rest = "", template
    while "{" in rest:
        before, after = rest.split("{", 1)
        name, rest = after.split("}", 1)
        piece = fields[name]
        pattern += _prose(before, fmt)
        pattern += _math(piece, fmt, inline=True) if isinstance(piece, (M, Wild)) else _prose(str(piece), fmt)
    return pattern + _prose(rest, fmt)


def _start(fmt: str) -> str:
    """Where an equation's first side starts: a text line's indent, or an aligned row (two may share one)."""
    return r"^  " if fmt == "text" else r"(?:^|& )"


def pattern(step: Step, lang: str, fmt: str) -> tuple[str, str, str | None]:
    """(label, regex, word of meaning) for one step in one format."""
    table = words(lang)
    if isinstance(step, Equation):
        join = r"\s*=\s*" if fmt == "text" else r"\s*(?:\\\\\s*)?&?\s*=\s*"
        regex = _start(fmt) + join.join(_math(side, fmt, inline=False) for side in step.sides)
        for piece in step.contains:
            regex += r"[^\n]*?" + _math(piece, fmt, inline=False)
        label = " = ".join("…" if isinstance(side, Wild) else side.text for side in step.sides)
        return f"equation {label}", regex, None
    fields = dict(step.fields)
    sentence = _sentence(table[step.key], fields, fmt)
    meaning = MEANING[lang][step.key]
    if isinstance(step, Heading):
        heading = {  # a part (the forward, the backward pass) or a section inside one (a layer)
            "text": rf"^{sentence}\n(?:=+|-+)$",
            "markdown": rf"^###? {sentence}$",
            "latex": rf"^\\(?:sub)?subsection\*\{{{sentence}\}}$",
        }
        return f"heading {step.key}", heading[fmt], meaning
    if isinstance(step, Row):
        symbol = _math(step.symbol, fmt, inline=True)
        shape = "" if step.shape is None else _math(step.shape, fmt, inline=True)
        row = {
            "text": rf"^  {symbol} +{shape + ' +' if shape else ''}{sentence}$",
            "markdown": rf"^\| {symbol} \| {shape} \| {sentence} \|$",
            "latex": rf"^{symbol} & {shape} & {sentence} \\\\$",
        }
        return f"notation row {step.key}", row[fmt], meaning
    return f"sentence {step.key}", rf"^{sentence}$", meaning


RED = r"{\color{red}"


def without_red_errors(latex: str) -> str:
    """The LaTeX with each red δ written plainly (``{\\color{red}\\delta…}`` → ``\\delta…``), the red box kept:
    the steps are written in plain notation; tests/test_box.py checks which δ are red."""
    out, position = [], 0
    while (start := latex.find(RED, position)) >= 0:
        depth, end = 1, start + len(RED)
        while depth:
            depth += {"{": 1, "}": -1}.get(latex[end], 0)
            end += 1
        inner = without_red_errors(latex[start + len(RED) : end - 1])
        error = inner.lstrip("{").startswith(r"\delta")
        out += [latex[position:start], inner if error else RED + inner + "}"]
        position = end
    out.append(latex[position:])
    return "".join(out)


def render(page: Page, lang: str, fmt: str) -> str:
    derivation = derive(page.network)
    if fmt == "text":
        return derivation.text(values=page.values, lang=lang)
    if fmt == "markdown":
        return without_red_errors(str(derivation.markdown(values=page.values, lang=lang)))
    return without_red_errors(derivation.latex(values=page.values, lang=lang))


def assert_steps_in_order(text: str, steps: list[Step], lang: str, fmt: str) -> None:
    position, previous = 0, "the start of the page"
    for step in steps:
        label, regex, meaning = pattern(step, lang, fmt)
        found = re.compile(regex, re.MULTILINE).search(text, position)
        assert found is not None, f"{fmt}/{lang}: {label} is missing after {previous}\n(pattern {regex!r})"
        if meaning is not None:
            assert meaning in found.group(0), f"{fmt}/{lang}: {label} reads {found.group(0)!r}, which lacks {meaning!r}"
        position, previous = found.end(), label


# --- the pages --------------------------------------------------------------------------------------------------


def _with_bias_and_mean() -> Network:
    return Network([3, 4, 2], ["tanh", "sigmoid"], "bce", bias=True, reduction="mean")


PAGES = {
    # the tutorial: one activation on two layers, with its numbers
    "tutorial": Page(TUTORIAL, TUTORIAL_VALUES),
    # bias, reduction mean, two activations, numbers of a batch of two
    "bias-mean": Page(_with_bias_and_mean(), sample_values(_with_bias_and_mean(), seed=1, batch=2)),
    # a wide layer (its first unit stands for all) under a softmax, and a long sum written with Σ
    "wide-softmax": Page(Network([6, 5, 4], ["leaky_relu", "softmax"], "cross_entropy"), difference="probability"),
    # deep: one general step for the hidden layers, each activation's derivative once
    "deep": Page(Network([2, 3, 3, 3, 1], ["relu", "elu", "gelu", "sigmoid"], "half_sse", bias=True)),
    # a loss that couples the units, on logits
    "coupled-loss": Page(Network([2, 3, 3], ["softplus", "identity"], "softmax_cross_entropy", bias=True)),
    # δ = a − y for every target
    "sigmoid-bce": Page(Network([2, 3, 2], ["silu", "sigmoid"], "bce"), difference="always"),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", PAGES)
def test_every_required_step_is_on_the_page_in_order(name, lang, fmt):
    page = PAGES[name]
    assert_steps_in_order(render(page, lang, fmt), expected_steps(page, lang), lang, fmt)


def _small_page(output: str, loss: str = "half_sse", reduction: str = "sum") -> Page:
    """2-3-2 with ``output`` on the last layer (and below it, unless it is allowed on the last layer only)."""
    hidden = "tanh" if ACTIVATIONS[output].last_layer_only else output
    return Page(Network([2, 3, 2], [hidden, output], loss, reduction=reduction))


@pytest.mark.parametrize(("lang", "fmt"), [("en", "text"), ("zh", "latex")])
@pytest.mark.parametrize("output", ACTIVATIONS)
def test_every_activation_gets_its_steps(output, lang, fmt):
    page = _small_page(output)
    assert_steps_in_order(render(page, lang, fmt), expected_steps(page, lang), lang, fmt)


@pytest.mark.parametrize(("lang", "fmt"), [("zh", "text"), ("en", "markdown")])
@pytest.mark.parametrize("loss", OUTPUT_ACTIVATIONS)
def test_every_loss_gets_its_steps(loss, lang, fmt):
    allowed = OUTPUT_ACTIVATIONS[loss]
    page = _small_page("sigmoid" if allowed is None else sorted(allowed)[0], loss, reduction="mean")
    assert_steps_in_order(render(page, lang, fmt), expected_steps(page, lang), lang, fmt)


def test_the_title_is_a_markdown_heading():
    # Markdown's title is "# …" (one hash): checked apart, since Heading patterns are section headings
    for lang in LANGS:
        first = str(derive(TUTORIAL).markdown(lang=lang)).splitlines()[0]
        assert first == f"# {words(lang)['title']}" and MEANING[lang]["title"] in first


def _third_side(text: str, first: M, fmt: str) -> str | None:
    """The third side of the chain that starts with ``first`` (on one row, or one side a row)."""
    if fmt == "text":
        found = re.search(r"^  " + re.escape(first.text) + r" = (.*(?:\n {3,}= .*)*)", text, re.MULTILINE)
        sides = re.split(r"\s+=\s+", found.group(1)) if found else []
    else:
        found = re.search(r"(?:^|& )" + re.escape(first.latex) + r" &= (.*?(?: \\\\\n&= .*?)*)(?: \\\\)?$", text, re.M)
        sides = re.split(r" = | \\\\\n&= ", found.group(1)) if found else []
    return sides[1] if len(sides) > 1 else None


@pytest.mark.parametrize("name", [n for n, p in PAGES.items() if p.network.activations[-1] != "softmax"])
@pytest.mark.parametrize("fmt", ["text", "latex"])
def test_the_shared_factor_is_the_error_as_printed(name, fmt):
    """What the page names δ (the tutorial's red box) is, as printed, the weight chain's factor before the input."""
    network = PAGES[name].network
    top = network.depth
    text = render(Page(network), "en", fmt)
    weight, delta = partial(LOSS, entry("W", top, 1, 1)), entry("delta", top, 1)
    through_weight, through_delta = _third_side(text, weight, fmt), _third_side(text, delta, fmt)
    assert through_weight and through_delta, "the output layer's chains are not there"
    input_ = entry("a", top - 1, 1)
    times = " · " if fmt == "text" else r" \cdot "
    shared = boxed(M(through_delta, through_delta))
    assert through_weight == (shared.text if fmt == "text" else shared.latex) + times + (
        input_.text if fmt == "text" else input_.latex
    )


def _printed(text: str, name: str) -> str:
    """The right side of the last ``name = …`` line: the Numbers section comes last."""
    return [line for line in text.splitlines() if line.startswith(f"  {name} = ")][-1].split(" = ", 1)[1]


def _read_matrix(printed: str) -> torch.Tensor:
    """[a, b; c, d] (rows) or [a, b]ᵀ (a column) as the text page prints numbers, back as a tensor."""
    column = printed.endswith("ᵀ")
    inside = printed.removesuffix("ᵀ").removeprefix("[").removesuffix("]")
    rows = [[read_number(cell.strip()) for cell in row.split(",")] for row in inside.split(";")]
    matrix = torch.tensor(rows, dtype=torch.float64)
    return matrix.T if column else matrix


@pytest.mark.parametrize("name", [n for n, p in PAGES.items() if p.values is not None])
def test_the_numbers_are_those_of_an_independent_torch_model(name):
    """The page's loss and gradients, read back, are autograd's of a model written from the definitions."""
    page = PAGES[name]
    network = page.network
    text = render(page, "en", "text")
    values = {key: torch.tensor(value, dtype=torch.float64) for key, value in page.values.items()}
    params = {key: values[key].clone().requires_grad_(True) for key in network.parameter_shapes}
    loss = reference_loss(network.activations, network.loss, network.reduction, values["x"], values["y"], params)
    gradients = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    assert read_number(_printed(text, "L")) == pytest.approx(loss.item(), rel=1e-4)
    for key, gradient in gradients.items():
        letter, layer = key[0], int(key[1:])
        shown = _read_matrix(_printed(text, partial(LOSS, vector(letter, layer)).text))
        torch.testing.assert_close(shown, gradient, rtol=1e-4, atol=1e-8)
