"""SymPy functions that chainrule needs and SymPy does not have.

Each activation is an *opaque* ``Function`` that stands for its definition (a SymPy expression in z): its
``fdiff`` is ``sympy.diff`` of that definition, taken once, never a hand-written derivative. Opaque matters:
written out as ``1/(1 + exp(-z))``, sigmoid's derivative is ``exp(-z)/(1 + exp(-z))**2``, NaN at z = -100 in
float32, and every expression grows. Where a form of the derivative written through the output a = f(z)
exists (σ(1 − σ)), SymPy proves it equal to the derivative of the definition when the function is made (at
import for the built-ins: ``define_function`` refuses a form it cannot prove) and ``fdiff`` uses it; where
the derivative of one definition is another defined function (softplus' is σ, relu's is the step), SymPy
proves that too and the derivative stays opaque.

The second group are the non-element-wise operations of the *matrix program* (see ``_matrix``): there a
symbol stands for a whole matrix and every ordinary SymPy operation (``+``, ``*``, ``sigmoid``) acts
element-wise, so only products, transposes and sums need functions of their own.
"""

from __future__ import annotations

from typing import ClassVar

import sympy

from ._errors import NetworkError

_Z = sympy.Dummy("z", real=True)  # the argument every definition is written in
_VALUE = sympy.Dummy("value", real=True)  # a function's value, where its derivative is written through it
_PROBES = tuple(
    sympy.Rational(v, 4) for v in (-7, -2, 1, 5, 12)
)  # cheap numeric screen before SymPy is asked for a proof


def _as_lambda(definition, arguments: int = 1) -> sympy.Lambda:
    """A callable of SymPy expressions (or a sympy.Lambda) as a Lambda in real dummies."""
    if isinstance(definition, sympy.Lambda):
        return definition
    variables = (_Z,) if arguments == 1 else tuple(sympy.Dummy(f"u{i}", real=True) for i in range(arguments))
    return sympy.Lambda(variables, sympy.sympify(definition(*variables), strict=True))


def proves_equal(left: sympy.Expr, right: sympy.Expr) -> bool:
    """SymPy shows ``left − right`` is identically 0 (a numeric screen first, then ``simplify``)."""
    if left == right:
        return True
    difference = left - right
    for point in _PROBES:
        value = difference.subs(_Z, point).evalf(30) if difference.has(_Z) else difference.evalf(30)
        if value.is_number and value.is_comparable and abs(value) > 1e-20:
            return False
    # cancel (rational functions of the exponentials) settles the built-ins; simplify only when it does not:
    # its first call imports sympy.physics.units (about 0.1 s), which every ``chainrule`` start would pay
    return sympy.cancel(difference) == 0 or sympy.simplify(difference) == 0


class DefinedFunctionBase(sympy.Function):
    """An opaque function of one argument that stands for ``definition`` (a Lambda in z).

    (The "Base" suffix matters: SymPy's printers dispatch a Function subclass on its own name, its
    parent Function classes, and intermediate classes whose name ends in "Base".)
    """

    nargs = 1
    definition: ClassVar[sympy.Lambda]
    through_output: ClassVar[sympy.Lambda | None] = None  # f'(z) as a function of a = f(z), proved equal
    latex_name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""  # the name reports write; a user function's class name is namespaced
    _derivative: ClassVar[sympy.Lambda | None] = None  # cached per class by ``derivative``

    @classmethod
    def eval(cls, argument):
        if argument.is_number and argument.is_extended_real:
            value = cls.definition(argument)
            if value.is_Number:  # relu(-2) = 0, sigmoid(0) = 1/2; sigmoid(1) stays σ(1)
                return value
        return None

    @classmethod
    def expanded(cls, argument: sympy.Expr) -> sympy.Expr:
        """The definition at ``argument``, with every defined function inside it expanded too."""
        return expand_definitions(cls.definition(argument))

    @classmethod
    def derivative(cls) -> sympy.Lambda:
        """z ↦ f'(z): ``sympy.diff`` of the definition, with defined functions recognised in the result."""
        if cls.__dict__.get("_derivative") is None:
            cls._derivative = sympy.Lambda(_Z, recognise(sympy.diff(cls.definition(_Z), _Z), exclude=cls))
        return cls._derivative

    def fdiff(self, argindex=1):
        if self.through_output is not None:
            return self.through_output(self)
        return self.derivative()(self.args[0])

    def _eval_rewrite(self, rule, args, **hints):
        # rewrite(log), rewrite(exp), ...: the definition in elementary functions (softplus → log(1 + e^z))
        return type(self).expanded(args[0])

    def _eval_evalf(self, prec):
        (argument,) = self.args
        if not (argument.is_number and argument.is_extended_real):
            return None
        return self.expanded(argument)._eval_evalf(prec)

    def _latex(self, printer):
        return rf"{self.latex_name}\left({printer._print(self.args[0])}\right)"


# The class names of user functions: SymPy's printers dispatch ``_print_<class name>`` along the class's
# MRO, so a user function named "step" or "transpose" would be printed as chainrule's own. ":" makes the
# name no identifier, hence no method any printer can define; the user's name is kept for display.
USER_NAMESPACE = "user:"


def class_name(name: str, user: bool) -> str:
    """The SymPy class name for a function called ``name``: namespaced when a user defined it."""
    return f"{USER_NAMESPACE}{name}" if user else name


def _user_sympystr(self, printer):
    """A user function in text as the user named it (its class name is namespaced). Only user classes get
    it: SymPy's text printers call ``_sympystr`` before any ``_print_<class>``, and the report's printer
    writes chainrule's own sigmoid as σ by its ``_print_sigmoid``."""
    return f"{self.display_name}({printer._print(self.args[0])})"


DEFINED_FUNCTIONS: list[type[DefinedFunctionBase]] = []  # every defined function, for ``recognise``


def define_function(
    name: str, definition, latex: str, through_output=None, recognisable: bool = True, *, user: bool = False
) -> type[DefinedFunctionBase]:
    """A new opaque function class standing for ``definition`` (callable z ↦ expr, or a Lambda).

    ``through_output`` (a ↦ f'(z)), when given, must be proved equal to ``sympy.diff`` of the definition;
    ``recognisable`` functions (the built-ins) may stand for the derivative of another definition;
    a ``user`` function's class is named in ``USER_NAMESPACE`` (``name`` is only displayed).
    """
    lam = _as_lambda(definition)
    if through_output is not None:
        through = _as_lambda(through_output)
        derivative = sympy.diff(expand_definitions(lam(_Z)), _Z)
        if not proves_equal(expand_definitions(through(expand_definitions(lam(_Z)))), derivative):
            raise NetworkError(
                f"the derivative of {name!r} written through its output, {through(sympy.Symbol('a'))}, is not "
                f"the derivative of its definition, {derivative.xreplace({_Z: sympy.Symbol('z')})}"
            )
    function = type(
        class_name(name, user),
        (DefinedFunctionBase,),
        {
            "definition": lam,
            "latex_name": latex,
            "display_name": name,
            "through_output": None if through_output is None else _as_lambda(through_output),
            "__module__": __name__,
            **({"_sympystr": _user_sympystr} if user else {}),
        },
    )
    if recognisable:
        DEFINED_FUNCTIONS.append(function)
    return function


def expand_definitions(expression: sympy.Expr) -> sympy.Expr:
    """Every defined function in ``expression`` replaced by its definition (to the elementary functions)."""
    return expression.replace(lambda e: isinstance(e, DefinedFunctionBase), lambda e: type(e).expanded(e.args[0]))


def recognise(derivative: sympy.Expr, exclude=None) -> sympy.Expr:
    """``derivative`` (an expression in z) as a defined function of z when SymPy proves them equal.

    This is what keeps softplus' derivative the stable σ(z) rather than exp(z)/(exp(z) + 1), and relu's
    the step rather than a Piecewise: the opaque form of a derivative is found, never written by hand.
    """
    expanded = expand_definitions(derivative)
    for function in DEFINED_FUNCTIONS:
        if function is not exclude and proves_equal(expanded, function.expanded(_Z)):
            return function(_Z)
    return derivative


def _define_step():
    step = define_function("step", lambda z: sympy.Piecewise((1, z > 0), (0, True)), r"\mathbf{1}")
    step.__doc__ = "The unit step with step(0) = 0: relu's derivative as torch takes it (relu'(0) = 0)."
    step._latex = lambda self, printer: rf"\mathbf{{1}}\left[{printer._print(self.args[0])} > 0\right]"
    return step


step = _define_step()
sigmoid = define_function("sigmoid", lambda z: 1 / (1 + sympy.exp(-z)), r"\sigma", through_output=lambda a: a * (1 - a))
relu = define_function("relu", lambda z: sympy.Piecewise((z, z > 0), (0, True)), r"\operatorname{relu}")
softplus = define_function("softplus", lambda z: sympy.log(1 + sympy.exp(z)), r"\operatorname{softplus}")
silu = define_function("silu", lambda z: z * sigmoid(z), r"\operatorname{silu}")
elu = define_function("elu", lambda z: sympy.Piecewise((z, z > 0), (sympy.exp(z) - 1, True)), r"\operatorname{elu}")
leaky_relu = define_function(
    "leaky_relu", lambda z: sympy.Piecewise((z, z > 0), (z / 100, True)), r"\operatorname{leaky\,relu}"
)
gelu = define_function("gelu", lambda z: z * (1 + sympy.erf(z / sympy.sqrt(2))) / 2, r"\operatorname{gelu}")


class ActivationBackwardBase(sympy.Function):
    """g ⊙ f'(z) for an element-wise activation f: one local step of the chain rule, kept whole.

    (The "Base" suffix matters: SymPy's printers dispatch a Function subclass only on its own name,
    its parent Function classes, and intermediate classes whose name ends in "Base".)

    Its value is the product with f' from the activation table (``doit``); kept whole, the code printer
    can use torch's fused backward kernel, one pass over memory instead of three (a, 1 − a, the
    products). ``_rules`` makes one subclass per activation; its arguments are (g, z, a = f(z)).
    """

    nargs = 3
    activation = ""
    latex_name = ""

    @staticmethod
    def derivative(z, a):  # replaced in each subclass by the table's f'(z, a)
        raise NotImplementedError

    def doit(self, deep=True, **hints):
        upstream, z, a = (arg.doit(deep=deep, **hints) if deep else arg for arg in self.args)
        return upstream * self.derivative(z, a)

    def _latex(self, printer):
        upstream, z, _ = self.args
        return rf"\left({printer._print(upstream)}\right) \odot {self.latex_name}'\left({printer._print(z)}\right)"


def backward_function(name: str, latex: str, derivative, *, user: bool = False) -> type[ActivationBackwardBase]:
    """The ActivationBackwardBase subclass of one activation (named like ``sigmoid_backward``; namespaced
    like ``user:swish_backward`` for a ``user`` activation, as ``define_function`` names its function)."""
    return type(
        class_name(f"{name}_backward", user),
        (ActivationBackwardBase,),
        {"activation": name, "latex_name": latex, "derivative": staticmethod(derivative)},
    )


# --- operations of the matrix program -------------------------------------------------------------
# Their LaTeX lives here with them; their torch spelling lives in numeric's printer (symbolic never
# imports torch).


class matmul(sympy.Function):  # noqa: N801
    """The matrix product A B (element-wise ``*`` is the Hadamard product ⊙ in the matrix program)."""

    nargs = 2

    def _latex(self, printer):
        return " ".join(printer.parenthesize(arg, 60) for arg in self.args)


class transpose(sympy.Function):  # noqa: N801
    """Aᵀ."""

    nargs = 1

    def _latex(self, printer):
        return rf"{printer.parenthesize(self.args[0], 1000)}^{{\top}}"


class _LinearSum(sympy.Function):
    """A sum over one axis. Sums are linear: sum(c·e) = c·sum(e) for a number c, so -a·sum(-y) reads a·sum(y)."""

    nargs = 1

    @classmethod
    def eval(cls, argument):
        coefficient, rest = argument.as_coeff_Mul()
        return coefficient * cls(rest) if coefficient != 1 else None


class unit_sum(_LinearSum):  # noqa: N801
    """Sum over the units of a layer (the rows), kept as a 1 x B row that broadcasts back."""

    def _latex(self, printer):
        return rf"\mathbf{{1}}^{{\top}}\left({printer._print(self.args[0])}\right)"


class batch_sum(_LinearSum):  # noqa: N801
    """Sum over the samples of a batch (the columns), kept as an n x 1 column."""

    def _latex(self, printer):
        return rf"\left({printer._print(self.args[0])}\right)\mathbf{{1}}"


class softmax(sympy.Function):  # noqa: N801
    """softmax over the units of each sample (column): e^{z_i} / Σ_k e^{z_k}."""

    nargs = 1

    def _latex(self, printer):
        return rf"\operatorname{{softmax}}\left({printer._print(self.args[0])}\right)"


class max_mask(sympy.Function):  # noqa: N801
    """1 at the largest unit of each sample (column), 0 elsewhere (the first one on a tie)."""

    nargs = 1

    def _latex(self, printer):
        return rf"\mathbf{{1}}\left[k = \arg\max {printer._print(self.args[0])}\right]"


class softmax_without_max(sympy.Function):  # noqa: N801
    """softmax over the units of each sample with its largest unit left out (0 there): e^{z_i} / Σ_{k≠k*} e^{z_k}.

    Arguments (z, max_mask(z)), the mask named once in the program.

    It is a_i / (1 − a_{k*}) for the largest output a_{k*}, computed without forming 1 − a_{k*}, which is 0
    in floating point once the softmax saturates.
    """

    nargs = 2

    def _latex(self, printer):
        return rf"\operatorname{{softmax}}_{{k \neq k^*}}\left({printer._print(self.args[0])}\right)"


class batch_size(sympy.Function):  # noqa: N801
    """B, the number of samples (columns) of a batch matrix: the 1/B of ``reduction="mean"``."""

    nargs = 1
    is_positive = True
    is_integer = True

    def _latex(self, printer):
        return "B"

    def _sympystr(self, printer):
        return "B"


class unit_logsumexp(sympy.Function):  # noqa: N801
    """log Σ_k e^{z_k} over the units of each sample (column), a 1 x B row; printed as torch.logsumexp,
    which subtracts the largest z_k first and so never overflows."""

    nargs = 1

    def _latex(self, printer):
        return rf"\log \mathbf{{1}}^{{\top}} e^{{{printer._print(self.args[0])}}}"


class logsumexp(sympy.Function):  # noqa: N801
    """log Σ_k e^{z_k} of one sample's units, with ∂/∂z_i = e^{z_i − logsumexp}: the softmax, written so
    that no e^{z} is ever formed on its own (the finite form; torch.logsumexp computes the value).

    That derivative is written here (``through_value``: z_i and the value logsumexp(z) ↦ ∂/∂z_i), not taken
    by diff of log Σ e^{z_k}, which gives e^{z_i}/Σ e^{z_k} (inf/inf above z = 88.7 in float32);
    tests/test_proofs.py proves it equal to ``sympy.diff`` of that definition at a symbolic width n
    (``_index.layer_facts()["logsumexp_gradient"]``).
    """

    through_value: ClassVar[sympy.Lambda] = sympy.Lambda((_Z, _VALUE), sympy.exp(_Z - _VALUE))

    def fdiff(self, argindex=1):
        return self.through_value(self.args[argindex - 1], self)

    def _eval_rewrite_as_log(self, *arguments, **kwargs):
        return sympy.log(sympy.Add(*(sympy.exp(argument) for argument in arguments)))

    def _eval_evalf(self, prec):
        if not all(argument.is_number and argument.is_extended_real for argument in self.args):
            return None
        largest = max(self.args, key=float)  # m + log Σ e^{z − m}: no overflow in the digits either
        shifted = sympy.Add(*(sympy.exp(argument - largest) for argument in self.args))
        return (largest + sympy.log(shifted))._eval_evalf(prec)

    def _latex(self, printer):
        terms = " + ".join(rf"e^{{{printer._print(argument)}}}" for argument in self.args)
        return rf"\log\left({terms}\right)"
