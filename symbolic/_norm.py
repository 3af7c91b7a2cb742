"""LayerNorm and BatchNorm (training mode) in index form: their backward taken by ``sympy.diff`` and proved
equal to the form a textbook writes.

Both layers normalise a vector x of size n: μ = (1/n) Σ_k x_k, σ² = (1/n) Σ_k (x_k − μ)² (the biased variance,
as torch's training mode normalises with), x̂_i = (x_i − μ)/σ̂ with σ̂ = √(σ² + ε), y_i = γ_i x̂_i + β_i.
LayerNorm normalises the n features of one sample, with a γ_i and β_i per feature; BatchNorm in training mode
normalises the N samples of one feature c, whose γ_c and β_c are one number along that axis. With g_i = ∂L/∂y_i
upstream, the vector-Jacobian product is ∂L/∂x_j = Σ_i g_i ∂y_i/∂x_j, and textbooks write it, with ĝ = γ ⊙ g,

    ∂L/∂x_j = (1/σ̂) (ĝ_j − mean(ĝ) − x̂_j mean(ĝ ⊙ x̂)).

Each fact (``norm_facts``) is asked of SymPy as ``diff`` of the definition at a symbolic size. SymPy 1.14
differentiates the nested sums (Σ_i g_i ∂/∂x_j of a Σ_r (x_r − Σ_k x_k/n)² under a square root) but its
``Sum.doit`` cannot finish them: it raises inside gosper's algorithm ("'Indexed' object is not subscriptable")
on the Σ_i γ_i g_i x_i that remain. So ``reduced`` does the summation by hand: each sum split into its terms,
a term with 𝟙[v = j] summed by ``deltasummation``, a term free of the bound index multiplied by the size, the
rest left as a sum with its free factors in front (``factor_sum``); Σ_v x_v is then named n μ and Σ_v x_v²
n (σ̂² − ε + μ²), so that every fact reads in μ and σ̂ (positive, √(σ̂²) = σ̂), as the textbook does.
``NormFact.proves`` shows the textbook form equal to that at the symbolic size (both reduced, their difference
cancels to 0), and ``NormFact.proves_at`` at a concrete size, independently of ``reduced``: the definition is
written out in one plain symbol per entry, differentiated entry by entry, and the difference to the textbook
form (and to the derived form, μ and σ̂ put back to their definitions) simplifies to 0.

The three paths from x into the loss (x → x̂ directly, x → μ → x̂ (and μ → σ² → x̂), x → σ² → x̂) are facts
too: y is written as a function of x, μ and σ² (plain symbols), each path is the chain rule along it taken by
``diff``, and the three terms are proved to add up to the total; each path's term is one of the textbook's
three (ĝ_j/σ̂, −mean(ĝ)/σ̂, −x̂_j mean(ĝ ⊙ x̂)/σ̂). ∂σ²/∂μ = −(2/n) Σ_k (x_k − μ) is 0, which is why the path
μ → σ² adds nothing (SymPy shows it: the fact ``variance_mean_derivative``).

This module is SymPy only; it does not depend on the sizes, so it is derived once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import sympy
from sympy import IndexedBase, KroneckerDelta, Sum, symbols
from sympy.concrete.delta import deltasummation
from sympy.polys.fields import field
from sympy.polys.orderings import lex
from sympy.simplify.simplify import factor_sum

from ._index import same

# the sizes: n features of a sample (LayerNorm), N samples of a batch (BatchNorm); indices 1-based
n, N = symbols("n N", integer=True, positive=True)
i, j, k, p, r = symbols("i j k p r", integer=True, positive=True)
eps = sympy.Symbol("epsilon", positive=True)
x = IndexedBase("x")  # the input along the normalised axis
g = IndexedBase("g")  # the upstream derivative ∂L/∂y
gamma, beta = IndexedBase("gamma"), IndexedBase("beta")  # LayerNorm's scale and shift, one per feature
gamma_c, beta_c = symbols("gamma_c beta_c", real=True)  # BatchNorm's, one number for the feature c
mu = sympy.Symbol("mu", real=True)  # the mean, as a name in the derived and textbook forms
sigma_hat = sympy.Symbol("sigma_hat", positive=True)  # √(σ² + ε)
mean_symbol, variance_symbol = symbols("mu_x sigma2_x", real=True)  # μ and σ² as free variables (the paths)

SIZES = (2, 3, 5)  # the concrete sizes every fact is also proved at (never only one)


@dataclass(frozen=True)
class Normalization:
    """One normalisation layer: the axis it normalises over (its size and the words for it) and how γ, β
    stand along that axis (one per element for LayerNorm, one number for BatchNorm's feature)."""

    name: str
    size: sympy.Symbol
    axis: str  # "features": the last axis of a (B, n) input; "batch": the first axis of an (N, C) input
    scale: Callable[[sympy.Expr], sympy.Expr]  # γ at an index along the axis
    shift: Callable[[sympy.Expr], sympy.Expr]
    scale_parameter: sympy.Expr  # what ∂L/∂γ is taken by: γ_p (LayerNorm) or γ_c (BatchNorm)
    shift_parameter: sympy.Expr


LAYER_NORM = Normalization("LayerNorm", n, "features", lambda u: gamma[u], lambda u: beta[u], gamma[p], beta[p])
BATCH_NORM = Normalization("BatchNorm", N, "batch", lambda u: gamma_c, lambda u: beta_c, gamma_c, beta_c)
LAYERS = {layer.name: layer for layer in (LAYER_NORM, BATCH_NORM)}


# -- the forward definition in index form --------------------------------------------------------------------


def mean(size: sympy.Symbol) -> sympy.Expr:
    """μ = (1/size) Σ_k x_k."""
    return Sum(x[k], (k, 1, size)) / size


def variance(size: sympy.Symbol, divisor: sympy.Expr | None = None) -> sympy.Expr:
    """σ² = (1/size) Σ_r (x_r − μ)², the biased variance (``divisor`` another divisor, for a planted mistake)."""
    return Sum((x[r] - mean(size)) ** 2, (r, 1, size)) / (size if divisor is None else divisor)


def normalized(index: sympy.Expr, size: sympy.Symbol, centre=None, spread=None) -> sympy.Expr:
    """x̂_index = (x_index − μ)/√(σ² + ε); ``centre`` and ``spread`` stand for μ and σ² when given."""
    centre = mean(size) if centre is None else centre
    spread = variance(size) if spread is None else spread
    return (x[index] - centre) / sympy.sqrt(spread + eps)


def output(layer: Normalization, index: sympy.Expr, centre=None, spread=None) -> sympy.Expr:
    """y_index = γ x̂_index + β."""
    return layer.scale(index) * normalized(index, layer.size, centre, spread) + layer.shift(index)


def _upstream_sum(layer: Normalization, term: Callable[[sympy.Expr], sympy.Expr]) -> Sum:
    """Σ_i g_i term(i) over the normalised axis: the chain rule's sum over the outputs."""
    return Sum(g[i] * term(i), (i, 1, layer.size))


# -- summing what diff leaves (SymPy's Sum.doit cannot: see the module's docstring) -----------------------


def _in_range(expression: sympy.Expr, size: sympy.Symbol) -> sympy.Expr:
    """Drop the Piecewise conditions 1 ≤ index ≤ size that the indices' stated range (1 … size) makes true."""
    if not expression.has(sympy.Piecewise):
        return expression
    true = {}
    for index in (i, j, k, p, r):
        for condition in (sympy.Le(index, size), sympy.Ge(size, index), sympy.Le(1, index), sympy.Ge(index, 1)):
            true[condition] = sympy.true
    within = sympy.piecewise_fold(expression).xreplace(true)
    if within.has(sympy.Piecewise):  # a condition the stated ranges do not settle: say so rather than guess
        raise ValueError(f"a sum over an index whose range is not stated: {expression}")
    return within


def _summed(summation: Sum, size: sympy.Symbol) -> sympy.Expr:
    """One sum (its body already reduced) done term by term, Σ x and Σ x² named by the statistics."""
    ((variable, low, high),) = summation.limits
    total = sympy.Integer(0)
    for term in sympy.Add.make_args(sympy.expand(summation.function)):
        if not term.has(variable):
            total += term * (high - low + 1)
        elif any(delta.has(variable) for delta in term.atoms(KroneckerDelta)):
            total += _in_range(deltasummation(term, (variable, low, high)), size)
        else:
            total += _statistic(factor_sum(Sum(term, (variable, low, high))), size)
    return total


def _statistic(expression: sympy.Expr, size: sympy.Symbol) -> sympy.Expr:
    """Σ_v x_v as size·μ, Σ_v x_v² as size·(σ̂² − ε + μ²) (σ² = (1/size) Σ x² − μ²), wherever they stand."""

    def named(summation: Sum) -> sympy.Expr:
        ((variable, low, high),) = summation.limits
        if (low, high) != (1, size):
            return summation
        if summation.function == x[variable]:
            return size * mu
        if summation.function == x[variable] ** 2:
            return size * (sigma_hat**2 - eps + mu**2)
        return summation

    return expression.replace(lambda e: isinstance(e, Sum), named)


def reduced(expression: sympy.Expr, size: sympy.Symbol) -> sympy.Expr:
    """``expression`` (sums over 1 … size, KroneckerDeltas, the statistics as sums) with every sum SymPy can do
    done, written in μ and σ̂ and the sums that remain (Σ_i γ_i g_i, Σ_i γ_i g_i x_i, ...)."""
    for _ in range(8):  # a sum done can leave a sum outside it to do: repeat until nothing changes
        done = expression.replace(lambda e: isinstance(e, Sum), lambda e: _summed(e, size))
        done = done.replace(  # √(σ̂² − ε + μ² − μ² + ε) is σ̂ once its argument is expanded
            lambda e: isinstance(e, sympy.Pow) and e.base.has(sigma_hat), lambda e: sympy.expand(e.base) ** e.exp
        )
        if done == expression:
            break
        expression = done
    return expression


def _readable(expression: sympy.Expr) -> sympy.Expr:
    """``expression`` as a page would write it: each sum Σ_i c_i x_i that is linear in x written centred,
    Σ_i c_i (x_i − μ) + μ Σ_i c_i (what x̂ is made of), terms collected by those sums and then by σ̂, and
    each sum's bound index named i (the sums left are one level deep)."""
    centred: dict[sympy.Dummy, Sum] = {}

    def held(summation: Sum) -> sympy.Expr:
        ((variable, low, high),) = summation.limits
        body = sympy.expand(summation.function)
        coefficient = body.coeff(x[variable])
        if coefficient == 0 or sympy.expand(body - coefficient * x[variable]) != 0:
            return Sum(body.xreplace({variable: i}), (i, low, high))
        written = Sum((coefficient * (x[variable] - mu)).xreplace({variable: i}), (i, low, high))
        holder = next((h for h, s in centred.items() if s == written), None) or sympy.Dummy("centred")
        centred[holder] = written
        return holder + mu * Sum(coefficient.xreplace({variable: i}), (i, low, high))

    collected = sympy.collect(sympy.expand(expression.replace(lambda e: isinstance(e, Sum), held)), list(centred))
    collected = collected.replace(lambda e: e.is_Add and not e.has(*centred), lambda e: sympy.factor(e))
    return collected.xreplace(centred)


def statistics(size: sympy.Symbol) -> dict[sympy.Symbol, sympy.Expr]:
    """The names the derived and textbook forms use, and their definitions: μ and σ̂ = √(σ² + ε)."""
    return {mu: mean(size), sigma_hat: sympy.sqrt(variance(size) + eps)}


# -- the textbook forms ------------------------------------------------------------------------------------


def textbook_terms(layer: Normalization, at: sympy.Expr = j, spread: sympy.Expr | None = None, epsilon=eps):
    """The three terms of the textbook's ∂L/∂x_at, one per path, in the definition's own sums:
    (direct ĝ_at/σ̂, through the mean −mean(ĝ)/σ̂, through the variance −x̂_at mean(ĝ ⊙ x̂)/σ̂), ĝ = γ ⊙ g.
    ``spread`` and ``epsilon`` replace σ² and ε (for planted mistakes)."""
    size = layer.size
    spread = variance(size) if spread is None else spread
    scale = sympy.sqrt(spread + epsilon)

    def hat(u):
        return (x[u] - mean(size)) / scale

    def upstream(u):
        return layer.scale(u) * g[u]

    average = Sum(upstream(i), (i, 1, size)) / size
    weighted = Sum(upstream(i) * hat(i), (i, 1, size)) / size
    return upstream(at) / scale, -average / scale, -hat(at) * weighted / scale


def textbook_input_gradient(layer: Normalization, spread=None, epsilon=eps) -> sympy.Expr:
    """(1/σ̂)(ĝ_j − mean(ĝ) − x̂_j mean(ĝ ⊙ x̂))."""
    return sympy.Add(*textbook_terms(layer, j, spread, epsilon))


# -- the facts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NormFact:
    """One derivative of a normalisation layer: what was asked (``definition``, the chain rule with its
    derivatives unevaluated), what ``diff`` gives for it, summed by ``reduced`` and written in μ and σ̂
    (``derived``), and the form a textbook writes, in the definition's own sums (``textbook``).

    ``at`` is the index the fact is an entry at (x_j, γ_p, β_p), or None for one number (BatchNorm's ∂L/∂γ_c,
    ∂L/∂β_c). ``put_in`` maps the free variables μ and σ² of a path's chain rule to their definitions, put in
    after ``diff``. ``sizes``: the concrete sizes it is proved at (``proves_at``) besides the symbolic one.
    """

    name: str
    layer: str
    definition: sympy.Expr
    derived: sympy.Expr
    textbook: sympy.Expr
    at: sympy.Symbol | None
    put_in: tuple[tuple[sympy.Symbol, sympy.Expr], ...] = ()
    sizes: tuple[int, ...] = SIZES

    @property
    def size(self) -> sympy.Symbol:
        return LAYERS[self.layer].size

    def restored(self) -> sympy.Expr:
        """The derived form with μ and σ̂ put back to their definitions (sums over the symbolic size)."""
        return self.derived.xreplace(statistics(self.size))

    def proves(self) -> bool:
        """SymPy shows the textbook form equal to diff's result at the symbolic size (both ``reduced``)."""
        return same(reduced(self.textbook, self.size), self.derived)

    def truth(self, size: int, index: int | None = None) -> sympy.Expr:
        """The fact at a concrete ``size`` (and ``at`` = ``index``), without ``reduced``: the definition written
        out one plain symbol per entry, each derivative taken by ``diff`` in those symbols."""
        taken = written_out(self.definition, self.point(size, index))
        put_in = {variable: written_out(value, {self.size: size}) for variable, value in self.put_in}
        return taken.xreplace(put_in)

    def proves_at(self, size: int) -> bool:
        """At a concrete ``size``: the textbook form, and the derived form with μ and σ̂ put back, equal
        ``truth`` at every index (their difference simplifies to 0)."""
        for index in range(1, size + 1) if self.at is not None else (None,):
            exact = self.truth(size, index)
            for form in (self.textbook, self.restored()):
                if not vanishes(written_out(form, self.point(size, index)) - exact):
                    return False
        return True

    def point(self, size: int, index: int | None = None) -> dict:
        """The numbers ``written_out`` puts in: the size and, for an entry, the index ``at``."""
        return {self.size: size} if self.at is None else {self.size: size, self.at: index}


def entry(base: IndexedBase, *index: int) -> sympy.Symbol:
    """The plain symbol for base[index] (one index or several) at a concrete size (real, as values are)."""
    return sympy.Symbol(f"{base}_{'_'.join(map(str, index))}", real=True)


def written_out(expression: sympy.Expr, point: dict) -> sympy.Expr:
    """``expression`` at ``point`` (the size and the free index given numbers): each sum a sum of its terms,
    each Indexed entry a plain symbol (``entry``), each derivative taken by ``diff`` in those symbols. Written
    by hand rather than ``subs(...).doit()`` because subs cannot reach a Derivative's variable (x[j]) and
    doit would differentiate the Indexed entries before they are plain symbols."""
    if isinstance(expression, sympy.Indexed):
        return entry(expression.base, *(int(written_out(index, point)) for index in expression.indices))
    if isinstance(expression, Sum) or hasattr(expression, "combine"):  # or a reduction that says how it combines
        *inner, (variable, low, high) = expression.limits  # the outermost limit; the inner ones stay a reduction
        body = expression.func(expression.function, *inner) if inner else expression.function
        low, high = (int(written_out(bound, point)) for bound in (low, high))
        combine = getattr(expression, "combine", sympy.Add)
        return combine(*(written_out(body, {**point, variable: u}) for u in range(low, high + 1)))
    if isinstance(expression, sympy.Derivative):
        variables = [written_out(variable, point) for variable, _ in expression.variable_count]
        return sympy.diff(written_out(expression.expr, point), *variables)
    if expression in point:
        return sympy.Integer(point[expression])
    if not expression.args:
        return expression
    return expression.func(*(written_out(argument, point) for argument in expression.args))


def vanishes(difference: sympy.Expr) -> bool:
    """SymPy shows ``difference`` (written out at a concrete size) to be 0: each square root √P (and its odd
    powers) is named s, the difference becomes one fraction of polynomials in SymPy's sparse rational-function
    field (``sympy.polys.fields``, lex order with the s's first), and its numerator is reduced modulo each
    s² − P; a remainder of 0 proves the difference 0. (``simplify`` finds a true identity too, but on a
    difference that is not 0 it can take minutes, and a planted mistake must fail fast.)"""
    roots: dict[sympy.Expr, sympy.Dummy] = {}

    def named(power: sympy.Pow) -> sympy.Expr:
        base = sympy.expand(power.base)
        root = roots.setdefault(base, sympy.Dummy("root", positive=True))
        return root ** (2 * power.exp)

    rational = difference.replace(lambda e: isinstance(e, sympy.Pow) and e.exp.is_Rational and e.exp.q == 2, named)
    if any(not power.exp.is_Integer for power in rational.atoms(sympy.Pow)):
        return sympy.simplify(rational) == 0  # a power other than a square root: not what these facts hold
    others = set().union(rational.free_symbols, *(base.free_symbols for base in roots)) - set(roots.values())
    fractions, *_ = field([*roots.values(), *sorted(others, key=str)], sympy.QQ, lex)
    numerator = fractions.from_expr(rational).numer
    ring = numerator.ring
    for base, root in roots.items():
        numerator = numerator.rem(ring(root) ** 2 - ring(base))
    return numerator == 0


def differentiated(definition: sympy.Expr) -> sympy.Expr:
    """``definition`` with each Derivative taken by ``diff`` (not ``doit``, which would also try, and fail, to
    do the sums inside it: see the module's docstring)."""
    return definition.replace(
        lambda e: isinstance(e, sympy.Derivative), lambda e: sympy.diff(e.expr, *(v for v, _ in e.variable_count))
    )


def _path_definitions(layer: Normalization) -> dict[str, sympy.Expr]:
    """The chain rule along each path from x_j into L = Σ_i g_i y_i, y written as y(x, μ, σ²) with μ and σ²
    free and σ² = σ²(x, μ), μ = μ(x): x_j → x̂; x_j → μ → x̂ (and μ → σ² → x̂); x_j → σ² → x̂."""
    size = layer.size
    loss = _upstream_sum(layer, lambda u: output(layer, u, mean_symbol, variance_symbol))
    spread = Sum((x[r] - mean_symbol) ** 2, (r, 1, size)) / size  # σ²(x, μ)
    d_loss_d_variance = sympy.Derivative(loss, variance_symbol)
    return {
        "path_direct": sympy.Derivative(loss, x[j]),
        "path_mean": (sympy.Derivative(loss, mean_symbol) + d_loss_d_variance * sympy.Derivative(spread, mean_symbol))
        * sympy.Derivative(mean(size), x[j]),
        "path_variance": d_loss_d_variance * sympy.Derivative(spread, x[j]),
        "variance_mean_derivative": sympy.Derivative(spread, mean_symbol),  # ∂σ²/∂μ, 0: the μ → σ² path is empty
    }


def _put_in(size: sympy.Symbol) -> tuple[tuple[sympy.Symbol, sympy.Expr], ...]:
    """μ and σ² of a path's chain rule, once differentiated, are their definitions (σ²'s own μ put in too)."""
    return ((mean_symbol, mean(size)), (variance_symbol, variance(size)))


def _make(name: str, layer: Normalization, definition, textbook, at, put_in=()) -> NormFact:
    taken = differentiated(definition).xreplace(dict(put_in))
    return NormFact(
        f"{layer.name}.{name}", layer.name, definition, _readable(reduced(taken, layer.size)), textbook, at, put_in
    )


@functools.cache
def norm_facts() -> dict[str, NormFact]:
    """Every fact of LayerNorm and BatchNorm (training mode), keyed ``Layer.fact``, derived once."""
    made: list[NormFact] = []
    for layer in LAYERS.values():
        size = layer.size

        # ∂L/∂x_j = Σ_i g_i ∂y_i/∂x_j = (1/σ̂)(ĝ_j − mean(ĝ) − x̂_j mean(ĝ ⊙ x̂))
        asked = _upstream_sum(layer, lambda u, layer=layer: sympy.Derivative(output(layer, u), x[j]))
        made.append(_make("input_gradient", layer, asked, textbook_input_gradient(layer), j))

        # ∂L/∂γ, ∂L/∂β: g_p x̂_p and g_p per feature (LayerNorm); Σ_i g_i x̂_i and Σ_i g_i (BatchNorm's one γ_c)
        per_entry = isinstance(layer.scale_parameter, sympy.Indexed)
        for key, parameter, factor in (
            ("scale_gradient", layer.scale_parameter, lambda u, size=size: normalized(u, size)),
            ("shift_gradient", layer.shift_parameter, lambda u: sympy.Integer(1)),
        ):
            asked = _upstream_sum(
                layer, lambda u, layer=layer, parameter=parameter: sympy.Derivative(output(layer, u), parameter)
            )
            textbook = g[p] * factor(p) if per_entry else Sum(g[i] * factor(i), (i, 1, size))
            made.append(_make(key, layer, asked, textbook, p if per_entry else None))

        # the three paths into x_j, each one of the textbook's three terms, and ∂σ²/∂μ = 0
        paths = _path_definitions(layer)
        for key, textbook in zip(("path_direct", "path_mean", "path_variance"), textbook_terms(layer), strict=True):
            made.append(_make(key, layer, paths[key], textbook, j, _put_in(size)))
        made.append(
            _make(
                "variance_mean_derivative",
                layer,
                paths["variance_mean_derivative"],
                sympy.Integer(0),
                None,
                _put_in(size),
            )
        )
    return {fact.name: fact for fact in made}


PATHS = ("path_direct", "path_mean", "path_variance")


def paths_add_up(layer: str) -> bool:
    """SymPy shows the three paths' terms (each derived on its own) add up to diff's ∂L/∂x_j, symbolically."""
    facts = norm_facts()
    total = sympy.Add(*(facts[f"{layer}.{path}"].derived for path in PATHS))
    return same(total, facts[f"{layer}.input_gradient"].derived)
