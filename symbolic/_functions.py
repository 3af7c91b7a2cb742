"""SymPy functions that chainrule needs and SymPy does not have.

Each activation is an *opaque* ``Function`` whose ``fdiff`` is its derivative, next to its definition
(as micrograd keeps each backward rule beside its forward). Opaque matters: written out as
``1/(1 + exp(-z))``, SymPy differentiates sigmoid into ``exp(-z)/(1 + exp(-z))**2``, which is NaN at
z = -100 in float32 and makes every expression larger (shared/design-notes.md, section 4).

The second group are the non-element-wise operations of the *matrix program* (see ``_matrix``): there a
symbol stands for a whole matrix and every ordinary SymPy operation (``+``, ``*``, ``sigmoid``) acts
element-wise, so only products, transposes and sums need functions of their own.
"""

from __future__ import annotations

import sympy
from sympy import S


def _numeric_argument(function: sympy.Function) -> sympy.Expr | None:
    """The argument if it is a plain number (so the function can evaluate), else None."""
    (argument,) = function.args
    return argument if argument.is_number and argument.is_extended_real else None


class sigmoid(sympy.Function):  # noqa: N801 - SymPy names functions in lower case
    r"""The logistic function σ(z) = 1 / (1 + e^{-z}), with derivative σ(z)(1 - σ(z))."""

    nargs = 1

    @classmethod
    def eval(cls, argument):
        if argument.is_zero:
            return S.Half
        return None

    def fdiff(self, argindex=1):
        return self * (1 - self)

    def _eval_rewrite_as_exp(self, argument, **kwargs):
        return 1 / (1 + sympy.exp(-argument))

    def _eval_evalf(self, prec):
        argument = _numeric_argument(self)
        if argument is None:
            return None
        return self._eval_rewrite_as_exp(argument)._eval_evalf(prec)

    def _latex(self, printer):
        return rf"\sigma\left({printer._print(self.args[0])}\right)"


class step(sympy.Function):  # noqa: N801
    """The unit step with step(0) = 0: the derivative of relu, as torch takes it (relu'(0) = 0)."""

    nargs = 1

    @classmethod
    def eval(cls, argument):
        if argument.is_number and argument.is_extended_real:
            return S.One if argument > 0 else S.Zero
        return None

    def fdiff(self, argindex=1):
        return S.Zero  # zero wherever it is differentiable

    def _latex(self, printer):
        return rf"\mathbf{{1}}\left[{printer._print(self.args[0])} > 0\right]"


class relu(sympy.Function):  # noqa: N801
    """max(z, 0), with derivative step(z)."""

    nargs = 1

    @classmethod
    def eval(cls, argument):
        if argument.is_number and argument.is_extended_real:
            return argument if argument > 0 else S.Zero
        return None

    def fdiff(self, argindex=1):
        return step(self.args[0])

    def _latex(self, printer):
        return rf"\operatorname{{relu}}\left({printer._print(self.args[0])}\right)"


class softplus(sympy.Function):  # noqa: N801
    """log(1 + e^z), with derivative σ(z)."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_rewrite_as_log(self, argument, **kwargs):
        return sympy.log(1 + sympy.exp(argument))

    def _eval_evalf(self, prec):
        argument = _numeric_argument(self)
        if argument is None:
            return None
        return self._eval_rewrite_as_log(argument)._eval_evalf(prec)

    def _latex(self, printer):
        return rf"\operatorname{{softplus}}\left({printer._print(self.args[0])}\right)"


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


def backward_function(name: str, latex: str, derivative) -> type[ActivationBackwardBase]:
    """The ActivationBackwardBase subclass of one activation (named like ``sigmoid_backward``)."""
    return type(
        f"{name}_backward",
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
    that no e^{z} is ever formed on its own (the finite form; torch.logsumexp computes the value)."""

    def fdiff(self, argindex=1):
        return sympy.exp(self.args[argindex - 1] - self)

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
