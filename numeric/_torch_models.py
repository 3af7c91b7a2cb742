"""The bridge to torch.nn: the autograd reference, and ``from_torch`` for models people already have.

The reference runs the network as an ``nn.Sequential`` of ``nn.Linear`` and activation modules, samples
as rows, and calls ``backward()``: a path that shares no code with the derivation or its printers, only
the activation table's module names. The reference losses are written here with torch's own functions,
independently of the SymPy definitions in ``symbolic._rules`` (a test checks the two agree). An activation
or loss a user defined (``Activation.define``, ``Loss.define``) has no torch module: the reference
evaluates its definition, expanded to elementary functions, through SymPy's plain TorchPrinter (lambdify),
and lets autograd differentiate that, so ``verify`` still compares against a derivative SymPy did not take.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import sympy
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual spelling

from symbolic import ACTIVATIONS, LOSSES, Activation, Loss, Network, NetworkError, UnsupportedModule
from symbolic._functions import expand_definitions
from symbolic._rules import elu_activation, leaky_relu_activation

from ._checks import check_inputs

# Per-sample losses summed over a batch whose samples are rows.
REFERENCE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "half_sse": lambda out, target: 0.5 * F.mse_loss(out, target, reduction="sum"),
    "sse": lambda out, target: F.mse_loss(out, target, reduction="sum"),
    "mse": lambda out, target: F.mse_loss(out, target, reduction="none").mean(dim=1).sum(),
    "bce": lambda out, target: -(target * torch.log(out) + (1 - target) * torch.log1p(-out)).sum(),
    "cross_entropy": lambda out, target: -(target * torch.log(out)).sum(),
}

_MODULE_NAMES = {activation.torch_module: name for name, activation in ACTIVATIONS.items()}


def _lambdify_torch(variables, expression: sympy.Expr) -> Callable:
    """``expression`` (defined functions expanded, numbers as floats) as a torch function, by SymPy's printer."""
    elementary = expand_definitions(expression).evalf(17)
    return sympy.lambdify(variables, elementary, modules=[{"torch": torch}, "torch"])


class DefinedActivation(nn.Module):
    """A user-defined activation as a torch module: its SymPy definition, lambdified."""

    def __init__(self, activation: Activation):
        super().__init__()
        self.activation = activation
        z = sympy.Symbol("z", real=True)
        self.function = _lambdify_torch([z], activation.function(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        result = self.function(z)
        return result if isinstance(result, torch.Tensor) else torch.full_like(z, float(result))

    def extra_repr(self) -> str:
        return self.activation.name


@functools.lru_cache(maxsize=64)
def _reference_loss(loss: Loss) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The torch reference of a loss: the hand-written one for built-ins, else the lambdified definition."""
    if loss.name in REFERENCE_LOSSES and LOSSES.get(loss.name) == loss:
        return REFERENCE_LOSSES[loss.name]
    p, t = sympy.symbols("p t", real=True)
    n = sympy.Symbol("n", integer=True, positive=True)
    per_unit = _lambdify_torch([p, t, n], loss.per_unit(p, t, n))
    return lambda out, target: per_unit(out, target, out.shape[-1]).sum()


def _activation_module(activation: Activation) -> nn.Module:
    if activation.torch_module is None:
        return DefinedActivation(activation)
    module_class = getattr(nn, activation.torch_module)
    if activation.name == "softmax":
        return module_class(dim=-1)
    return module_class(**dict(activation.torch_arguments))


def to_torch(network: Network, params: Mapping[str, torch.Tensor] | None = None) -> nn.Sequential:
    """The network as an ``nn.Sequential`` (samples as rows); ``params`` (column-layout names) are copied in."""
    layers: list[nn.Module] = []
    reference = next(iter(params.values())) if params else None
    for layer in range(1, network.depth + 1):
        linear = nn.Linear(network.sizes[layer - 1], network.sizes[layer], bias=network.bias)
        if reference is not None:
            linear = linear.to(dtype=reference.dtype, device=reference.device)
            with torch.no_grad():
                linear.weight.copy_(params[f"W{layer}"])
                if network.bias:
                    linear.bias.copy_(params[f"b{layer}"].reshape(-1))
        layers += [linear, _activation_module(network.activation_rules[layer - 1])]
    return nn.Sequential(*layers)


def _module_gradients(module: nn.Sequential, network: Network) -> dict[str, torch.Tensor]:
    linears = [m for m in module if isinstance(m, nn.Linear)]
    gradients: dict[str, torch.Tensor] = {}
    for layer, linear in enumerate(linears, start=1):
        gradients[f"W{layer}"] = linear.weight.grad
        if network.bias:
            gradients[f"b{layer}"] = linear.bias.grad.reshape(-1, 1)
    return gradients


def autograd_loss_and_gradients(
    network: Network, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reference: torch's forward pass and ``loss.backward()``. x, y and params as for compiled functions."""
    check_inputs(network, x, y, params)
    module = to_torch(network, params)
    loss = _reference_loss(network.loss_rule)(module(x.T), y.T)
    loss.backward()
    return loss.detach(), _module_gradients(module, network)


def autograd_gradients(
    network: Network, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Gradients of the batch loss by torch autograd, the reference chainrule is checked against."""
    return autograd_loss_and_gradients(network, x, y, params)[1]


def _unsupported(position: int, module: nn.Module, why: str) -> UnsupportedModule:
    allowed = ", ".join(["Linear", *(f"{cls}" for cls in _MODULE_NAMES)])
    return UnsupportedModule(f"module [{position}] {module!r}: {why}; supported: nn.Sequential of {allowed}")


def from_torch(module: nn.Module, loss: str | Loss = "half_sse") -> tuple[Network, dict[str, torch.Tensor]]:
    """An ``nn.Sequential`` of Linear and activation modules as a Network and its parameters.

    The parameters are detached copies named W1, b1, W2, ... (Linear's weight is already [out, in]);
    two Linear layers in a row get an ``identity`` activation between them.
    """
    if not isinstance(module, nn.Sequential):
        raise UnsupportedModule(f"from_torch takes an nn.Sequential; got {type(module).__name__}")
    sizes: list[int] = []
    activations: list[str | Activation] = []
    params: dict[str, torch.Tensor] = {}
    biases: set[bool] = set()
    pending_activation = False  # a Linear whose activation has not been seen yet
    for position, child in enumerate(module):
        if isinstance(child, nn.Linear):
            if pending_activation:
                activations.append("identity")
            if sizes and child.in_features != sizes[-1]:
                raise _unsupported(
                    position, child, f"in_features {child.in_features} does not match the previous width {sizes[-1]}"
                )
            if not sizes:
                sizes.append(child.in_features)
            sizes.append(child.out_features)
            layer = len(sizes) - 1
            params[f"W{layer}"] = child.weight.detach().clone()
            biases.add(child.bias is not None)
            if child.bias is not None:
                params[f"b{layer}"] = child.bias.detach().clone().reshape(-1, 1)
            pending_activation = True
            continue
        name = _MODULE_NAMES.get(type(child).__name__)
        if name is None or type(child) is not getattr(nn, type(child).__name__, None):
            raise _unsupported(position, child, "not a supported module")
        if not pending_activation:
            raise _unsupported(position, child, "an activation must follow a Linear layer")
        if name == "softplus" and (child.beta != 1 or child.threshold != 20):
            raise _unsupported(position, child, "Softplus is supported with its default beta=1 and threshold=20 only")
        if name == "softmax" and child.dim not in (-1, 1):
            raise _unsupported(position, child, f"Softmax must act on the features (dim=-1); got dim={child.dim}")
        if name == "gelu" and child.approximate != "none":
            raise _unsupported(position, child, "GELU is supported in its exact erf form (approximate='none') only")
        if name == "leaky_relu":
            name = leaky_relu_activation(float(child.negative_slope))
        if name == "elu":
            name = elu_activation(float(child.alpha))
        activations.append(name)
        pending_activation = False
    if not sizes:
        raise UnsupportedModule("from_torch: the nn.Sequential has no nn.Linear layer")
    if pending_activation:
        activations.append("identity")
    if len(biases) > 1:
        raise UnsupportedModule("from_torch: either every nn.Linear has a bias or none has; this model mixes them")
    if not isinstance(loss, Loss) and loss not in LOSSES:
        raise NetworkError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    network = Network(sizes, activations=activations, loss=loss, bias=biases == {True})
    return network, params
