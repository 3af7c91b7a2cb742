"""The rules as data: one table of activations, one table of losses, each entry its definition only.

An activation is a SymPy expression in z (``_functions.define_function`` makes the opaque function that
stands for it); everything else here follows from ``sympy.diff`` of that definition: the local derivative,
the derivative written through the output a = f(z) where one exists, and the fused local step of the matrix
program. A loss is its per-unit definition φ(ŷ_k, y_k). Users add their own with ``Activation.define`` and
``Loss.define``; nothing else in chainrule knows what "tanh" or "bce" means.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy
from sympy import KroneckerDelta

from ._definitions import (
    check_compilable,
    check_finite_real,
    check_latex,
    check_name,
    is_zero,
    with_max_min_as_piecewise,
)
from ._errors import NetworkError, NetworkTypeError
from ._functions import (
    USER_NAMESPACE,
    ActivationBackwardBase,
    DefinedFunctionBase,
    backward_function,
    define_function,
    elu,
    gelu,
    leaky_relu,
    logsumexp,
    relu,
    sigmoid,
    silu,
    softmax,
    softplus,
    unit_logsumexp,
    unit_sum,
)
from ._index import a as indexed_a
from ._index import as_program, at_unit, layer_facts, softmax_jacobian
from ._index import g as indexed_g
from ._index import i as row
from ._index import k as column
from ._index import y as indexed_y

_Z = sympy.Symbol("z", real=True)
_A = sympy.Symbol("a", real=True)


def _definition_lambda(name: str, definition, arguments: int) -> sympy.Lambda:
    """A user's definition (a callable of SymPy symbols, or a Lambda) as a checked Lambda."""
    if isinstance(definition, sympy.Lambda):
        if len(definition.variables) != arguments:
            raise NetworkError(
                f"the definition of {name!r} must take {arguments} argument(s); got {definition} "
                f"with {len(definition.variables)}"
            )
        return definition
    if not callable(definition):
        raise NetworkTypeError(
            f"the definition of {name!r} must be a callable of SymPy symbols or a sympy.Lambda; "
            f"got {definition!r:.80} ({type(definition).__name__})"
        )
    variables = tuple(sympy.Dummy(f"u{i}", real=True) for i in range(arguments))
    try:
        expression = definition(*variables)
    except Exception as error:  # the user's code: say whose it is rather than show a deep traceback
        raise NetworkError(f"the definition of {name!r} failed on SymPy symbols: {error!r}") from None
    if isinstance(expression, (int, float)) and not isinstance(expression, bool):
        expression = sympy.Float(expression) if isinstance(expression, float) else sympy.Integer(expression)
    if not isinstance(expression, sympy.Expr):
        raise NetworkTypeError(
            f"the definition of {name!r} must return a SymPy expression; got {expression!r:.80} "
            f"({type(expression).__name__})"
        )
    stray = expression.free_symbols - set(variables)
    if stray:
        raise NetworkError(
            f"the definition of {name!r} uses symbols other than its argument(s): {', '.join(sorted(map(str, stray)))}"
        )
    return sympy.Lambda(variables, expression)


_SAMPLE_Z = (-2.5, 0.5, 3.0)  # where a user's activation and its derivative must be finite real numbers
# (ŷ, y) where a user's loss and ∂φ/∂ŷ must be: in (0, 1), where a probability loss (log ŷ) is defined too
_SAMPLE_LOSS = ((0.3, 0.0), (0.6, 1.0), (0.8, 0.25))


def _checked_formula(name: str, lam: sympy.Lambda, variables: Sequence[str]) -> sympy.Lambda:
    """``lam`` in real symbols named ``variables`` (so that messages read z, not _u0), with Max and Min as
    Piecewise; refused (NetworkError) where torch could not compute it."""
    named = tuple(sympy.Symbol(v, real=True) for v in variables)
    expression = with_max_min_as_piecewise(lam(*named))
    check_compilable(expression, f"the definition of {name!r}")
    return sympy.Lambda(named, expression)


@dataclass(frozen=True)
class Activation:
    """One activation function: its name, LaTeX, and the opaque SymPy function that stands for it.

    ``function`` is sigmoid, relu, ... (a ``DefinedFunctionBase`` subclass), SymPy's own ``tanh``, or a
    Lambda for the identity; None for softmax, which couples the units of its layer.
    """

    name: str
    latex: str
    function: Callable[[sympy.Expr], sympy.Expr] | None
    torch_module: str | None = None  # the torch.nn class (from_torch / to_torch); None: lambdify the definition
    torch_arguments: tuple[tuple[str, object], ...] = ()  # its keyword arguments, e.g. the LeakyReLU slope
    last_layer_only: bool = False

    def __post_init__(self):
        check_latex(self.latex, self.name)  # built-in rows too: LaTeX reaches pdflatex only through this check

    @property
    def user(self) -> bool:
        """Whether a user defined it (``define``): its SymPy classes are then named in USER_NAMESPACE."""
        return isinstance(self.function, type) and self.function.__name__.startswith(USER_NAMESPACE)

    @classmethod
    def define(cls, name: str, definition, latex: str | None = None, *, through_output=None) -> Activation:
        """A new element-wise activation from its definition alone.

        ``definition`` is a callable z ↦ SymPy expression (or a ``sympy.Lambda``); ``through_output``,
        optional, is the derivative written through the output, a ↦ f'(z) (SymPy must prove it equal to the
        derivative of the definition). Everything else (derivative, LaTeX, compiled code, the autograd
        reference) follows from the definition.

        Refused here, with the reason (NetworkError): a name of chainrule's or SymPy's; a definition or
        derivative outside ``_definitions.COMPILABLE_FUNCTIONS`` (Max and Min become Piecewise), not a finite
        real number at z = -2.5, 0.5, 3, or with a derivative 0 everywhere; LaTeX other than math notation.
        """
        check_name(name, "activation", ACTIVATIONS)
        lam = _checked_formula(name, _definition_lambda(name, definition, 1), "z")
        if not lam.expr.has(*lam.variables):
            raise NetworkError(f"the definition of {name!r} is the constant {lam.expr}: nothing below it could learn")
        through = (
            None if through_output is None else _checked_formula(name, _definition_lambda(name, through_output, 1), "a")
        )
        escaped = name.replace("_", r"\_")
        latex = check_latex(latex, name) if latex is not None else rf"\operatorname{{{escaped}}}"
        (u,) = lam.variables
        check_finite_real(lam.expr, [{u: point} for point in _SAMPLE_Z], f"the definition of {name!r}")
        function = define_function(name, lam, latex, through_output=through, recognisable=False, user=True)
        activation = cls(name, latex, function)
        # the derivative is what gets compiled: SymPy must have taken it, torch must print it, and it must be
        # a number where the definition is one
        derivative = activation.local_derivative(_Z)
        what = f"the derivative of {name!r}, {sympy.sstr(derivative)},"
        check_compilable(derivative, what)
        check_finite_real(derivative, [{_Z: point} for point in _SAMPLE_Z], what)
        if is_zero(derivative):
            raise NetworkError(f"the derivative of {name!r} is 0 everywhere: nothing below it could learn")
        return activation

    # -- what follows from the definition ------------------------------------------------------------------

    @property
    def elementwise(self) -> bool:
        return self.function is not None

    @functools.cached_property
    def definition(self) -> sympy.Lambda | None:
        """z ↦ f(z) as the user or the table wrote it (σ stays σ inside silu's definition); None for softmax."""
        if self.function is None:
            return None
        if isinstance(self.function, type) and issubclass(self.function, DefinedFunctionBase):
            return self.function.definition
        return sympy.Lambda(_Z, self.function(_Z))

    @functools.cached_property
    def local_derivative(self) -> sympy.Lambda | None:
        """z ↦ f'(z): ``sympy.diff`` of the opaque function (whose ``fdiff`` is diff of the definition)."""
        if self.function is None:
            return None
        return sympy.Lambda(_Z, sympy.diff(self.function(_Z), _Z))

    @functools.cached_property
    def through_output(self) -> sympy.Lambda | None:
        """a ↦ f'(z) written through the output a = f(z), or None where the derivative needs z (relu, softplus).

        It is the local derivative with f(z) renamed a, when no z is left; SymPy proved the table's form
        equal to the derivative of the definition when the function was made (``define_function``).
        """
        if self.function is None:
            return None
        written = self.local_derivative(_Z).xreplace({self.function(_Z): _A})
        if written.has(_Z) or not written.has(_A):
            return None
        return sympy.Lambda(_A, written)

    def derivative(self, z: sympy.Expr, a: sympy.Expr) -> sympy.Expr:
        """f'(z), written through a = f(z) where that form exists (σ: a(1 − a)), else through z."""
        if self.through_output is not None:
            return self.through_output(a)
        return self.local_derivative(z)

    def outputs(self, z: Sequence[sympy.Expr]) -> list[sympy.Expr]:
        """The layer outputs a_i for pre-activations z (a whole layer, so softmax fits too)."""
        if self.function is not None:
            return [self.function(zi) for zi in z]
        exps = [sympy.exp(zi) for zi in z]
        total = sympy.Add(*exps)
        return [e / total for e in exps]

    def jacobian(self, z: Sequence[sympy.Expr], a: Sequence[sympy.Expr], k: int, i: int) -> sympy.Expr:
        """∂a_k/∂z_i, written through the outputs a where possible."""
        if self.function is not None:
            return KroneckerDelta(k, i) * self.derivative(z[i], a[i])
        # softmax: SymPy's ∂a_k/∂z_i in index form (symbolic width, ``_index``), at this k and i
        template, a_k, a_i, kronecker = self._jacobian_template
        return instantiate(template, {a_k: a[k], a_i: a[i], kronecker: sympy.S.One if k == i else sympy.S.Zero})

    @functools.cached_property
    def _jacobian_template(self) -> tuple[sympy.Expr, sympy.Symbol, sympy.Symbol, sympy.Symbol]:
        """The index-form softmax Jacobian with a_k, a_i and 𝟙[k = i] as plain symbols, renamed per entry."""
        a_k, a_i, kronecker = sympy.Symbol("a_k", real=True), sympy.Symbol("a_i", real=True), sympy.Symbol("d")
        template = softmax_jacobian().xreplace(
            {indexed_a[column]: a_k, indexed_a[row]: a_i, KroneckerDelta(row, column): kronecker}
        )
        return template, a_k, a_i, kronecker

    def matrix_forward(self, z: sympy.Symbol) -> sympy.Expr:
        """a = f(z) in the matrix program, where z stands for a whole [units, batch] matrix."""
        return self.function(z) if self.function is not None else softmax(z)

    @functools.cached_property
    def backward(self) -> type[ActivationBackwardBase] | None:
        """``backward(g, z, a)`` = g ⊙ f'(z), kept whole (element-wise activations only)."""
        if self.function is None:
            return None
        return backward_function(self.name, self.latex, self.derivative, user=self.user)

    def matrix_backward(self, z: sympy.Symbol, a: sympy.Symbol, upstream: sympy.Expr) -> sympy.Expr:
        """(∂a/∂z)ᵀ g at matrix level: the same Jacobian as ``jacobian``, contracted with g."""
        if self.function is not None:
            local = self.derivative(z, a)
            return upstream * local if local.is_Number else self.backward(upstream, z, a)
        # SymPy's Σ_k g_k ∂a_k/∂z_i in index form, a_i g_i − a_i Σ_k a_k g_k, in the program's operations
        return as_program(layer_facts()["softmax_backward"].index_form, {indexed_g: upstream, indexed_a: a}, unit_sum)


def instantiate(expression: sympy.Expr, values: dict) -> sympy.Expr:
    """``expression.xreplace(values)``, without asking SymPy to re-evaluate functions of a renamed symbol.

    Calling a Lambda rebuilds log(ŷ) for every output unit, and log's ``eval`` asks the new symbol's
    assumptions each time (15 ms a unit for bce: 75 s for 5000 outputs). Renaming an argument cannot make a
    function simplify that did not before, so functions are rebuilt unevaluated (the same object SymPy
    would build); sums, products and powers are evaluated as usual.
    """
    if expression in values:
        return values[expression]
    if not expression.args:
        return expression
    arguments = [instantiate(argument, values) for argument in expression.args]
    if isinstance(expression, sympy.Function) and all(v.is_Symbol for v in values.values() if v.free_symbols):
        # Basic.__new__: the object Function.__new__ would return, without eval and its nargs bookkeeping
        return sympy.Basic.__new__(expression.func, *arguments)
    return expression.func(*arguments)


def _slope_text(value: float) -> str:
    return f"{value:g}".replace("-", "m").replace(".", "_")


def _parametrised(base: str, module: str, parameter: str, value: float, negative_side) -> Activation:
    """A row of its own for a torch module built with a non-default parameter: z for z > 0, else
    ``negative_side(z, value)`` (the parameter as an exact rational, so SymPy's derivative is exact)."""
    exact = sympy.Rational(repr(float(value)))
    name = f"{base}_{_slope_text(value)}"
    function = define_function(
        name,
        lambda z: sympy.Piecewise((z, z > 0), (negative_side(z, exact), True)),
        ACTIVATIONS[base].latex,
        recognisable=False,
    )
    return Activation(name, function.latex_name, function, module, ((parameter, float(value)),))


@functools.lru_cache(maxsize=64)
def leaky_relu_activation(negative_slope: float = 0.01) -> Activation:
    """nn.LeakyReLU(negative_slope): the table's row for 0.01, else a row of its own (cached, so equal)."""
    if negative_slope == 0.01:
        return ACTIVATIONS["leaky_relu"]
    return _parametrised("leaky_relu", "LeakyReLU", "negative_slope", negative_slope, lambda z, slope: slope * z)


@functools.lru_cache(maxsize=64)
def elu_activation(alpha: float = 1.0) -> Activation:
    """nn.ELU(alpha): the table's row for 1.0, else a row of its own (cached, so equal)."""
    if alpha == 1.0:
        return ACTIVATIONS["elu"]
    return _parametrised("elu", "ELU", "alpha", alpha, lambda z, scale: scale * (sympy.exp(z) - 1))


_IDENTITY = sympy.Lambda(_Z, _Z)

ACTIVATIONS: dict[str, Activation] = {
    activation.name: activation
    for activation in (
        Activation("sigmoid", r"\sigma", sigmoid, "Sigmoid"),
        Activation("tanh", r"\tanh", sympy.tanh, "Tanh"),
        Activation("relu", r"\operatorname{relu}", relu, "ReLU"),
        Activation("softplus", r"\operatorname{softplus}", softplus, "Softplus"),
        Activation("identity", r"\operatorname{id}", _IDENTITY, "Identity"),
        Activation("silu", silu.latex_name, silu, "SiLU"),
        Activation("elu", elu.latex_name, elu, "ELU", (("alpha", 1.0),)),
        Activation("leaky_relu", leaky_relu.latex_name, leaky_relu, "LeakyReLU", (("negative_slope", 0.01),)),
        Activation("gelu", gelu.latex_name, gelu, "GELU", (("approximate", "none"),)),
        Activation("softmax", r"\operatorname{softmax}", None, "Softmax", last_layer_only=True),
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
    definition: sympy.Lambda | None  # (ŷ_k, y_k, n) ↦ φ for n output units; None for a coupled loss
    output_activations: frozenset[str] | None = None  # last-layer activations it makes sense with
    targets: str = "real"  # what y holds: "real" numbers, "probability" per unit, or "distribution" per sample
    coupled: CoupledLoss | None = None
    latex: str | None = None  # φ(ŷ, y) in LaTeX, for user-defined losses

    @classmethod
    def define(cls, name: str, per_unit, latex: str | None = None) -> Loss:
        """A new loss from its per-unit definition φ(ŷ_k, y_k) (a callable of two SymPy symbols, or a Lambda).

        Checked as ``Activation.define`` checks: φ and ∂φ/∂ŷ made of compilable functions, finite real numbers
        at (ŷ, y) = (0.3, 0), (0.6, 1), (0.8, 0.25), and ∂φ/∂ŷ not 0 everywhere; ``latex`` math notation only.
        """
        check_name(name, "loss", LOSSES)
        two = _checked_formula(name, _definition_lambda(name, per_unit, 2), ("ŷ", "y"))
        if latex is not None:
            check_latex(latex, name)
        prediction, target = two.variables
        points = [{prediction: p, target: t} for p, t in _SAMPLE_LOSS]
        check_finite_real(two.expr, points, f"the definition of {name!r}")
        gradient = sympy.diff(two.expr, prediction)
        what = f"the derivative of {name!r} in ŷ, {sympy.sstr(gradient)},"
        check_compilable(gradient, what)
        check_finite_real(gradient, points, what)
        if is_zero(gradient):
            raise NetworkError(f"the definition of {name!r} does not depend on the prediction ŷ: its gradient is 0")
        p, t = sympy.Symbol("ŷ", real=True), sympy.Symbol("y", real=True)
        shown = two(p, t)
        if latex is None:
            latex = sympy.latex(two(sympy.Symbol(r"\hat{y}", real=True), t))
        n = sympy.Dummy("n", integer=True, positive=True)
        return cls(
            name,
            f"Σ_k φ(ŷ_k, y_k) with φ(ŷ, y) = {sympy.sstr(shown)}",
            sympy.Lambda((*two.variables, n), two.expr),
            latex=latex,
        )

    def per_unit(self, prediction: sympy.Expr, target: sympy.Expr, n: int) -> sympy.Expr:
        """φ(ŷ_k, y_k) for a layer of n output units (a coupled loss has none)."""
        if self.definition is None:
            raise NetworkError(f"loss {self.name!r} couples the output units; it has no per-unit term")
        variables = self.definition.variables
        return instantiate(self.definition.expr, dict(zip(variables, (prediction, target, sympy.sympify(n)))))

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
    """A loss on the logits z that couples the units through their softmax a = softmax(z).

    Its gradient is SymPy's: ``gradient_fact`` names the index-form fact (``_index.layer_facts``) of ∂ℓ/∂z_i,
    taken by ``sympy.diff`` of the per-sample definition over a symbolic width and written through a; it is
    read at matrix level with a as softmax(z), and per unit with a_i as ∂logsumexp(z)/∂z_i = e^{z_i −
    logsumexp(z)} (``logsumexp.fdiff``, which never forms e^{z_i} alone; tests/test_proofs.py proves it a_i).
    """

    per_sample: Callable[[list[sympy.Expr], list[sympy.Expr]], sympy.Expr]
    matrix_per_sample: Callable[[sympy.Symbol, sympy.Symbol], sympy.Expr]
    gradient_fact: str

    def matrix_gradient(self, z: sympy.Symbol, y: sympy.Symbol) -> sympy.Expr:
        """∂ℓ/∂z for [n, B] matrices z and y (softmax(z) ⊙ 𝟏ᵀy − y for cross-entropy)."""
        form = layer_facts()[self.gradient_fact].index_form
        return as_program(form, {indexed_a: softmax(z), indexed_y: y}, unit_sum)

    def gradient(self, z: Sequence[sympy.Expr], y: Sequence[sympy.Expr], i: int) -> sympy.Expr:
        """∂ℓ/∂z_i of one sample's units (0-based i), collected as the index form writes it."""
        form, total = layer_facts()[self.gradient_fact].index_form, logsumexp(*z)
        # fdiff rather than diff: the same derivative, without looking for z_u among the n arguments
        return at_unit(form, {indexed_a: lambda u: total.fdiff(u + 1), indexed_y: lambda u: y[u]}, i, len(z))


def _bce(p: sympy.Expr, t: sympy.Expr) -> sympy.Expr:
    return -(t * sympy.log(p) + (1 - t) * sympy.log(1 - p))


def _bce_with_logits(z: sympy.Expr, t: sympy.Expr) -> sympy.Expr:
    # −[t log σ(z) + (1 − t) log(1 − σ(z))] = softplus(z) − t z, finite for every z (softplus = log(1 + e^z))
    return softplus(z) - t * z


# −Σ_k y_k log softmax(z)_k = Σ_k y_k (logsumexp(z) − z_k): nn.CrossEntropyLoss on logits, finite
_SOFTMAX_CROSS_ENTROPY = CoupledLoss(
    per_sample=lambda z, y: sympy.Add(*(t * (logsumexp(*z) - p) for p, t in zip(z, y))),
    matrix_per_sample=lambda z, y: unit_sum(y) * unit_logsumexp(z) - unit_sum(y * z),
    gradient_fact="cross_entropy_gradient",  # ∂/∂z_i: softmax_i Σ_k y_k − y_i
)

_LOGITS = frozenset({"identity"})


def _loss(name: str, description: str, per_unit, output_activations=None, **rest) -> Loss:
    """A table row from φ(p, t, n) (None for a coupled loss, given as ``coupled=``)."""
    p, t = sympy.Dummy("p", real=True), sympy.Dummy("t", real=True)
    n = sympy.Dummy("n", integer=True, positive=True)
    definition = None if per_unit is None else sympy.Lambda((p, t, n), per_unit(p, t, n))
    return Loss(name, description, definition, output_activations, **rest)


LOSSES: dict[str, Loss] = {
    loss.name: loss
    for loss in (
        _loss("half_sse", "½ Σ (ŷ − y)², the tutorial's code", lambda p, t, n: (p - t) ** 2 / 2),
        _loss("sse", "Σ (ŷ − y)², the tutorial's figure", lambda p, t, n: (p - t) ** 2),
        _loss("mse", "mean over the output units of (ŷ − y)²", lambda p, t, n: (p - t) ** 2 / n),
        _loss(
            "bce",
            "−Σ [y log ŷ + (1 − y) log(1 − ŷ)]",
            lambda p, t, n: _bce(p, t),
            frozenset({"sigmoid", "softmax"}),
            targets="probability",
        ),
        _loss(
            "mean_bce",
            "mean over the output units of −[y log ŷ + (1 − y) log(1 − ŷ)] (nn.BCELoss's mean)",
            lambda p, t, n: _bce(p, t) / n,
            frozenset({"sigmoid", "softmax"}),
            targets="probability",
        ),
        _loss(
            "cross_entropy",
            "−Σ y log ŷ",
            lambda p, t, n: -t * sympy.log(p),
            frozenset({"softmax"}),
            targets="distribution",
        ),
        _loss(
            "softmax_cross_entropy",
            "−Σ y log softmax(z) on the logits z, as Σ_k y_k (logsumexp(z) − z_k) (nn.CrossEntropyLoss)",
            None,
            _LOGITS,
            targets="distribution",
            coupled=_SOFTMAX_CROSS_ENTROPY,
        ),
        _loss(
            "bce_with_logits",
            "Σ [softplus(z) − y z] = −Σ [y log σ(z) + (1 − y) log(1 − σ(z))] on the logits z (nn.BCEWithLogitsLoss)",
            lambda p, t, n: _bce_with_logits(p, t),
            _LOGITS,
            targets="probability",
        ),
        _loss(
            "mean_bce_with_logits",
            "mean over the output units of softplus(z) − y z (nn.BCEWithLogitsLoss's mean)",
            lambda p, t, n: _bce_with_logits(p, t) / n,
            _LOGITS,
            targets="probability",
        ),
    )
}
