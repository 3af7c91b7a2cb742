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

from ._functions import (
    ActivationBackwardBase,
    backward_function,
    logsumexp,
    relu,
    sigmoid,
    softmax,
    softplus,
    step,
    unit_logsumexp,
    unit_sum,
)


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
    """A per-sample loss Σ_k φ(ŷ_k, y_k); the batch loss sums it over the samples (columns), or averages
    it with ``Network(reduction="mean")``.

    A loss that couples the units (softmax cross-entropy's log-sum-exp) gives ``coupled`` instead of
    ``per_unit``: its per-sample loss and its gradient ∂ℓ/∂ŷ, element-wise and at matrix level.
    """

    name: str
    description: str
    per_unit: Callable[[sympy.Expr, sympy.Expr, int], sympy.Expr] | None  # φ(ŷ_k, y_k) for n output units
    output_activations: frozenset[str] | None = None  # last-layer activations it makes sense with
    targets: str = "real"  # what y holds: "real" numbers, "probability" per unit, or "distribution" per sample
    coupled: CoupledLoss | None = None

    def per_sample(self, predictions: Sequence[sympy.Expr], targets: Sequence[sympy.Expr]) -> sympy.Expr:
        if self.coupled is not None:
            return self.coupled.per_sample(list(predictions), list(targets))
        n = len(predictions)
        return sympy.Add(*(self.per_unit(p, t, n) for p, t in zip(predictions, targets)))

    def matrix_per_sample(self, output: sympy.Symbol, target: sympy.Symbol, n: int) -> sympy.Expr:
        """ℓ for every sample at once, a 1 x B row (``output`` and ``target`` stand for [n, B] matrices)."""
        if self.coupled is not None:
            return self.coupled.matrix_per_sample(output, target)
        return unit_sum(self.per_unit(output, target, n))

    def matrix_gradient(self, output: sympy.Symbol, target: sympy.Symbol, n: int) -> sympy.Expr:
        """∂ℓ/∂ŷ at matrix level, element-wise in the [n, B] matrices."""
        if self.coupled is not None:
            return self.coupled.matrix_gradient(output, target)
        # a sum of per-unit terms: differentiate one; factor_terms keeps 2(a - y)/n one product, not two
        return sympy.factor_terms(sympy.diff(self.per_unit(output, target, n), output))


@dataclass(frozen=True)
class CoupledLoss:
    per_sample: Callable[[list[sympy.Expr], list[sympy.Expr]], sympy.Expr]
    matrix_per_sample: Callable[[sympy.Symbol, sympy.Symbol], sympy.Expr]
    matrix_gradient: Callable[[sympy.Symbol, sympy.Symbol], sympy.Expr]
    # ∂ℓ/∂ŷ_i for one unit, collected as the matrix form writes it (sympy.diff leaves one term per unit)
    gradient: Callable[[list[sympy.Expr], list[sympy.Expr], int], sympy.Expr]


def _bce(p: sympy.Expr, t: sympy.Expr) -> sympy.Expr:
    return -(t * sympy.log(p) + (1 - t) * sympy.log(1 - p))


def _bce_with_logits(z: sympy.Expr, t: sympy.Expr) -> sympy.Expr:
    # −[t log σ(z) + (1 − t) log(1 − σ(z))] = softplus(z) − t z, finite for every z (softplus = log(1 + e^z))
    return softplus(z) - t * z


# −Σ_k y_k log softmax(z)_k = Σ_k y_k (logsumexp(z) − z_k): nn.CrossEntropyLoss on logits, finite
_SOFTMAX_CROSS_ENTROPY = CoupledLoss(
    per_sample=lambda z, y: sympy.Add(*(t * (logsumexp(*z) - p) for p, t in zip(z, y))),
    matrix_per_sample=lambda z, y: unit_sum(y) * unit_logsumexp(z) - unit_sum(y * z),
    matrix_gradient=lambda z, y: softmax(z) * unit_sum(y) - y,  # ∂/∂z_i: softmax_i Σ_k y_k − y_i
    gradient=lambda z, y, i: sympy.exp(z[i] - logsumexp(*z)) * sympy.Add(*y) - y[i],
)

_LOGITS = frozenset({"identity"})

LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        Loss("half_sse", "½ Σ (ŷ − y)², the tutorial's code", lambda p, t, n: (p - t) ** 2 / 2),
        Loss("sse", "Σ (ŷ − y)², the tutorial's figure", lambda p, t, n: (p - t) ** 2),
        Loss("mse", "mean over the output units of (ŷ − y)²", lambda p, t, n: (p - t) ** 2 / n),
        Loss(
            "bce",
            "−Σ [y log ŷ + (1 − y) log(1 − ŷ)]",
            lambda p, t, n: _bce(p, t),
            output_activations=frozenset({"sigmoid", "softmax"}),
            targets="probability",
        ),
        Loss(
            "mean_bce",
            "mean over the output units of −[y log ŷ + (1 − y) log(1 − ŷ)] (nn.BCELoss's mean)",
            lambda p, t, n: _bce(p, t) / n,
            output_activations=frozenset({"sigmoid", "softmax"}),
            targets="probability",
        ),
        Loss(
            "cross_entropy",
            "−Σ y log ŷ",
            lambda p, t, n: -t * sympy.log(p),
            output_activations=frozenset({"softmax"}),
            targets="distribution",
        ),
        Loss(
            "softmax_cross_entropy",
            "−Σ y log softmax(z) on the logits z, as Σ_k y_k (logsumexp(z) − z_k) (nn.CrossEntropyLoss)",
            None,
            output_activations=_LOGITS,
            targets="distribution",
            coupled=_SOFTMAX_CROSS_ENTROPY,
        ),
        Loss(
            "bce_with_logits",
            "Σ [softplus(z) − y z] = −Σ [y log σ(z) + (1 − y) log(1 − σ(z))] on the logits z (nn.BCEWithLogitsLoss)",
            lambda p, t, n: _bce_with_logits(p, t),
            output_activations=_LOGITS,
            targets="probability",
        ),
        Loss(
            "mean_bce_with_logits",
            "mean over the output units of softplus(z) − y z (nn.BCEWithLogitsLoss's mean)",
            lambda p, t, n: _bce_with_logits(p, t) / n,
            output_activations=_LOGITS,
            targets="probability",
        ),
    )
}
