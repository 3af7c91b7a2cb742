"""The Chinese pages and reports read as Chinese to a student who learns backpropagation from them.

Checked over everything chainrule says in Chinese: the derivation rendered as text, Markdown and LaTeX for
networks that between them reach every sentence of the page (a hidden layer, the general layer-𝑙 step, softmax,
a coupled loss, bias, the mean, the input's gradient, numbers shown and numbers skipped), and the reports of
verify, check and the tutorial command:

- the layer before and the layer after are 前一层 (closer to the input) and 后一层 (closer to the output);
  上一层 / 下一层 read backwards to a Chinese reader, whose network is drawn from the input at the top;
- no ASCII , . : ; ( ) touches a Chinese character: Chinese prose takes full-width ，。：；（）, and a list in
  words the enumeration comma 、 (第 1、2 层); the mathematics keeps its own punctuation;
- the backward pass has its 反向传播 heading, as the forward pass has its 正向传播;
- a letter of mathematics in a sentence (layer 𝑙, unit 𝑖) is math italic, never an upright l next to 第 1 层.
"""

from __future__ import annotations

import re

import pytest
from test_check_backward import NETWORK, student

from numeric import MISTAKES, check_backward, verify
from numeric.cli import main
from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive, sample_values
from symbolic._blocks import Chain, Frame, Heading, Math, Notation, Prose
from symbolic._figure import network_figure
from symbolic._render import explain
from symbolic._words import CHINESE

CJK = "[\u4e00-\u9fff]"  # the ideographs, not the full-width punctuation, which may touch anything
# ASCII punctuation touching a Chinese character (spaces between them count as touching for , . : ;), or a list
# of numbers with ASCII commas right after Chinese words (第 1, 2 层; not a thousands separator, 10,302). A
# parenthesis closing a formula before a space, "f'(z2) 没有", is the formula's own.
ASCII_BESIDE_CJK = re.compile(rf"{CJK} *[,.:;]|[,.:;] *{CJK}|{CJK}[()]|[()]{CJK}|{CJK} *\d+(?:, +\d+)+")
BACKWARDS = ("上一层", "下一层")
# an ASCII letter standing alone in words: a letter of mathematics set upright (identifiers are longer)
LONE_LETTER = re.compile(r"(?<![A-Za-z0-9_'.\\])[A-Za-z](?![A-Za-z0-9_'(])")
MATH_ITALIC = re.compile("[\U0001d400-\U0001d7ff]")  # Unicode's mathematical letters (𝑙, 𝐿, 𝟏)

NETWORKS = [
    TUTORIAL,
    Network([4, 5, 3], ["relu", "softmax"], "cross_entropy"),
    Network([3, 4, 4, 2], ["tanh", "gelu", "sigmoid"], "half_sse", bias=True, reduction="mean"),
    Network([2, 3, 3, 3, 3, 1], "tanh", "half_sse", bias=True),  # the general layer-𝑙 step
    Network([3, 4, 3], ["tanh", "identity"], "softmax_cross_entropy", bias=True),  # a loss coupling its units
    Network([100, 101, 2], "relu", "half_sse"),  # over the page's limit: the numbers are not shown
]


def _values(network: Network):
    return TUTORIAL_VALUES if network == TUTORIAL else sample_values(network, 0)


def _derivation(network: Network):
    return derive(network, wrt=("x",) if network.depth <= 3 else ())


@pytest.fixture(scope="module")
def pages() -> list[tuple[Network, str, str]]:
    """(network, format, the Chinese page) for every network and format."""
    rendered = []
    for network in NETWORKS:
        derivation, values = _derivation(network), _values(network)
        rendered += [
            (network, "text", derivation.text(values=values, lang="zh")),
            (network, "markdown", str(derivation.markdown(values=values, lang="zh"))),
            (network, "latex", derivation.latex(document=True, values=values, lang="zh")),
        ]
    return rendered


@pytest.fixture(scope="module")
def reports() -> list[str]:
    """verify's reports (passes, skips, samples, the input's gradient) and check's (right, every mistake)."""
    wide = Network([30, 40, 20], "relu", "half_sse", bias=True)
    said = [
        verify(derive(TUTORIAL), progress=False).text(lang="zh"),
        verify(derive(Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True), wrt=("x",))).text("zh"),
        verify(derive(wide, wrt=("x",)), batch=2, progress=False).text(lang="zh"),
        verify(derive(Network([2, 3, 1], "sigmoid", "bce", reduction="mean")), gradcheck="off").text(lang="zh"),
    ]
    for reduction in ("sum", "mean"):
        network = Network(NETWORK.sizes, NETWORK.activations, NETWORK.loss, bias=True, reduction=reduction)
        for mistake in (None, *MISTAKES):
            planted = lambda x, y, p, m=mistake, mean=reduction == "mean": student(x, y, p, m, mean=mean)  # noqa: E731
            said.append(check_backward(planted, network).text(lang="zh"))
    return said


def _words_of(network: Network) -> list[str]:
    """What the Chinese page says in words, without its mathematics: headings, prose, the notation's meanings, the
    figure's caption."""
    derivation, values = _derivation(network), _values(network)
    said = [network_figure(derivation, values, "zh").caption]
    for block in explain(derivation, values, lang="zh"):
        if isinstance(block, Heading):
            said.append(block.text)
        elif isinstance(block, Frame):
            said.append(block.title)
        elif isinstance(block, Prose):
            said += [part for part in block.parts if isinstance(part, str)]  # not its Math, not its Shapes
        elif isinstance(block, Notation):
            said += [*block.header, *(meaning for _, _, meaning in block.rows)]
    return said


# --- the checks can fail --------------------------------------------------------------------------------------


def test_the_punctuation_check_catches_ascii_in_chinese_and_spares_mathematics():
    for wrong in ("激活函数 sigmoid（第 1, 2 层）", "half_sse, 带偏置", "误差项: δ", "损失函数(L)", "输入,长度"):
        assert ASCII_BESIDE_CJK.search(wrong), wrong
    for right in (
        "ℓ(ŷ, y) = (ŷ − y)²/2；一批",
        "各层大小 [1, 2, 2]。",
        "导数 f'(z2) 没有",
        "第 1、2 层",
        "W⁽²⁾[1,1] 为例",
        "共有 10,302 个",
    ):
        assert not ASCII_BESIDE_CJK.search(right), right


def test_the_letter_check_catches_an_upright_letter_and_spares_names():
    for wrong in ("第 l 层的权重", "第 i 行", "损失 L 对"):
        assert LONE_LETTER.search(wrong), wrong
    for right in ("第 𝑙 层的权重", "SymPy 用 sympy.diff", "激活函数 sigmoid", "reduction='mean'"):
        assert not LONE_LETTER.search(right), right


# --- the words ------------------------------------------------------------------------------------------------


def test_no_layer_is_above_or_below(pages, reports):
    """前一层 / 后一层 everywhere: in the table, on every page in every format, in every report."""
    for text in [*CHINESE.values(), *(page for _, _, page in pages), *reports]:
        for word in BACKWARDS:
            assert word not in text, (word, text)


def _collects(block) -> bool:
    """The hidden layer's sentence that says its error collects the next layer's (by its key's own words)."""
    said = "".join(part for part in getattr(block, "parts", ()) if isinstance(part, str))
    return isinstance(block, Prose) and ("收集" in said)


@pytest.mark.parametrize("network", NETWORKS[:4], ids=lambda n: n.describe())
def test_the_layer_before_and_after_are_the_ones_the_mathematics_uses(network):
    """The notation says W's columns are the units of 前一层, whose output W multiplies (z⁽ˡ⁾ = W⁽ˡ⁾ a⁽ˡ⁻¹⁾); a hidden
    layer's step says its error collects that of 后一层, whose W⁽ˡ⁺¹⁾ it names (δ⁽ˡ⁾ = (W⁽ˡ⁺¹⁾ᵀ δ⁽ˡ⁺¹⁾) ⊙ f')."""
    blocks = explain(_derivation(network), lang="zh")
    notation = next(block for block in blocks if isinstance(block, Notation))
    columns = next(meaning for symbol, _, meaning in notation.rows if symbol.text == "W⁽ˡ⁾")
    assert "前一层" in columns.split("列")[1] and "后一层" not in columns
    for index, block in enumerate(blocks):
        if isinstance(block, Heading) and "隐藏层" in block.text:
            # the activation's derivative may come first; then the sentence that collects, and the recursion
            after = next(n for n in range(index + 1, len(blocks)) if _collects(blocks[n]))
            sentence, recursion = blocks[after], blocks[after + 1]
            assert isinstance(sentence, Prose) and isinstance(recursion, Chain)
            words = "".join(part for part in sentence.parts if not isinstance(part, Math))
            assert "后一层" in words and "前一层" not in words, words
            # the layer the sentence calls 后一层 is the one after: the recursion's W is layer l + 1's
            named = [part.text for part in sentence.parts if isinstance(part, Math)]
            right = recursion.terms[-1].text
            assert any(name in right for name in named) or "ˡ⁺¹" in right, (named, right)
            layer = re.fullmatch(r".*（第 (\d+) 层）", block.text)
            if layer:  # a hidden layer of its own: the W it collects through is the next layer's
                above = str(int(layer.group(1)) + 1).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
                assert f"W⁽{above}⁾" in named, (block.text, named)


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_no_ascii_punctuation_touches_chinese_on_any_page(pages, network):
    for shown, form, page in pages:
        if shown != network:
            continue
        for line in page.splitlines():
            assert not ASCII_BESIDE_CJK.search(line), (form, line)


def test_no_ascii_punctuation_touches_chinese_in_any_report(reports, capsys):
    assert main(["--lang", "zh"]) == 0
    tutorial = capsys.readouterr().out
    for report in [*reports, tutorial]:
        for line in report.splitlines():
            assert not ASCII_BESIDE_CJK.search(line), line


def test_no_ascii_punctuation_touches_chinese_in_the_table():
    """Every sentence, also those no page above reaches (errors, rare report lines)."""
    for key, sentence in CHINESE.items():
        words = re.sub(r"\{\w+\}", "", sentence)
        assert not ASCII_BESIDE_CJK.search(words), (key, sentence)


@pytest.mark.parametrize("network", NETWORKS[:5], ids=lambda n: n.describe())
def test_the_backward_pass_has_its_heading(network, pages):
    """The part after 正向传播 is 反向传播, and every layer's backward step is a section inside it (输出层, 隐藏层),
    as the English page's Backward pass holds its layers; on every page in every format, once."""
    blocks = [block for block in explain(_derivation(network), lang="zh") if isinstance(block, Heading)]
    parts = [block.text for block in blocks if block.level == 2]
    forward = parts.index(CHINESE["heading_forward"])
    assert parts[forward + 1] == CHINESE["heading_backward"] == "反向传播", parts
    assert "反向传播" not in " ".join(parts[: forward + 1])
    start = next(n for n, block in enumerate(blocks) if block.text == CHINESE["heading_backward"])
    inside = [block for block in blocks[start + 1 :] if block.level == 3]
    layers = [block.text for block in inside if block.text != CHINESE["heading_matrix"]]
    assert layers[0].startswith("输出层") and all(text.startswith("隐藏层") for text in layers[1:]), layers
    for shown, form, page in pages:
        if shown == network:
            marked = {
                "text": r"^反向传播\n=+$",
                "markdown": r"^## 反向传播$",
                "latex": r"^\\subsection\*\{反向传播\}$",
            }[form]
            assert len(re.findall(marked, page, re.MULTILINE)) == 1, form


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_letters_of_mathematics_in_words_are_italic(network, pages):
    """No upright letter of mathematics stands in the page's words (第 l 层 reads as 第 1 层); the italic letters
    the words use are math in LaTeX, and none is left for pdflatex's text fonts, which have no such glyph."""
    for text in _words_of(network):
        assert not LONE_LETTER.search(text), text
    for shown, form, page in pages:
        if shown == network and form == "latex":
            assert not MATH_ITALIC.search(page)
            assert "第 $l$ 层" in page and not re.search(r"第 [A-Za-z] 层", page)
        if shown == network and form in ("text", "markdown"):
            assert "第 𝑙 层" in page and not re.search(r"第 [A-Za-z] 层", page)
