"""The gradients as float32 arithmetic gives them: the matrix program run in NumPy float32, step by step.

What ``loss.backward()`` prints for a float32 model is these numbers (the same steps, each rounded to float32;
tests/test_float32.py compares them with torch's autograd). The page sets them beside the exact values, so that
a reader who runs the model in PyTorch sees where the last digits part, and why. NumPy, not torch: symbolic/
never imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import sympy

from ._derivation import Derivation
from ._functions import (
    ActivationBackwardBase,
    DefinedFunctionBase,
    batch_size,
    batch_sum,
    matmul,
    transpose,
    unit_sum,
)

FLOAT = np.float32
_ELEMENTARY = {sympy.exp: np.exp, sympy.log: np.log, sympy.tanh: np.tanh, sympy.sqrt: np.sqrt}
_erf = np.vectorize(math.erf, otypes=[FLOAT])  # NumPy has no erf (gelu)


def _evaluate(expression: sympy.Expr, env: Mapping[sympy.Basic, np.ndarray]) -> np.ndarray:
    """One matrix program expression, every operation in float32 (``*`` element-wise, as the program means)."""

    def go(e):
        if e in env:
            return env[e]
        if e.is_Number:
            return FLOAT(float(e))
        if isinstance(e, matmul):
            return go(e.args[0]) @ go(e.args[1])
        if isinstance(e, transpose):
            return go(e.args[0]).T
        if isinstance(e, batch_sum):
            return go(e.args[0]).sum(axis=1, keepdims=True, dtype=FLOAT)
        if isinstance(e, unit_sum):
            return go(e.args[0]).sum(axis=0, keepdims=True, dtype=FLOAT)
        if isinstance(e, batch_size):
            return FLOAT(go(e.args[0]).shape[1])
        if isinstance(e, ActivationBackwardBase):  # g ⊙ f'(z), f' from the activation's table
            upstream, z, a = e.args
            return go(upstream) * go(e.derivative(z, a))
        if isinstance(e, DefinedFunctionBase):
            return go(type(e).expanded(e.args[0]))
        if isinstance(e, sympy.Add):
            total = go(e.args[0])
            for term in e.args[1:]:
                total = total + go(term)
            return total
        if isinstance(e, sympy.Mul):
            product = go(e.args[0])
            for factor in e.args[1:]:
                product = product * go(factor)
            return product
        if isinstance(e, sympy.Pow):
            base, exponent = go(e.args[0]), e.args[1]
            if exponent == -1:
                return FLOAT(1) / base
            return np.power(base, FLOAT(float(exponent)))
        if type(e) in _ELEMENTARY:
            return _ELEMENTARY[type(e)](go(e.args[0])).astype(FLOAT)
        if isinstance(e, sympy.erf):
            return _erf(go(e.args[0]))
        raise NotImplementedError(f"no float32 evaluation of {type(e).__name__}")

    return np.asarray(go(expression), dtype=FLOAT)


def float32_gradients(derivation: Derivation, values: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Every parameter's gradient (and the loss, under "loss") as float32 arithmetic computes it."""
    program = derivation.matrix_program
    env: dict[sympy.Basic, np.ndarray] = {}
    for symbol in program.inputs:
        array = np.asarray(values[symbol.name], dtype=FLOAT)
        env[symbol] = array.reshape(-1, 1) if array.ndim == 1 else array
    for step in program.steps:
        env[step.target] = _evaluate(step.expression, env)
    result = {name: env[target] for name, target in program.gradients.items()}
    result["loss"] = env[program.loss]
    return result
