"""What is printed is what was checked: each printed LaTeX side is read back and compared with its tree.

``tests/latex_reader.py`` reads the LaTeX independently of the printers; the comparison gives every
notation its meaning here, independently too (the unit step is 0 at 0, as torch's relu' is; 𝟙[P] is 1
where P holds). Scalars are compared at random points (and at z = 0, where a step's convention shows),
matrix equations by structure (Wᵀδ is not Wδ), numbers to the digits shown.
"""

from __future__ import annotations

import random
import re

import pytest
import sympy
from hypothesis import given

from symbolic import TUTORIAL, TUTORIAL_VALUES, Network, derive, sample_values
from symbolic._blocks import Chain, Math, Prose
from symbolic._elementwise import BATCH_SIZE
from symbolic._functions import relu, sigmoid, softplus, step
from symbolic._printers import Applied, Boxed, Elementwise, Factors, Indicator, Partial, Prime, Scientific, Shown
from symbolic._render import explain
from tests.latex_reader import PartialOf, Reader, indicator
from tests.test_steps import networks

NETWORKS = {
    "tutorial": TUTORIAL,
    "tanh-softmax-ce-bias": Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True),
    "relu-softplus-sigmoid-bce": Network([2, 3, 3, 1], ["relu", "softplus", "sigmoid"], "bce"),
    "deep": Network([2, 2, 2, 2, 2, 1], ["tanh", "relu", "softplus", "tanh", "sigmoid"], "bce", bias=True),
    "wide-softmax": Network([2, 6], "softmax", "cross_entropy"),
    "wide-hidden": Network([6, 5, 2], "identity", "mse", bias=True),
    "logits-ce-mean": Network([2, 3, 3], ["tanh", "identity"], "softmax_cross_entropy", bias=True, reduction="mean"),
    "logits-bce": Network([2, 2, 2], ["sigmoid", "identity"], "bce_with_logits"),
}
SCALAR_FUNCTIONS = {
    r"\sigma": sigmoid,
    r"\tanh": sympy.tanh,
    r"\log": sympy.log,
    "relu": relu,
    "softplus": softplus,
    "erf": sympy.erf,
}


def _functions(derivation):
    """Printed function names -> how to build what they mean (activations by the derivation's own names)."""
    activations = {}
    for layer in derivation.layers:
        printed = re.sub(r"\\[,:;!]|\s", "", layer.activation.latex.replace(r"\operatorname{", "").rstrip("}"))
        activations[printed] = sympy.Symbol(f"activation {layer.activation.name}"), layer.activation

    def make(name):
        def build(prime, *arguments):
            argument = arguments[0]
            matrix = isinstance(argument, sympy.MatrixExpr)
            if name == "f_l":
                return Elementwise(sympy.Symbol("f_l"), argument, prime)
            if name == r"\ell":
                return Applied(sympy.Symbol("ell"), *arguments)
            if name == "logsumexp":  # of a whole layer's vector
                return Applied(sympy.Symbol("logsumexp"), *arguments)
            symbol, activation = activations.get(name, (None, None))
            if matrix:
                return Elementwise(symbol, argument, prime)
            if prime:
                return Prime(symbol, argument)
            if activation is not None and activation.elementwise:
                return activation.function(argument)
            return SCALAR_FUNCTIONS[name](argument)

        return build

    return {name: make(name) for name in {*SCALAR_FUNCTIONS, *activations, r"\ell", "f_l", "logsumexp"}}


def _names(derivation, tree):
    names: dict[str, object] = {}
    for matrix in derivation.symbols.values():
        names.update({s.name: s for s in matrix})
    for layer in derivation.layers:
        for matrix in (layer.z, layer.a, layer.delta):
            names.update({s.name: s for s in matrix})
    for kind in (sympy.Symbol, sympy.MatrixSymbol):  # a whole layer's name is its matrix, not an index base's label
        names.update({atom.name: atom for atom in tree.atoms(kind)})
    names.update({"hat y": sympy.Symbol("y_hat"), r"\ldots": sympy.Symbol("…"), "B": BATCH_SIZE})
    ones = list(tree.atoms(sympy.OneMatrix)) if isinstance(tree, sympy.Basic) else []
    if ones:
        names["ones"] = ones[0]
    return names


def _written_out(total: sympy.Sum) -> sympy.Expr:
    variable, low, high = total.limits[0]
    return sympy.Add(*(total.function.xreplace({variable: v}) for v in range(int(low), int(high) + 1)))


def _meaning(tree, names):
    """The checked tree with each notation given its meaning (written here, not taken from the printers)."""
    if isinstance(tree, sympy.Equality):  # side by side: identity(z) = z must not evaluate to True
        return sympy.Eq(_meaning(tree.lhs, names), _meaning(tree.rhs, names), evaluate=False)
    tree = tree.replace(sympy.Sum, lambda *args: _written_out(sympy.Sum(*args)))
    tree = tree.replace(
        lambda e: isinstance(e, sympy.Indexed) and all(i.is_Integer for i in e.indices),
        lambda e: names[f"{e.base.label}[{','.join(str(i) for i in e.indices)}]"],
    )
    tree = tree.replace(Boxed, lambda content: content)
    tree = tree.replace(Shown, lambda value, *_: value)  # a worked step's number, as rounded
    tree = tree.replace(Factors, lambda *factors: sympy.Mul(*factors))
    tree = tree.replace(Indicator, indicator)
    tree = tree.replace(step, lambda z: sympy.Piecewise((1, z > 0), (0, True)))
    tree = tree.replace(Partial, lambda of, wrt: PartialOf(of, wrt))
    tree = tree.replace(Scientific, lambda mantissa, exponent: mantissa * sympy.Integer(10) ** exponent)
    return tree.replace(
        lambda e: isinstance(e, Applied) and e.args[0].name.startswith("activation"),
        lambda e: _activation_of(e.args[0]).function(e.args[1]),
    )


_ACTIVATIONS: dict[str, object] = {}


def _activation_of(symbol):
    return _ACTIVATIONS[symbol.name]


def _same(read, expected) -> bool:
    if isinstance(expected, sympy.Equality) and sympy.MatrixExpr in (
        type(expected.lhs).__mro__ + type(expected.rhs).__mro__
    ):
        return isinstance(read, tuple) and _same(read[1], expected.lhs) and _same(read[2], expected.rhs)
    if isinstance(expected, sympy.Equality):
        return isinstance(read, sympy.Equality) and _same(read.lhs, expected.lhs) and _same(read.rhs, expected.rhs)
    if isinstance(expected, sympy.MatrixExpr | sympy.MatrixBase):
        if read == expected:
            return True
        numbers = [read, expected]
        if all(isinstance(n, sympy.Transpose) for n in numbers):
            numbers = [n.arg for n in numbers]
        if all(isinstance(n, sympy.MatrixBase) for n in numbers) and numbers[0].shape == numbers[1].shape:
            # numbers are held to the 5 digits they are shown with
            return all(abs(float(a) - float(b)) <= 1e-5 * abs(float(b)) for a, b in zip(*numbers))
        return False
    if isinstance(expected, sympy.Tuple):
        return isinstance(read, sympy.Tuple) and all(_same(a, b) for a, b in zip(read, expected))
    if isinstance(read, sympy.Expr) and read.is_number and expected.is_number:  # a number, to its 5 digits
        return abs(float(read) - float(expected)) <= 1e-5 * abs(float(expected))
    difference = read - expected
    if difference == 0:
        return True
    # each ∂ node stands for itself: the same node on both sides cancels, a different one does not
    difference = difference.xreplace(
        {p: sympy.Symbol(f"∂{n}") for n, p in enumerate(sorted(difference.atoms(PartialOf), key=str))}
    )
    difference = difference.xreplace({BATCH_SIZE: sympy.Integer(3)})  # B of reduction="mean", a batch of 3
    symbols = sorted(difference.free_symbols, key=str)
    rng = random.Random(0)
    points = [{s: sympy.Rational(rng.randint(5, 95), 100) for s in symbols} for _ in range(3)]
    points.append({s: (sympy.S.Zero if s.name == "z" else sympy.Rational(1, 3)) for s in symbols})
    for point in points:
        value = difference.xreplace(point)
        value = value.doit() if hasattr(value, "doit") else value
        value = sympy.simplify(value)
        if value != 0 and not (value.is_number and abs(complex(value.evalf())) < 1e-9):
            return False
    return True


def _printed_math(blocks):
    for block in blocks:
        if isinstance(block, Chain):
            yield from block.terms
        elif isinstance(block, Prose):
            yield from (part for part in block.parts if isinstance(part, Math))


def check_printed(derivation, values=None) -> int:
    """Read every printed side back; return how many were compared."""
    for layer in derivation.layers:
        _ACTIVATIONS[f"activation {layer.activation.name}"] = layer.activation
    functions, compared = _functions(derivation), 0
    for math in _printed_math(explain(derivation, values)):
        if r"\text" in math.latex:  # a sentence inside math (the size of a matrix too large to print)
            continue
        names = _names(derivation, math.tree)
        read, meaning = Reader(math.latex, names, functions).read(), _meaning(math.tree, names)
        assert _same(read, meaning), (math.latex, read, meaning)
        compared += 1
    return compared


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_every_printed_side_reads_back_as_what_was_checked(key):
    network = NETWORKS[key]
    values = TUTORIAL_VALUES if network == TUTORIAL else sample_values(network, seed=0)
    assert check_printed(derive(network), values) > 20


@given(networks())
def test_printed_sides_read_back_for_random_networks(network):
    assert check_printed(derive(network)) > 10
