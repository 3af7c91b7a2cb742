"""The notation table: only the symbols the page uses, each with its shape at the network's widths, B defined.

tests/test_page_steps.py checks each expected row in every format and language; here, what must not be there
(the tutorial uses neither 𝟏 nor 𝟙[·]), and that a symbol left out of the table is never used below it.
"""

from __future__ import annotations

import pytest

from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive
from symbolic._blocks import Notation
from symbolic._html import render_html
from symbolic._render import explain

ONES, INDICATOR = "𝟏", "𝟙["


def _table_and_rest(network, values=None):
    blocks = explain(derive(network), values)
    (table,) = [b for b in blocks if isinstance(b, Notation)]
    text = derive(network).text(values=values)
    rest = text[text.index("Forward pass") :]
    return [m.text for m, _, _ in table.rows], rest


@pytest.mark.parametrize(
    ("network", "ones", "indicator"),
    [
        (TUTORIAL, False, False),  # the tutorial: no bias, sigmoid only
        (Network([2, 3, 2], ["relu", "sigmoid"], "bce", bias=True), True, True),  # δ𝟏, relu' = 𝟙[z > 0]
        (Network([2, 3, 3], ["tanh", "softmax"], "cross_entropy"), False, True),  # softmax's 𝟙[k = i]
    ],
)
def test_the_table_lists_what_the_page_uses_and_nothing_else(network, ones, indicator):
    symbols, rest = _table_and_rest(network, TUTORIAL_VALUES if network == TUTORIAL else None)
    assert (ONES in symbols) == ones == (ONES in rest)
    assert any(s.startswith(INDICATOR) for s in symbols) == indicator == (INDICATOR in rest)
    assert "B" in symbols and "×B" in rest  # the batch size is defined, and used by the summary's shapes


def test_the_tutorial_s_table_in_every_format_has_no_ones_and_no_indicator():
    derivation = derive(TUTORIAL)
    latex = derivation.latex(values=TUTORIAL_VALUES)
    table = latex[latex.index(r"\begin{tabular}") : latex.index(r"\end{tabular}")]
    assert r"\mathbf{1}" not in table and r"\mathbb{1}" not in table and r"2 \times 1, 2 \times 2" in table
    html = render_html(derivation, TUTORIAL_VALUES)
    table = html[html.index('<table class="cr-notation">') : html.index("</table>")]
    assert "mathbf{1}" not in table and "mathbb{1}" not in table and "2 \\times B, 2 \\times B" in table
