"""Size, not speed: the derivation stays linear in the network (timings live in benchmarks/)."""

from __future__ import annotations

import pytest
import sympy
from hypothesis import given
from hypothesis import strategies as st

from symbolic import Network, derive, words
from symbolic._elementwise import _symbol_product


@given(st.text("abcxyzW[]0123456789,", min_size=1, max_size=6), st.text("abcxyzW[]0123456789,", min_size=1, max_size=6))
def test_symbol_product_is_sympys_own_product(first, second):
    for assumptions in ({}, {"real": True}):
        u, v = sympy.Symbol(first, **assumptions), sympy.Symbol(second, **assumptions)
        ours, theirs = _symbol_product(u, v), u * v
        assert ours == theirs and ours.args == theirs.args and hash(ours) == hash(theirs)
        assert sympy.srepr(ours) == sympy.srepr(theirs)


def test_symbol_product_falls_back_for_anything_else():
    x = sympy.Symbol("x", real=True)
    y = sympy.Symbol("y")
    assert _symbol_product(x, x) == x**2
    assert _symbol_product(x, y).args == (x * y).args
    assert _symbol_product(x, sympy.Integer(2)) == 2 * x


def test_program_length_is_linear_in_depth():
    shallow = derive(Network([4] * 17, "tanh"))
    deep = derive(Network([4] * 65, "tanh"))
    assert len(deep.program) == 4 * len(shallow.program)


@pytest.mark.parametrize(
    "sizes, activation",
    [([1, 2, 2], "sigmoid"), ([4] * 5, "sigmoid"), ([16] * 4, "tanh"), ([8] * 9, "relu"), ([3, 32, 32, 2], "softplus")],
)
def test_gradient_program_is_at_most_two_and_a_half_forward_passes(sizes, activation):
    counts = derive(Network(sizes, activation)).operation_counts()
    assert 0 < counts["gradient"] <= 2.5 * counts["forward"], counts


def test_naive_closed_form_would_be_far_larger():
    """What the named intermediates avoid: the substituted closed form grows with depth."""
    derivation = derive(Network([3] * 7, "tanh"))
    counts = derivation.operation_counts()
    closed = derivation.closed_form_size("W1")
    assert closed > 20 * (counts["forward"] + counts["gradient"])


@pytest.mark.parametrize("activations, loss", [(["relu", "softmax"], "cross_entropy"), (["tanh", "sigmoid"], "bce")])
def test_deriving_and_rendering_a_wide_network_builds_few_units(activations, loss):
    """Width never costs: a 5000-5000-5000 derivation shows one unit per layer and builds about that many.

    Counted, not timed: the entries of each named matrix that were built (a full build would be 25M weights).
    """
    derivation = derive(Network([5000, 5000, 5000], activations, loss, bias=True))
    texts = [derivation.text(), derivation.latex(), derivation.markdown()]
    assert all("5000" in text for text in texts)
    built = {name: entries.built() for name, entries in derivation.symbols.items()}
    for layer in derivation.layers:
        for field in ("z_definition", "a_definition", "upstream", "delta_chain", "delta_definition"):
            built[f"{field}{layer.index}"] = getattr(layer, field).built()
    # a handful of entries: each shown unit's own symbols (a sum over a layer is written with Σ, never built)
    assert sum(built.values()) <= 50, built
    assert derivation.closed_form_size("W1") > derivation.closed_form_budget  # estimated, not built


def test_the_size_estimate_of_a_wide_layer_equals_the_exact_count(monkeypatch):
    """Above _EXACT_UP_TO a layer's sums are counted from their shape; they must count what building finds."""
    import symbolic._derivation as module

    networks = [
        Network([70, 70, 70], ["tanh", "softmax"], "cross_entropy", bias=True),
        Network([70, 3, 70], ["relu", "sigmoid"], "bce"),
    ]
    estimated = [{name: derive(n).closed_form_size(name) for name in ("loss", "W1", "W2")} for n in networks]
    monkeypatch.setattr(module, "_EXACT_UP_TO", 10**9)
    exact = [{name: derive(n).closed_form_size(name) for name in ("loss", "W1", "W2")} for n in networks]
    assert estimated == exact


def test_a_page_over_the_numbers_limit_says_why_it_shows_no_numbers(monkeypatch):
    """Above NUMBERS_LIMIT parameter entries the page evaluates nothing (SymPy's 20-digit evaluation of
    784-128-10 took 24 s) and says how many there are; below it the numbers are shown."""
    from symbolic import NUMBERS_LIMIT, Derivation, sample_values

    wide = Network([200, 60, 10], ["relu", "softmax"], "cross_entropy", bias=True)
    small = Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True)
    assert wide.parameter_count > NUMBERS_LIMIT >= small.parameter_count * 2
    values = sample_values(wide, seed=1, inputs_only=True)
    full = sample_values(wide, seed=1)
    assert values == {"x": full["x"], "y": full["y"]}  # the same x and y as a full draw
    real_evaluate = Derivation.evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("evaluated above the limit")

    monkeypatch.setattr(Derivation, "evaluate", refuse)
    monkeypatch.setattr(Derivation, "intermediates", refuse)
    for lang in ("en", "zh"):
        text = derive(wide).text(values=values, lang=lang)
        assert f"{wide.parameter_count:,}" in text.split(f"\n{words(lang)['heading_numbers']}\n")[-1]
    monkeypatch.undo()
    assert Derivation.evaluate is real_evaluate
    shown = derive(small).text(values=sample_values(small, seed=1, batch=2))
    assert "Not shown" not in shown and "∂L/∂W⁽¹⁾" in shown.split("Numbers")[-1]
