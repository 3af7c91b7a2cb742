"""The matrix program equals the element-wise derivation, symbolically.

``explicit`` runs the matrix program on SymPy matrices whose entries are the element-wise derivation's
own symbols (x[1], W1[1,2], ...), so every matrix it produces is an explicit closed form; each gradient
must then equal the element-wise closed form entry by entry.
"""

from __future__ import annotations

import random
import time

import pytest
import sympy

from symbolic import (
    TUTORIAL,
    MatrixStep,
    Network,
    batch_size,
    batch_sum,
    derive,
    matmul,
    softmax,
    transpose,
    unit_logsumexp,
    unit_sum,
)
from symbolic._functions import logsumexp
from symbolic._matrix import Role


def _broadcast(values, shape):
    if not isinstance(values, sympy.MatrixBase):
        return sympy.Matrix(*shape, lambda i, j: values)
    rows = values.rows if values.rows == shape[0] else None
    cols = values.cols if values.cols == shape[1] else None
    return sympy.Matrix(*shape, lambda i, j: values[i if rows else 0, j if cols else 0])


def explicit(expression, env):
    """Evaluate a matrix-program expression on explicit SymPy matrices."""
    if expression in env:
        return env[expression]
    if expression.is_Number or isinstance(expression, batch_size):  # B stays B on both sides
        return expression
    args = [explicit(argument, env) for argument in expression.args]
    if isinstance(expression, matmul):
        return args[0] * args[1]
    if isinstance(expression, transpose):
        return args[0].T
    if isinstance(expression, unit_sum):
        return sympy.ones(1, args[0].rows) * args[0]
    if isinstance(expression, batch_sum):
        return args[0] * sympy.ones(args[0].cols, 1)
    if isinstance(expression, unit_logsumexp):
        return sympy.Matrix(1, args[0].cols, lambda i, j: logsumexp(*args[0][:, j]))
    if isinstance(expression, softmax):
        exps = args[0].applyfunc(sympy.exp)
        return sympy.Matrix(*exps.shape, lambda i, j: exps[i, j] / sum(exps[:, j]))
    # element-wise, broadcasting rows and columns of size 1 like torch
    shapes = [a.shape for a in args if isinstance(a, sympy.MatrixBase)]
    if not shapes:  # a scalar such as 1/B
        return expression.func(*args)
    shape = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    full = [_broadcast(a, shape) for a in args]
    return sympy.Matrix(*shape, lambda i, j: expression.func(*(a[i, j] for a in full)))


def run_explicit(derivation):
    program = derivation.matrix_program
    env = {symbol: derivation.symbols[symbol.name].as_matrix() for symbol in program.inputs}
    for step in program.steps:
        env[step.target] = explicit(step.expression, env)
    return env


NETWORKS = [
    TUTORIAL,
    Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True),
    Network([2, 3, 3, 1], ["relu", "softplus", "sigmoid"], "bce"),
    Network([2, 2, 3], "identity", "mse", bias=True),
    Network([2, 3, 2], ["sigmoid", "tanh"], "sse"),
    Network([2, 2, 3], ["tanh", "identity"], "softmax_cross_entropy", bias=True, reduction="mean"),
    Network([2, 2, 2], ["sigmoid", "identity"], "bce_with_logits"),
    Network([2, 2, 2], ["tanh", "identity"], "mean_bce_with_logits", reduction="mean"),
    Network([2, 2, 2], ["tanh", "sigmoid"], "mean_bce", reduction="mean"),
    Network([2, 2], "tanh", "mse", reduction="mean"),
]


def _numerically_equal(left: sympy.Expr, right: sympy.Expr, seed: int) -> bool:
    """The two sides at a random rational point (B = 3), each to 30 digits: a fraction of a second, where
    simplify of a difference that is not zero can run for many minutes before it gives up. (Each side on its
    own: evalf of a difference that is exactly zero raises its precision again and again to find a digit.)"""
    rng = random.Random(seed)
    point = {
        symbol: sympy.Rational(rng.choice((-1, 1)) * rng.randint(1, 9), rng.randint(2, 7))
        for symbol in sorted(left.free_symbols | right.free_symbols, key=str)
    }
    point.update({b: sympy.Integer(3) for b in left.atoms(batch_size) | right.atoms(batch_size)})
    a, b = (side.xreplace(point).evalf(30) for side in (left, right))
    return a.is_Number and b.is_Number and abs(a - b) <= 1e-20 * max(1, abs(a))


def _equal(left, right):
    # first at two random points, so that a wrong program fails in seconds; then the proof, for every point
    if not all(_numerically_equal(left, right, seed) for seed in (0, 1)):
        return False
    difference = left - right
    # logsumexp is opaque to simplify: written out with log and exp it cancels against softmax
    return sympy.expand(difference) == 0 or sympy.simplify(difference.rewrite(sympy.log)) == 0


def _first_difference(derivation, env) -> tuple[str, int, int] | None:
    """The first gradient entry (name, i, j) where the explicit matrix program and the element-wise derivation
    differ, or ("loss", 0, 0); None when every one is proved equal."""
    program = derivation.matrix_program
    for name, target in program.gradients.items():
        matrix_form = env[target].doit()  # fused local steps g ⊙ f'(z) written out as products
        elementwise = derivation.gradients[name]
        assert matrix_form.shape == elementwise.shape
        for i in range(matrix_form.rows):
            for j in range(matrix_form.cols):
                if not _equal(matrix_form[i, j], elementwise[i, j]):
                    return name, i, j
    if not _equal(env[program.loss][0, 0], derivation.loss):
        return "loss", 0, 0
    return None


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_matrix_program_equals_elementwise_derivation(network):
    derivation = derive(network)
    assert _first_difference(derivation, run_explicit(derivation)) is None


@pytest.mark.parametrize(
    "network",
    [TUTORIAL, Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True)],
    ids=lambda n: n.describe(),
)
def test_the_proof_can_fail_and_fails_in_seconds(network):
    """A matrix program with a wrong rule is caught, quickly: layer 1's δ without its activation's derivative."""
    derivation = derive(network)
    program = derivation.matrix_program
    delta1, delta2 = program.step(Role.DELTA, 1), program.step(Role.DELTA, 2)
    weight = program.inputs[2 + network.bias + 1]  # W2 (after x, y, W1 and b1 when there are biases)
    assert weight.name == "W2"
    wrong = MatrixStep(delta1.target, matmul(transpose(weight), delta2.target), delta1.role, delta1.layer)
    steps = tuple(wrong if step is delta1 else step for step in program.steps)
    env = {symbol: derivation.symbols[symbol.name].as_matrix() for symbol in program.inputs}
    for step in steps:
        env[step.target] = explicit(step.expression, env)
    start = time.perf_counter()
    assert _first_difference(derivation, env) == ("W1", 0, 0)
    assert time.perf_counter() - start < 30


def test_matrix_program_is_linear_in_depth():
    shallow = derive(Network([4] * 5, "tanh")).matrix_program
    deep = derive(Network([4] * 17, "tanh")).matrix_program
    assert len(deep.steps) - 1 == 4 * (len(shallow.steps) - 1)  # z, a, δ, gradient per layer
