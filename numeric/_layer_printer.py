"""A model's program (``symbolic._model_program``) as torch code: the layer operations as torch calls.

Each operation's textbook form is stated on the symbolic side (``symbolic/_layer_ops.py``); here it is computed
by torch's own kernels where one computes exactly that form (``conv_transpose`` is the correlation with the
flipped kernel, ``torch.nn.grad.conv*_weight`` the correlation of the input with g, max pooling's indices the
arg-max), and by plain tensor arithmetic otherwise. Nothing here calls autograd.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from symbolic import matmul
from symbolic._layer_ops import ints

from ._printer import MatrixTorchPrinter


def _tuple(value: sympy.Tuple) -> str:
    return repr(ints(value))


def _dims(value: sympy.Tuple) -> int:
    """1 or 2: the spatial axes of a convolution or pooling, read from its stride's or kernel's length."""
    return len(value)


class LayerTorchPrinter(MatrixTorchPrinter):
    """Prints a model's program: tensors are [B, *sample] (samples are rows); ``*`` is element-wise."""

    printmethod = "_chainrule_torch_layer"

    def __init__(self, same_shape: Mapping[sympy.Expr, tuple[sympy.Symbol, ...]] | None = None, settings=None):
        super().__init__(settings)
        # a sum or product -> its operands of the result's own shape (``ModelStep.same_shape``)
        self.same_shape = dict(same_shape or {})

    def _print_batch_size(self, expr):
        # B of reduction="mean": the argument is the whole x argument, [B, *input_shape], samples as rows
        return f"{self.parenthesize(expr.args[0], 999)}.shape[0]"

    def _print_Pow(self, expr):
        base, exponent = expr.args
        if exponent == sympy.Rational(-1, 2):  # 1/σ̂ = (σ² + ε)^(-1/2): one call
            return f"torch.rsqrt({self._print(base)})"
        return super()._print_Pow(expr)

    def _tensor(self, expr) -> str:
        return self.parenthesize(expr, 999)

    def _print_axis_sum(self, expr):
        argument, axes = expr.args
        return f"{self._tensor(argument)}.sum({_tuple(axes)})"

    def _print_axis_mean(self, expr):
        argument, axes = expr.args
        return f"{self._tensor(argument)}.mean({_tuple(axes)}, keepdim=True)"

    def _print_along_channels(self, expr):
        vector, trailing = expr.args
        return f"{self._tensor(vector)}[:, {', '.join(['None'] * int(trailing))}]"

    def _print_norm_backward(self, expr):
        ghat, xhat, rstd = (self.parenthesize(arg, 999) for arg in expr.args[:3])
        mean = f"mean({_tuple(expr.args[3])}, keepdim=True)"
        # −mean(ĝ) − x̂ ⊙ mean(ĝ ⊙ x̂) in one addcmul (both means taken first), then + ĝ and ⊙ 1/σ̂ in place:
        # one new tensor of x's shape (and ĝ ⊙ x̂ for a moment), not four
        return f"torch.addcmul(-{ghat}.{mean}, {xhat}, ({ghat} * {xhat}).{mean}, value=-1).add_({ghat}).mul_({rstd})"

    def _print_Add(self, expr, order=None):
        # β + γ ⊙ x̂ (any u + v ⊙ w of tensors) as one torch.addcmul: one pass, no temporary for the product
        if len(expr.args) == 2 and not expr.has(matmul):
            for product, other in (expr.args, expr.args[::-1]):
                factors = product.args if isinstance(product, sympy.Mul) else ()
                if len(factors) == 2 and not any(f.is_number for f in factors) and not other.is_number:
                    left, right = (self._print(f) for f in factors)
                    return f"torch.addcmul({self._print(other)}, {left}, {right})"
        return super()._print_Add(expr, order)

    def print_into(self, expr: sympy.Expr, buffers: frozenset[sympy.Symbol]) -> str:
        """As the dense printer, and a sum or product of two written into an operand of the result's shape
        that dies on this line (a residual's sums, γ ⊙ g)."""
        dying = [arg for arg in self.same_shape.get(expr, ()) if arg in buffers]
        if dying and len(expr.args) == 2 and isinstance(expr, (sympy.Add, sympy.Mul)):
            (other,) = [arg for arg in expr.args if arg is not dying[0]]
            method = "add_" if isinstance(expr, sympy.Add) else "mul_"
            return f"{self._print(dying[0])}.{method}({self._print(other)})"
        return super().print_into(expr, buffers)

    def _print_conv(self, expr):
        x, weight, bias, stride, padding = expr.args
        bias_text = "None" if bias == 0 else self._print(bias)
        return (
            f"torch.nn.functional.conv{_dims(stride)}d({self._print(x)}, {self._print(weight)}, {bias_text}, "
            f"{_tuple(stride)}, {_tuple(padding)})"
        )

    def _print_conv_input_grad(self, expr):
        g, weight, stride, padding, leftover = expr.args
        # the transposed convolution: the correlation of g with the flipped kernel, channels swapped
        return (
            f"torch.nn.functional.conv_transpose{_dims(stride)}d({self._print(g)}, {self._print(weight)}, None, "
            f"{_tuple(stride)}, {_tuple(padding)}, {_tuple(leftover)})"
        )

    def _print_conv_weight_grad(self, expr):
        x, g, shape, stride, padding = expr.args
        # the correlation of the padded input with g (torch's kernel for it; no autograd)
        return (
            f"torch.nn.grad.conv{_dims(stride)}d_weight({self._print(x)}, {_tuple(shape)}, {self._print(g)}, "
            f"{_tuple(stride)}, {_tuple(padding)})"
        )

    def _print_pool_argmax(self, expr):
        x, kernel, stride = expr.args
        return (
            f"torch.nn.functional.max_pool{_dims(kernel)}d({self._print(x)}, {_tuple(kernel)}, {_tuple(stride)}, "
            "return_indices=True)[1]"
        )

    def _print_take_at(self, expr):
        x, where = (self._tensor(arg) for arg in expr.args)
        return f"{x}.flatten(2).gather(2, {where}.flatten(2)).view_as({where})"

    def _print_route_to_argmax(self, expr):
        g, where, shape = expr.args
        channels, *spatial = ints(shape)
        g_text, where_text = self._tensor(g), self._tensor(where)
        # scatter_add: where windows overlap, two of them may send their gradient to the same entry
        return (
            f"{g_text}.new_zeros({g_text}.shape[0], {channels}, {int(sympy.prod(spatial))})"
            f".scatter_add_(2, {where_text}.flatten(2), {g_text}.flatten(2))"
            f".view({g_text}.shape[0], {', '.join(map(str, ints(shape)))})"
        )

    def _print_avg_pool(self, expr):
        x, kernel, stride = expr.args
        return f"torch.nn.functional.avg_pool{_dims(kernel)}d({self._print(x)}, {_tuple(kernel)}, {_tuple(stride)})"

    def _print_spread_over_windows(self, expr):
        g, kernel, stride, leftover, shape = expr.args
        dims, size = _dims(kernel), int(sympy.prod(ints(kernel)))
        g_text = self._tensor(g)
        # every channel on its own: the transposed convolution with a kernel of 1/|K|
        spread = (
            f"torch.nn.functional.conv_transpose{dims}d({g_text}.flatten(0, 1).unsqueeze(1), "
            f"{g_text}.new_full((1, 1, {', '.join(map(str, ints(kernel)))}), 1 / {size}), None, {_tuple(stride)}, 0, "
            f"{_tuple(leftover)})"
        )
        return f"{spread}.view({g_text}.shape[0], {', '.join(map(str, ints(shape)))})"

    def _print_flatten_sample(self, expr):
        return f"{self._tensor(expr.args[0])}.flatten(1)"

    def _print_unflatten_sample(self, expr):
        g, shape = expr.args
        return f"{self._tensor(g)}.view(-1, {', '.join(map(str, ints(shape)))})"
