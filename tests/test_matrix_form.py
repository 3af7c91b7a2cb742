"""The matrix program equals the element-wise derivation, symbolically.

``explicit`` runs the matrix program on SymPy matrices whose entries are the element-wise derivation's
own symbols (x[1], W1[1,2], ...), so every matrix it produces is an explicit closed form; each gradient
must then equal the element-wise closed form entry by entry.
"""

from __future__ import annotations

import pytest
import sympy

from symbolic import (
    TUTORIAL,
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
    env = {symbol: derivation.symbols[symbol.name] for symbol in program.inputs}
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


def _equal(difference):
    # logsumexp is opaque to simplify: written out with log and exp it cancels against softmax
    return sympy.expand(difference) == 0 or sympy.simplify(difference.rewrite(sympy.log)) == 0


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_matrix_program_equals_elementwise_derivation(network):
    derivation = derive(network)
    env = run_explicit(derivation)
    program = derivation.matrix_program
    for name, target in program.gradients.items():
        matrix_form = env[target].doit()  # fused local steps g ⊙ f'(z) written out as products
        elementwise = derivation.gradients[name]
        assert matrix_form.shape == elementwise.shape
        for i in range(matrix_form.rows):
            for j in range(matrix_form.cols):
                difference = matrix_form[i, j] - elementwise[i, j]
                assert _equal(difference), (name, i, j)
    loss = env[program.loss][0, 0]
    assert _equal(loss - derivation.loss)


def test_the_proof_can_fail():
    """A matrix program with a wrong rule is caught: drop the activation's derivative in layer 1."""
    derivation = derive(TUTORIAL)
    env = run_explicit(derivation)
    delta1 = next(s for s in derivation.matrix_program.steps if s.target.name == "delta1")
    wrong = explicit(matmul(transpose(sympy.Symbol("W2", real=True)), sympy.Symbol("delta2", real=True)), env)
    right = env[delta1.target].doit()
    assert sympy.simplify(wrong[0, 0] - right[0, 0]) != 0


def test_matrix_program_is_linear_in_depth():
    shallow = derive(Network([4] * 5, "tanh")).matrix_program
    deep = derive(Network([4] * 17, "tanh")).matrix_program
    assert len(deep.steps) - 1 == 4 * (len(shallow.steps) - 1)  # z, a, δ, gradient per layer
