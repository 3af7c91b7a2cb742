"""The rules as data: one table of activations, one table of losses.

Every other module reads these tables; nothing else knows what "tanh" or "bce" means. The derivative of
each activation is written through the layer's output a = f(z) where that is simpler and stabler
(σ(1 − σ), 1 − tanh²); ``tests/test_rules.py`` checks each entry against ``sympy.diff`` of its definition.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy
from sympy import KroneckerDelta

from ._functions import ActivationBackwardBase, backward_function, relu, sigmoid, softmax, softplus, step, unit_sum


@dataclass(frozen=True)
class Activation:
    """One activation function and everything chainrule needs to know about it."""

    name: str
    latex: str
    torch_module: str  # the torch.nn class that computes it (from_torch / to_torch)
    function: Callable[[sympy.Expr], sympy.Expr] | None  # f(z), element-wise; None for softmax
    derivative: Callable[[sympy.Expr, sympy.Expr], sympy.Expr] | None  # f'(z) through (z, a = f(z))
    last_layer_only: bool = False

    @property
    def elementwise(self) -> bool:
        return self.function is not None

    def outputs(self, z: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        """The layer outputs a_i for pre-activations z (a whole layer, so softmax fits too)."""
        if self.function is not None:
            return [self.function(zi) for zi in z]
        exps = [sympy.exp(zi) for zi in z]
        total = sympy.Add(*exps)
        return [e / total for e in exps]

    def jacobian(self, z: Sequence[sympy.Expr], a: Sequence[sympy.Expr], k: int, i: int) -> sympy.Expr:
        """∂a_k/∂z_i, written through the outputs a."""
        if self.derivative is not None:
            return KroneckerDelta(k, i) * self.derivative(z[i], a[i])
        # softmax: ∂(e^{z_k}/Σ e^{z_m})/∂z_i = a_k (δ_ki − a_i)
        return a[k] * (KroneckerDelta(k, i) - a[i])

    def matrix_forward(self, z: sympy.Symbol) -> sympy.Expr:
        """a = f(z) in the matrix program, where z stands for a whole [units, batch] matrix."""
        return self.function(z) if self.function is not None else softmax(z)

    @functools.cached_property
    def backward(self) -> type[ActivationBackwardBase] | None:
        """``backward(g, z, a)`` = g ⊙ f'(z), kept whole (element-wise activations only)."""
        if self.derivative is None:
            return None
        return backward_function(self.name, self.latex, self.derivative)

    def matrix_backward(self, z: sympy.Symbol, a: sympy.Symbol, upstream: sympy.Expr) -> sympy.Expr:
        """(∂a/∂z)ᵀ g at matrix level: the same Jacobian as ``jacobian``, contracted with g."""
        if self.derivative is not None:
            local = self.derivative(z, a)
            return upstream * local if local.is_Number else self.backward(upstream, z, a)
        # Σ_k g_k a_k (δ_ki − a_i) = a_i g_i − a_i Σ_k a_k g_k
        return a * upstream - a * unit_sum(a * upstream)


ACTIVATIONS: dict[str, Activation] = {
    activation.name: activation
    for activation in (
        Activation("sigmoid", r"\sigma", "Sigmoid", sigmoid, lambda z, a: a * (1 - a)),
        Activation("tanh", r"\tanh", "Tanh", sympy.tanh, lambda z, a: 1 - a**2),
        Activation("relu", r"\operatorname{relu}", "ReLU", relu, lambda z, a: step(z)),
        Activation("softplus", r"\operatorname{softplus}", "Softplus", softplus, lambda z, a: sigmoid(z)),
        Activation("identity", r"\operatorname{id}", "Identity", lambda z: z, lambda z, a: sympy.S.One),
        Activation("softmax", r"\operatorname{softmax}", "Softmax", None, None, last_layer_only=True),
    )
}


@dataclass(frozen=True)
class Loss:
    """A per-sample loss Σ_k φ(ŷ_k, y_k); the batch loss sums it over the samples (columns)."""

    name: str
    description: str
    per_unit: Callable[[sympy.Expr, sympy.Expr, int], sympy.Expr]  # φ(ŷ_k, y_k) for n output units
    output_activations: frozenset[str] | None = None  # last-layer activations it makes sense with

    def per_sample(self, predictions: Sequence[sympy.Expr], targets: Sequence[sympy.Expr]) -> sympy.Expr:
        n = len(predictions)
        return sympy.Add(*(self.per_unit(p, t, n) for p, t in zip(predictions, targets)))


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("half_sse", "½ Σ (ŷ − y)², the tutorial's code", lambda p, t, n: (p - t) ** 2 / 2),
        Loss("sse", "Σ (ŷ − y)², the tutorial's figure", lambda p, t, n: (p - t) ** 2),
        Loss("mse", "mean over the output units of (ŷ − y)²", lambda p, t, n: (p - t) ** 2 / n),
        Loss(
            "bce",
            "−Σ [y log ŷ + (1 − y) log(1 − ŷ)]",
            lambda p, t, n: -(t * sympy.log(p) + (1 - t) * sympy.log(1 - p)),
            output_activations=frozenset({"sigmoid", "softmax"}),
        ),
        Loss(
            "cross_entropy",
            "−Σ y log ŷ",
            lambda p, t, n: -t * sympy.log(p),
            output_activations=frozenset({"softmax"}),
        ),
    )
}
