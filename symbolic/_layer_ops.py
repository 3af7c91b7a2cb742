"""The operations of a model's gradient program that a dense network's program does not need.

A model's program (``_model_program``) works on whole tensors with samples as ROWS, as torch does: a batch is
[B, *sample]. As in the dense matrix program (``_functions``), a symbol stands for a whole tensor and every
ordinary SymPy operation (``+``, ``*``, ``sigmoid``) acts element-wise, broadcasting as torch does; ``matmul``
and ``transpose`` are the dense program's. The functions here are the rest: the sums and means over axes that
normalisation and biases need, and each layer's textbook vector-Jacobian product where it is not a product
of matrices (convolution, pooling, flatten, normalisation).

Each class states its textbook form in index notation (its docstring) and its LaTeX; what it computes is
the textbook form: ``numeric/_layer_printer.py`` prints it as torch calls, and tests/test_model_compile.py
checks every one against autograd. Options that are not tensors (axes, strides, shapes) are SymPy Tuples of
Integers, so that the program stays a plain SymPy expression tree.
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy


def integers(values: Iterable[int]) -> sympy.Tuple:
    """A tuple of ints as a SymPy Tuple (an operation's option)."""
    return sympy.Tuple(*(sympy.Integer(v) for v in values))


def ints(value: sympy.Tuple) -> tuple[int, ...]:
    """A SymPy Tuple option back as Python ints."""
    return tuple(int(v) for v in value)


def _tensor(printer, expr) -> str:
    return printer.parenthesize(expr, 1000)


def _axes_text(axes: sympy.Tuple) -> str:
    return ",".join(str(int(axis)) for axis in axes)


class LayerOperation(sympy.Function):
    """A program operation on whole tensors (not element-wise). Its text form is its name and tensor
    arguments; the options follow in brackets."""

    tensors = 1  # how many leading arguments are tensors; the rest are options

    def _sympystr(self, printer):
        tensors = ", ".join(printer._print(arg) for arg in self.args[: self.tensors])
        options = "; ".join(
            str(ints(arg)) if isinstance(arg, sympy.Tuple) else str(arg) for arg in self.args[self.tensors :]
        )
        return f"{type(self).__name__}({tensors}{'; ' + options if options else ''})"


class axis_sum(LayerOperation):  # noqa: N801
    """Σ over ``axes``: s[j] = Σ_{b, ...} e[b, j, ...], the axes dropped. A bias's gradient (Linear: Σ_b g[b, j];
    Conv: Σ_{b, i} g[b, c, i]), and γ's and β's (Σ g ⊙ x̂, Σ g) sum the upstream gradient over the axes along
    which one parameter entry is shared."""

    nargs = 2

    @classmethod
    def eval(cls, argument, axes):
        coefficient, rest = argument.as_coeff_Mul()  # linear: Σ(c·e) = c·Σ e for a number c
        return coefficient * cls(rest, axes) if coefficient != 1 else None

    def _latex(self, printer):
        return rf"\sum_{{{_axes_text(self.args[1])}}} {_tensor(printer, self.args[0])}"


class axis_mean(LayerOperation):  # noqa: N801
    """The mean over ``axes``, kept as axes of size 1 so that it broadcasts back: m = (1/N) Σ_{k} e[..., k, ...]
    with N the number of entries along the axes. LayerNorm's μ and σ² are means over a sample's features
    (axes 1, ...), BatchNorm's over the batch and the spatial axes of one channel (axes 0, 2, ...)."""

    nargs = 2

    @classmethod
    def eval(cls, argument, axes):
        coefficient, rest = argument.as_coeff_Mul()
        return coefficient * cls(rest, axes) if coefficient != 1 else None

    def _latex(self, printer):
        return rf"\operatorname{{mean}}_{{{_axes_text(self.args[1])}}}\left({printer._print(self.args[0])}\right)"


class along_channels(LayerOperation):  # noqa: N801
    """A per-channel vector v [C] standing against [B, C, *spatial]: v[c] at every position of channel c
    (v reshaped to [C, 1, ...], ``trailing`` spatial axes). BatchNorm's γ and β after a convolution."""

    nargs = 2

    def _latex(self, printer):
        return printer._print(self.args[0])


class norm_backward(LayerOperation):  # noqa: N801
    """The vector-Jacobian product of normalisation, x̂ = (x − μ)/σ̂ with μ, σ² the mean and biased variance
    over ``axes`` and σ̂ = √(σ² + ε), given ĝ = γ ⊙ g (g = ∂L/∂y upstream of y = γ ⊙ x̂ + β):

        ∂L/∂x_j = (1/σ̂) (ĝ_j − mean_k(ĝ_k) − x̂_j · mean_k(ĝ_k x̂_k)),

    the mean over the normalised axes (a sample's features for LayerNorm, the batch of one channel for
    BatchNorm). Arguments (ĝ, x̂, 1/σ̂, axes). symbolic/_norm.py derives it from the definition with
    ``sympy.diff`` and proves it equal to the chain rule along the three paths from x.
    """

    nargs = 4
    tensors = 3

    def doit(self, deep=True, **hints):
        ghat, xhat, rstd, axes = self.args
        return rstd * (ghat - axis_mean(ghat, axes) - xhat * axis_mean(ghat * xhat, axes))

    def _latex(self, printer):
        ghat, xhat = (printer._print(arg) for arg in self.args[:2])
        return (
            rf"{printer.parenthesize(self.args[2], 1000)} \odot \left({ghat} - \overline{{{ghat}}}"
            rf" - {xhat} \odot \overline{{{ghat} \odot {xhat}}}\right)"
        )


class conv(LayerOperation):  # noqa: N801
    """Cross-correlation, as torch's Conv1d/Conv2d compute it (W [O, C, *k], the input padded with ``padding``
    zeros on both sides of each spatial axis, moved by ``stride``):

        z[b, o, i] = b_o + Σ_{c, k} W[o, c, k] · x_pad[b, c, i·s + k]

    (i and k one index per spatial axis). Arguments (x, W, b or 0, stride, padding)."""

    nargs = 5
    tensors = 3

    def _latex(self, printer):
        x, weight, bias = self.args[:3]
        text = rf"{printer._print(weight)} \star {printer._print(x)}"
        return text if bias == 0 else rf"{text} + {printer._print(bias)}"


class conv_input_grad(LayerOperation):  # noqa: N801
    """∂L/∂x of a convolution: the transposed convolution of g, a correlation with the flipped kernel,

        ∂L/∂x[b, c, i] = Σ_{o, k} g[b, o, j] · W[o, c, k]   over i + p = j·s + k,

    i.e. for stride 1 the correlation of g (padded by k − 1 − p) with W flipped along its spatial axes and its
    two channel axes swapped. Arguments (g, W, stride, padding, output_padding): output_padding is the
    part of the input the last window did not reach ((n + 2p − k) mod s), whose gradient is 0."""

    nargs = 5
    tensors = 2

    def _latex(self, printer):
        g, weight = (printer._print(arg) for arg in self.args[:2])
        return rf"{g} \star \operatorname{{flip}}\left({weight}\right)^{{\top}}"


class conv_weight_grad(LayerOperation):  # noqa: N801
    """∂L/∂W of a convolution: the correlation of the (padded) input with the upstream gradient,

        ∂L/∂W[o, c, k] = Σ_{b, j} g[b, o, j] · x_pad[b, c, j·s + k].

    Arguments (x, g, W's shape, stride, padding)."""

    nargs = 5
    tensors = 2

    def _latex(self, printer):
        x, g = (printer._print(arg) for arg in self.args[:2])
        return rf"{x} \star {g}"


class pool_argmax(LayerOperation):  # noqa: N801
    """Where each max-pooling window has its largest entry: j*[b, c, j] = argmax_{i ∈ window j} x[b, c, i]
    (an index into the flattened spatial axes, the first on a tie, as torch's max_pool picks it).
    Arguments (x, kernel, stride)."""

    nargs = 3

    def _latex(self, printer):
        return rf"\arg\max_{{\text{{window}}}} {_tensor(printer, self.args[0])}"


class take_at(LayerOperation):  # noqa: N801
    """Max pooling's output read at its arg-max: p[b, c, j] = x[b, c, j*[b, c, j]]. Arguments (x, j*)."""

    nargs = 2
    tensors = 2

    def _latex(self, printer):
        return rf"{_tensor(printer, self.args[0])}_{{{printer._print(self.args[1])}}}"


class route_to_argmax(LayerOperation):  # noqa: N801
    """Max pooling's vector-Jacobian product: each window's gradient goes to its arg-max, nowhere else,

        ∂L/∂x[b, c, i] = Σ_j g[b, c, j] · 𝟙[i = j*[b, c, j]]

    (summed where overlapping windows share an arg-max). Arguments (g, j*, one sample's input shape)."""

    nargs = 3
    tensors = 2

    def _latex(self, printer):
        g, where = (printer._print(arg) for arg in self.args[:2])
        return rf"\sum_j {g}_j \, \mathbf{{1}}\left[i = {where}_j\right]"


class avg_pool(LayerOperation):  # noqa: N801
    """Average pooling: p[b, c, j] = (1/|K|) Σ_{k ∈ K} x[b, c, j·s + k]. Arguments (x, kernel, stride)."""

    nargs = 3

    def _latex(self, printer):
        return rf"\operatorname{{avgpool}}\left({printer._print(self.args[0])}\right)"


class spread_over_windows(LayerOperation):  # noqa: N801
    """Average pooling's vector-Jacobian product: each window's gradient spread evenly over its entries,

        ∂L/∂x[b, c, i] = Σ_j g[b, c, j] / |K| · 𝟙[i ∈ window j]

    (the transposed convolution of g with a kernel of 1/|K|). Arguments (g, kernel, stride, output_padding,
    one sample's input shape)."""

    nargs = 5

    def _latex(self, printer):
        return rf"\sum_{{j \ni i}} \frac{{{printer._print(self.args[0])}_j}}{{|K|}}"


class flatten_sample(LayerOperation):  # noqa: N801
    """A sample's [C, ...] as one row of features: f[b, (c, i)] = x[b, c, i] (no arithmetic)."""

    nargs = 1

    def _latex(self, printer):
        return rf"\operatorname{{flatten}}\left({printer._print(self.args[0])}\right)"


class unflatten_sample(LayerOperation):  # noqa: N801
    """Flatten's vector-Jacobian product: the row of gradients put back into the sample's shape,
    ∂L/∂x[b, c, i] = g[b, (c, i)]. Arguments (g, one sample's shape)."""

    nargs = 2

    def _latex(self, printer):
        return rf"\operatorname{{reshape}}\left({printer._print(self.args[0])}\right)"


# The operations whose result is a view of their first argument in torch (no copy): the compiled code
# never writes into either name in place.
VIEWS = (flatten_sample, unflatten_sample, along_channels)
