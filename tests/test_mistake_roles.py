"""check_backward plants its mistakes by what a step holds (its role and layer), never by the step's name.

The matrix program's targets are renamed here (z1 → q1, delta2 → q…): the catalogue must plant every mistake in
the same step as before, so that renaming a step in symbolic/_matrix.py can neither turn the diagnoses into
``unknown`` nor plant a mistake in the wrong place unseen.
"""

from __future__ import annotations

import itertools

import pytest
import sympy

from numeric._check_backward import _variants
from symbolic import MatrixProgram, MatrixStep, Network, derive
from symbolic._matrix import Role

NETWORKS = [
    Network([3, 3, 3, 2], ["tanh", "sigmoid", "sigmoid"], "bce", bias=True),  # every catalogued mistake
    Network([3, 3, 4], ["relu", "softmax"], "bce", reduction="mean", bias=True),  # the stable δ's named parts
]


def _renamed(program: MatrixProgram) -> tuple[MatrixProgram, dict[sympy.Symbol, sympy.Symbol]]:
    """The program with every step's target given a meaningless name (q0, q1, ...), and the renaming."""
    names = (sympy.Symbol(f"q{i}", real=True) for i in itertools.count())
    renaming = {step.target: next(names) for step in program.steps}
    steps = tuple(
        MatrixStep(renaming[s.target], s.expression.xreplace(renaming), s.role, s.layer) for s in program.steps
    )
    gradients = {name: renaming[target] for name, target in program.gradients.items()}
    return MatrixProgram(program.inputs, steps, renaming[program.loss], gradients), renaming


@pytest.mark.parametrize("network", NETWORKS, ids=lambda n: n.describe())
def test_mistakes_are_planted_by_role_whatever_the_steps_are_named(network):
    program = derive(network).matrix_program
    renamed, renaming = _renamed(program)
    original, planted = _variants(network, program), _variants(network, renamed)
    assert [v.name for v in planted] == [v.name for v in original]
    for before, after in zip(original, planted):
        expected = tuple(s.expression.xreplace(renaming) for s in before.steps)
        assert tuple(s.expression for s in after.steps) == expected, before.name
        changed = [s for s, right in zip(after.steps, renamed.steps) if s.expression != right.expression]
        assert len(changed) == 1, before.name  # each variant is one mistake, in one step


def test_a_role_the_program_lacks_is_an_error_not_a_silent_no_op():
    program = derive(Network([2, 3, 2], "tanh", "half_sse")).matrix_program  # no bias: no ∂L/∂b step
    with pytest.raises(LookupError, match="GRAD_B"):
        program.step(Role.GRAD_B, 1)
    assert program.step(Role.DELTA, 2).target.name == "delta2"
