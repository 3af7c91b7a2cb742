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
import inspect
from collections.abc import Callable, Mapping

import sympy
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - the usual spelling

from symbolic import (
    ACTIVATIONS,
    LOSSES,
    Activation,
    InputError,
    InputTypeError,
    Loss,
    Network,
    NetworkError,
    UnsupportedModule,
)
from symbolic._functions import expand_definitions
from symbolic._model import Model
from symbolic._network import REDUCTIONS

from ._checks import HALF_PRECISION, HALF_PRECISION_REASON, check_inputs
from ._torch_graph import MODULE_ACTIVATIONS, Refused, activation_of, read_model

# Per-sample losses summed over a batch whose samples are rows.
REFERENCE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "half_sse": lambda out, target: 0.5 * F.mse_loss(out, target, reduction="sum"),
    "sse": lambda out, target: F.mse_loss(out, target, reduction="sum"),
    "mse": lambda out, target: F.mse_loss(out, target, reduction="none").mean(dim=1).sum(),
    "bce": lambda out, target: -(target * torch.log(out) + (1 - target) * torch.log1p(-out)).sum(),
    "mean_bce": lambda out, target: F.binary_cross_entropy(out, target, reduction="none").mean(dim=1).sum(),
    "cross_entropy": lambda out, target: -(target * torch.log(out)).sum(),
    "softmax_cross_entropy": lambda out, target: F.cross_entropy(out, target, reduction="sum"),
    "bce_with_logits": lambda out, target: F.binary_cross_entropy_with_logits(out, target, reduction="sum"),
    "mean_bce_with_logits": lambda out, target: (
        F.binary_cross_entropy_with_logits(out, target, reduction="none").mean(dim=1).sum()
    ),
}


def reference_loss(network: Network, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The batch loss of ``network`` by torch's functions (samples as rows), with its reduction."""
    total = _reference_loss(network.loss_rule)(out, target)
    return total / out.shape[0] if network.reduction == "mean" else total


_MODULE_NAMES = MODULE_ACTIVATIONS


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


class ExactSoftplus(nn.Module):
    """log(1 + e^z) for every z, as chainrule defines softplus: logaddexp(z, 0), whose autograd derivative
    is σ(z). nn.Softplus() returns z itself above its threshold 20 (and 1 as the derivative), off by up to
    e^-20 ≈ 2.1e-9 there; the reference is the exact function, like the compiled gradients."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logaddexp(z, z.new_zeros(()))


def _activation_module(activation: Activation, exact: bool = False) -> nn.Module:
    if activation.torch_module is None:
        return DefinedActivation(activation)
    if exact and activation == ACTIVATIONS["softplus"]:
        return ExactSoftplus()
    module_class = getattr(nn, activation.torch_module)
    if activation.name == "softmax":
        return module_class(dim=-1)
    return module_class(**dict(activation.torch_arguments))


def to_torch(network: Network | Model, params: Mapping[str, torch.Tensor] | None = None) -> nn.Sequential:
    """The network as an ``nn.Sequential`` (samples as rows); ``params`` (column-layout names) are copied in.
    A ``Model`` gives ``_model_torch.to_torch_model``'s modules (its params in torch's shapes).

    Made of torch's own modules, so ``from_torch`` reads it back; its nn.Softplus takes torch's threshold
    (z itself above 20), which chainrule's softplus does not (the autograd reference uses ``ExactSoftplus``).
    """
    if isinstance(network, Model):  # layers beyond dense stacks: numeric/_model_torch.py
        from ._model_torch import to_torch_model

        return to_torch_model(network, params, _activation_module)
    return _sequential(network, params, exact=False)


def _sequential(network: Network, params: Mapping[str, torch.Tensor] | None, exact: bool) -> nn.Sequential:
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
        layers += [linear, _activation_module(network.activation_rules[layer - 1], exact)]
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
    network: Network,
    x: torch.Tensor,
    y: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    wrt: tuple[str, ...] = (),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The reference: torch's forward pass and ``loss.backward()``. x, y and params as for compiled functions;
    ``wrt=("x",)`` adds ``"x"``, the gradient with respect to the input ([n_in, B], like x)."""
    check_inputs(network, x, y, params)
    module = _sequential(network, params, exact=True)  # softplus exactly log(1 + e^z), as chainrule's
    inputs = x.detach().T.clone().requires_grad_("x" in wrt)  # samples as rows, a leaf of its own
    loss = reference_loss(network, module(inputs), y.T)
    loss.backward()
    gradients = _module_gradients(module, network)
    if "x" in wrt:
        gradients["x"] = inputs.grad.T
    return loss.detach(), gradients


def autograd_gradients(
    network: Network, x: torch.Tensor, y: torch.Tensor, params: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Gradients of the batch loss by torch autograd, the reference chainrule is checked against."""
    return autograd_loss_and_gradients(network, x, y, params)[1]


def _unsupported(position: int, module: nn.Module, why: str) -> UnsupportedModule:
    allowed = ", ".join(["Linear", *(f"{cls}" for cls in _MODULE_NAMES)])
    return UnsupportedModule(f"module [{position}] {module!r}: {why}; supported: nn.Sequential of {allowed}")


# nn loss modules: the LOSSES name for reduction="sum", and for "mean" (None: the same name). torch's
# element-wise losses take their mean over every element, samples and output units; the table's "mse"
# and "mean_bce*" are means over the units, so with reduction="mean" they are exactly torch's.
_LOSS_MODULES: dict[type[nn.Module], tuple[str, str]] = {
    nn.MSELoss: ("sse", "mse"),
    nn.BCELoss: ("bce", "mean_bce"),
    nn.BCEWithLogitsLoss: ("bce_with_logits", "mean_bce_with_logits"),
    nn.CrossEntropyLoss: ("softmax_cross_entropy", "softmax_cross_entropy"),
}


# Constructor arguments that are not options of the loss: reduction is read above; size_average and reduce
# are torch's legacy spellings of it, folded into ``reduction`` by the constructor.
_READ_ELSEWHERE = frozenset({"self", "reduction", "size_average", "reduce"})


def _non_default_options(loss: nn.Module) -> list[str]:
    """``name=value`` for every option of ``loss`` (its constructor's arguments, read from its signature, so
    an option a later torch adds is caught too) that differs from its default: weight, pos_weight,
    ignore_index, label_smoothing, ... each changes the gradient, and chainrule's tables compute none."""
    changed = []
    for name, parameter in inspect.signature(type(loss).__init__).parameters.items():
        if name in _READ_ELSEWHERE or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        value = getattr(loss, name, parameter.default)
        default = parameter.default
        if isinstance(value, torch.Tensor) or isinstance(default, torch.Tensor):
            differs = not (value is None and default is None)
        else:
            differs = value != default
        if differs:
            shown = f"tensor of shape {list(value.shape)}" if isinstance(value, torch.Tensor) else repr(value)
            changed.append(f"{name}={shown}")
    return changed


def _loss_from_module(loss: nn.Module) -> tuple[str, str]:
    """``(loss name, reduction)`` for one of torch's loss modules, or UnsupportedModule saying why not."""
    names = _LOSS_MODULES.get(type(loss))
    allowed = ", ".join(f"nn.{cls.__name__}" for cls in _LOSS_MODULES)
    if names is None:
        raise UnsupportedModule(f"loss module {loss!r} is not supported; supported: {allowed}, or a loss name")
    if loss.reduction not in REDUCTIONS:
        raise UnsupportedModule(
            f"{loss!r} has reduction={loss.reduction!r}; supported: {', '.join(map(repr, REDUCTIONS))} "
            "(a gradient is of one number)"
        )
    changed = _non_default_options(loss)
    if changed:
        names = ", ".join(option.split("=", 1)[0] for option in changed)
        raise UnsupportedModule(
            f"{type(loss).__name__}({', '.join(changed)}): {names} is not supported (it changes the gradient, "
            "which chainrule's loss does not compute); use the loss without it"
        )
    return names[loss.reduction == "mean"], loss.reduction


def torch_parameter_names(module: nn.Sequential) -> dict[str, str]:
    """chainrule's parameter names -> ``module.named_parameters()`` names: ``{"W1": "0.weight", ...}``."""
    names: dict[str, str] = {}
    layer = 0
    for child_name, child in module.named_children():
        if isinstance(child, nn.Linear):
            layer += 1
            names[f"W{layer}"] = f"{child_name}.weight"
            if child.bias is not None:
                names[f"b{layer}"] = f"{child_name}.bias"
    return names


def from_torch(
    module: nn.Module,
    loss: str | Loss | nn.Module = "half_sse",
    *,
    reduction: str = "sum",
    input_shape: tuple[int, ...] | None = None,
) -> tuple[Network | Model, dict[str, torch.Tensor]]:
    """A torch module as a Network or a Model, and its parameters.

    The rule: a flat ``nn.Sequential`` of ``nn.Linear`` and activation modules whose Linear layers all have a
    bias or all have none is read, as always, into a ``Network`` (parameters W1, b1, ... with b as a column
    [n, 1]; two Linear layers in a row get an ``identity`` activation between them). Any other module that
    ``torch.fx`` can trace and whose operations are all supported (nested Sequentials, LayerNorm, BatchNorm,
    Conv1d/2d, pooling, Flatten, Dropout, residual blocks x + block(x), a bias per layer: see
    ``numeric._torch_graph``) is read into a ``Model`` (symbolic._model), its parameters named as the Model
    names them (W1, b1, gamma2, ...) in torch's layout (b [n], a conv weight [out, in, *kernel]).
    ``input_shape`` is one sample's shape, needed when a convolution, pooling or Flatten comes before any
    nn.Linear or nn.LayerNorm that tells it. Anything else: ``UnsupportedModule`` in one line naming the node.

    ``loss`` is a name from ``LOSSES`` (with ``reduction``) or one of torch's loss modules, read with its
    own reduction: ``nn.MSELoss()``, ``nn.BCELoss()``, ``nn.BCEWithLogitsLoss()``, ``nn.CrossEntropyLoss()``.
    The parameters are detached copies.
    """
    if isinstance(loss, nn.Module):
        loss, reduction = _loss_from_module(loss)
    elif not isinstance(loss, (str, Loss)):
        raise InputTypeError(
            f"loss must be a loss name, a Loss (Loss.define) or a torch loss module; got {type(loss).__name__}"
        )
    if not _dense_stack(module):
        reading = read_model(module, loss, reduction, input_shape)
        return reading.model, reading.params
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
            if child.weight.dtype in HALF_PRECISION:
                raise _unsupported(position, child, f"{HALF_PRECISION_REASON} (model.double() converts it)")
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
        if not pending_activation:
            raise _unsupported(position, child, "an activation must follow a Linear layer")
        try:
            activations.append(activation_of(child))
        except Refused as why:
            raise _unsupported(position, child, str(why)) from None
        pending_activation = False
    if not sizes:
        raise UnsupportedModule("from_torch: the nn.Sequential has no nn.Linear layer")
    if pending_activation:
        activations.append("identity")
    if not isinstance(loss, Loss) and loss not in LOSSES:
        raise NetworkError(f"unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    network = Network(sizes, activations=activations, loss=loss, bias=biases == {True}, reduction=reduction)
    if input_shape is not None and input_shape not in ((sizes[0],), [sizes[0]], sizes[0]):
        raise UnsupportedModule(f"input_shape {input_shape!r} does not fit the first nn.Linear's ({sizes[0]},)")
    return network, params


def network_from_torch(module: nn.Module, loss: str | Loss | nn.Module, what: str) -> tuple[Network, dict]:
    """``from_torch`` for what works on a Network only so far (``what``: the caller's name): a Model is refused."""
    network, params = from_torch(module, loss)
    if not isinstance(network, Network):
        raise UnsupportedModule(
            f"{what} takes a flat nn.Sequential of nn.Linear and activation modules (one bias choice) so far; "
            f"this {type(module).__name__} reads as a Model of {len(network.layers)} layers"
        )
    return network, params


def _dense_stack(module: object) -> bool:
    """Whether ``module`` is what from_torch read before Model: a flat nn.Sequential of nn.Linear and
    activation modules (nn.Identity included) with one bias choice; its own refusals then stand as they were."""
    if not isinstance(module, nn.Sequential) or type(module).forward is not nn.Sequential.forward:
        return False  # a subclass with a forward of its own computes more than its layers: fx reads that
    linears = [child for child in module if isinstance(child, nn.Linear)]
    activations = [child for child in module if type(child).__name__ in _MODULE_NAMES]
    return len(linears) + len(activations) == len(module) and len({c.bias is None for c in linears}) <= 1


def torch_batch(network: Network, inputs: object, targets: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` in chainrule's layout (samples as columns) from what the user feeds ``loss_fn(model(inputs),
    targets)``: rows are samples; class indices (an integer [B] tensor) become one-hot columns."""
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise InputTypeError(
            f"inputs and targets must be torch.Tensors; got {type(inputs).__name__} and {type(targets).__name__}"
        )
    n_in, n_out = network.sizes[0], network.sizes[-1]
    if inputs.ndim != 2 or inputs.shape[1] != n_in:
        raise InputError(f"inputs has shape {list(inputs.shape)}; expected [B, {n_in}] (one sample per row)")
    batch = inputs.shape[0]
    classes = network.loss_rule.targets == "distribution"
    if classes and not targets.is_floating_point():
        if targets.shape != (batch,):
            raise InputError(f"class-index targets have shape {list(targets.shape)}; expected [{batch}]")
        if targets.numel() and (targets.min() < 0 or targets.max() >= n_out):
            raise InputError(
                f"class-index targets must lie in 0..{n_out - 1}; got {targets.min().item()}..{targets.max().item()}"
            )
        return inputs.T, F.one_hot(targets.long(), n_out).to(inputs.dtype).T
    if targets.shape != (batch, n_out):
        indices = " or class indices [B]" if classes else ""
        raise InputError(f"targets has shape {list(targets.shape)}; expected [{batch}, {n_out}]{indices}")
    return inputs.T, targets.T


def gradients(
    model: nn.Sequential | Model,
    loss_fn: str | nn.Module | Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    wrt: tuple[str, ...] = (),
    masks: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The gradients of ``loss_fn(model(inputs), targets)`` by chainrule's derivation, compiled.

    For a chainrule ``Model`` the second argument is its parameters by name (W1, b1, gamma2, ...) and
    ``masks`` its dropout masks: ``gradients(model, params, x, y, masks=...)`` (keyed by those names).

    Inputs and targets as you feed them to the model and the loss (rows are samples; class indices for
    nn.CrossEntropyLoss); the result is keyed like ``model.named_parameters()`` and holds what
    ``.backward()`` would leave in each ``.grad``. ``wrt=("x",)`` adds ``"x"``: the gradient with respect
    to ``inputs``, shaped like it (what ``inputs.grad`` would hold).
    """
    from symbolic import derive

    from ._compile import compile_gradients

    if isinstance(model, Model):  # gradients(model, params, x, y, masks=...): numeric/_model_compile.py
        from ._model_compile import model_gradients

        return model_gradients(model, loss_fn, inputs, targets, masks=masks, wrt=wrt)
    if not _dense_stack(model):  # a module fx reads into a Model: its gradients under torch's names
        return _module_model_gradients(model, loss_fn, inputs, targets, wrt)
    network, params = network_from_torch(model, loss_fn, "numeric.gradients")
    x, y = torch_batch(network, inputs, targets)
    ours = compile_gradients(derive(network, wrt=wrt))(x, y, params)
    result = to_torch_layout(model, ours)
    if "x" in ours:
        result["x"] = ours["x"].T.contiguous()  # samples back to rows, laid out like inputs.grad
    return result


def _module_model_gradients(
    module: nn.Module, loss_fn: str | nn.Module, inputs: torch.Tensor, targets: torch.Tensor, wrt: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """``gradients`` for a module read into a Model (residual blocks, norms, convolutions): keyed like
    ``module.named_parameters()``. Dropout in training mode draws its mask at random, so it is refused here
    (``model.eval()`` drops it; the Model API takes the mask as an input)."""
    from ._model_compile import model_gradients

    if isinstance(loss_fn, nn.Module):
        loss, reduction = _loss_from_module(loss_fn)
    else:
        loss, reduction = loss_fn, "sum"
    input_shape = tuple(inputs.shape[1:]) if isinstance(inputs, torch.Tensor) else None
    reading = read_model(module, loss, reduction, input_shape)
    if reading.model.mask_shapes:
        raise UnsupportedModule(
            "numeric.gradients: the module has dropout in training mode, whose mask torch draws at random; "
            "call model.eval(), or give the mask to gradients(Model, params, x, y, masks=...)"
        )
    ours = model_gradients(reading.model, reading.params, inputs, targets, wrt=wrt)
    result = {reading.torch_names[name]: value for name, value in ours.items() if name in reading.torch_names}
    if "x" in ours:
        result["x"] = ours["x"]
    return result


def to_torch_layout(model: nn.Sequential, gradients: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """chainrule's ``{"W1": ..., "b1": [n, 1]}`` as ``{"0.weight": ..., "0.bias": [n]}``."""
    names = torch_parameter_names(model)
    return {
        names[name]: value.reshape(-1) if name.startswith("b") else value
        for name, value in gradients.items()
        if name in names
    }
