"""Reading a torch module into a ``Model``: torch.fx traces it, and its graph is read as layers in a row.

``torch.fx.symbolic_trace`` runs the module's ``forward`` on a proxy and records every call: torch's own
modules (leaves: ``call_module`` nodes with their path, e.g. ``blocks.0.fc``), functions (``F.relu``,
``torch.flatten``, ``operator.add``) and tensor methods (``x.relu()``). Nested ``nn.Sequential`` and the user's
own module classes are traced through, so what remains is a graph of supported operations, or a node that names
what is not supported.

The graph is read backwards, from the output to the input (``_Reader.chain``): every node but an ``add`` has
one tensor input, the value before it (a flattening view's batch-size nodes, ``x.size(0)``, count as part of
the view); an ``add`` of two values where one is the other's ancestor is a residual connection y = s + block(s),
its block the chain from s to the other operand. Each node is read once, so a model that uses a value twice in
any other way (a diamond f(x) + g(x), x + x, a result left unused) is refused, and so are a module with
parameters called twice (shared weights, whose gradient is a sum) and an in-place operation on a value that
another node reads too (fx's graph does not show the overwrite). Then the layers are walked forwards with the
shape of one sample (``_Placing``), placed as ``Model`` places them, so the parameter names (W1, b1, gamma2,
...) are the Model's, and each module's tensors are checked against the shapes the Model expects.

What fx cannot do is written here by hand: fx gives the graph, not its meaning, so which node is which layer,
and which add is a residual connection, is decided by the tables and the walk below.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.nn import functional as F  # noqa: N812 - the usual spelling

from symbolic import ACTIVATIONS, Activation, ChainruleError, Loss, UnsupportedModule
from symbolic._model import (
    Act,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    Layer,
    LayerNorm,
    Linear,
    Model,
    Pool,
    Residual,
    Shape,
    _Counters,
    _place,
)
from symbolic._rules import elu_activation, leaky_relu_activation

from ._checks import HALF_PRECISION, HALF_PRECISION_REASON

# torch.nn class name -> chainrule activation name, from the activation table
MODULE_ACTIVATIONS: dict[str, str] = {
    activation.torch_module: name for name, activation in ACTIVATIONS.items() if activation.torch_module
}


class Refused(Exception):
    """Why one module or call is not supported (the caller says where)."""


def activation_of(module: nn.Module) -> str | Activation:
    """The chainrule activation that ``module`` (one of torch's activation modules) computes, or ``Refused``
    naming the option that chainrule's does not have."""
    name = MODULE_ACTIVATIONS.get(type(module).__name__)
    if name is None or type(module) is not getattr(nn, type(module).__name__, None):
        raise Refused("not a supported module")
    if name == "softplus" and (module.beta != 1 or module.threshold != 20):
        raise Refused("Softplus is supported with its default beta=1 and threshold=20 only")
    # dim=None: on 2-D input [samples, features] torch's softmax takes dim 1 (its legacy implicit
    # choice, torch.nn.functional._get_softmax_dim), the features, as chainrule does
    if name == "softmax" and module.dim not in (-1, 1, None):
        raise Refused(f"Softmax must act on the features (dim=-1); got dim={module.dim}")
    if name == "gelu" and module.approximate != "none":
        raise Refused("GELU is supported in its exact erf form (approximate='none') only")
    if name == "leaky_relu":
        return leaky_relu_activation(float(module.negative_slope))
    if name == "elu":
        return elu_activation(float(module.alpha))
    return name


# Functional activations: the function -> (the nn module computing the same, its arguments after the input).
# The call is turned into that module and read by ``activation_of``, so both spellings meet the same checks.
_FUNCTIONS: dict[Callable, tuple[str, tuple[str, ...]]] = {
    torch.relu: ("ReLU", ()),
    F.relu: ("ReLU", ("inplace",)),
    torch.sigmoid: ("Sigmoid", ()),
    torch.tanh: ("Tanh", ()),
    F.silu: ("SiLU", ("inplace",)),
    F.gelu: ("GELU", ("approximate",)),
    F.elu: ("ELU", ("alpha", "inplace")),
    F.leaky_relu: ("LeakyReLU", ("negative_slope", "inplace")),
    F.softplus: ("Softplus", ("beta", "threshold")),
    F.softmax: ("Softmax", ("dim", "_stacklevel", "dtype")),
    torch.softmax: ("Softmax", ("dim", "dtype")),
}
# tensor methods (F.sigmoid and F.tanh call these too): x.relu(), x.softmax(-1), ...
_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "relu": ("ReLU", ()),
    "sigmoid": ("Sigmoid", ()),
    "tanh": ("Tanh", ()),
    "softmax": ("Softmax", ("dim", "dtype")),
}
_ADDS = (operator.add, torch.add)
_FLATTENS = (torch.flatten,)
_NOT_MATH = frozenset({"inplace", "_stacklevel"})  # arguments that do not change what is computed

# operators shown as they are written, for messages: "x * 2 at node mul"
_OPERATORS = {
    operator.add: "+",
    operator.sub: "-",
    operator.mul: "*",
    operator.truediv: "/",
    operator.matmul: "@",
    operator.pow: "**",
}


@dataclass(frozen=True)
class _Step:
    """One node read as a layer (``layer`` None: a node that computes nothing, nn.Identity or eval dropout)."""

    node: fx.Node
    label: str  # how messages name it: "blocks.0.fc (nn.Linear)" or "F.relu(h) at node relu"
    layer: Layer | None
    module: nn.Module | None = None  # the module whose tensors it takes (Linear, Conv, LayerNorm, BatchNorm)
    flat_size: int | None = None  # x.view(-1, n): the n that one sample's size must be


@dataclass(frozen=True)
class _Skip:
    """A residual connection: the add node and the block's items, in forward order."""

    node: fx.Node
    label: str
    block: tuple[_Step | _Skip, ...]


@dataclass(frozen=True)
class ModelReading:
    """What ``read_model`` gives: the Model, its parameters (detached copies, torch's layout), and for each
    parameter name the module's own name of that tensor (``{"W1": "0.weight", "gamma2": "1.0.norm.weight"}``)."""

    model: Model
    params: dict[str, torch.Tensor]
    torch_names: dict[str, str] = field(default_factory=dict)


def _shown(value: object) -> str:
    if isinstance(value, fx.Node):
        if value.op == "call_module":  # a module's output, as the call is written: fc(…)
            return f"{value.target}(…)"
        return str(value.target) if value.op == "get_attr" else value.name
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_shown(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _function_name(function: object) -> str:
    name = getattr(function, "__name__", repr(function))
    module = getattr(function, "__module__", None) or ""
    if module.startswith("torch.nn.functional") or module == "torch._C._nn":
        return f"F.{name}"
    if module.startswith("torch") or getattr(torch, name, None) is function:
        return f"torch.{name}"
    return f"{module}.{name}" if module else name


def _where(node: fx.Node) -> str:
    """The module a function call sits in (``blocks.1 (Block): ``), from fx's record of the module stack."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, kind = list(stack.values())[-1]
    return f"{path} ({getattr(kind, '__name__', kind)}): "


def _describe(node: fx.Node) -> str:
    """A node as its operation is written, and its name: ``x * 2 at node mul``."""
    args = [_shown(a) for a in node.args] + [f"{k}={_shown(v)}" for k, v in node.kwargs.items()]
    if node.op == "call_function" and node.target in _OPERATORS and len(node.args) == 2 and not node.kwargs:
        text = f"{args[0]} {_OPERATORS[node.target]} {args[1]}"
    elif node.op == "call_function" and node.target is operator.getitem:
        text = f"{args[0]}[{', '.join(args[1:])}]"
    elif node.op == "call_function":
        text = f"{_function_name(node.target)}({', '.join(args)})"
    elif node.op == "call_method":
        text = f"{args[0]}.{node.target}({', '.join(args[1:])})"
    elif node.op == "call_module":
        return f"{_module_label(node.target, node.graph.owning_module.get_submodule(node.target))} at node {node.name}"
    elif node.op == "get_attr":
        text = f"the tensor {node.target}"
    else:
        text = f"{node.op} {node.target}"
    return f"{_where(node)}{text} at node {node.name}"


def _module_label(path: str, module: nn.Module) -> str:
    kind = type(module)
    prefix = "nn." if getattr(nn, kind.__name__, None) is kind else ""
    return f"{path} ({prefix}{kind.__name__})"


def _position(node: fx.Node) -> str:
    """Where a layer stands, for Model's messages ("layer blocks.0.fc (Linear) ..."): its module path or node."""
    return str(node.target) if node.op == "call_module" else node.name


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    return [value for value in node.all_input_nodes if value.op != "get_attr"]


def _bound(node: fx.Node, names: Sequence[str], label: str) -> dict[str, object]:
    """The arguments after the input, by name (fx records them positionally or as keywords)."""
    extra = node.args[1:]
    if len(extra) > len(names):
        raise UnsupportedModule(f"{label}: takes {len(names)} argument(s) after the input; got {len(extra)}")
    given = dict(zip(names, extra, strict=False))
    for name, value in node.kwargs.items():
        if name not in names:
            raise UnsupportedModule(f"{label}: argument {name}={value!r} is not supported")
        given[name] = value
    return given


def _functional_activation(node: fx.Node, module_name: str, names: Sequence[str], label: str) -> Act:
    arguments = {k: v for k, v in _bound(node, names, label).items() if k not in _NOT_MATH}
    if arguments.pop("dtype", None) is not None:
        raise UnsupportedModule(f"{label}: dtype= is not supported (it casts inside the model)")
    if any(isinstance(v, fx.Node) for v in arguments.values()):
        raise UnsupportedModule(f"{label}: its options must be constants, not computed from the input")
    try:
        module = getattr(nn, module_name)(**arguments)
        return Act(activation_of(module))
    except Refused as why:
        raise UnsupportedModule(f"{label}: {why}") from None
    except (TypeError, ValueError) as error:  # an argument nn's module does not take as given
        raise UnsupportedModule(f"{label}: {error}") from None


def _per_axis(value: object, dims: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims


def _checked_options(label: str, checks: Sequence[tuple[bool, str, str]]) -> None:
    """The first option set that chainrule's layer does not have, as ``label: option is not supported (why)``."""
    for bad, option, why in checks:
        if bad:
            raise UnsupportedModule(f"{label}: {option} is not supported" + (f" ({why})" if why else ""))


def _conv(module: nn.Module, dims: int, label: str) -> Conv:
    padding = module.padding
    if padding == "valid":
        padding = (0,) * dims
    _checked_options(
        label,
        [
            (isinstance(padding, str), f"padding={padding!r}", "give the padding as numbers"),
            (module.groups != 1, f"groups={module.groups}", "chainrule's Conv is groups=1"),
            (any(d != 1 for d in module.dilation), f"dilation={module.dilation}", "chainrule's Conv is dilation=1"),
            (module.padding_mode != "zeros", f"padding_mode={module.padding_mode!r}", "chainrule pads with zeros"),
        ],
    )
    return Conv(
        module.out_channels, tuple(module.kernel_size), tuple(module.stride), tuple(padding), module.bias is not None
    )


def _pool(module: nn.Module, kind: str, dims: int, label: str) -> Pool:
    checks = [
        (any(p != 0 for p in _per_axis(module.padding, dims)), f"padding={module.padding}", "chainrule pools unpadded"),
        (module.ceil_mode, "ceil_mode=True", "chainrule's windows fit inside the input"),
    ]
    if kind == "max":
        checks += [
            (any(d != 1 for d in _per_axis(module.dilation, dims)), f"dilation={module.dilation}", ""),
            (module.return_indices, "return_indices=True", "it returns two values"),
        ]
    else:
        checks += [(getattr(module, "divisor_override", None) is not None, "divisor_override", "")]
    _checked_options(label, checks)
    kernel = _per_axis(module.kernel_size, dims)
    stride = _per_axis(module.stride if module.stride is not None else module.kernel_size, dims)
    return Pool(kind, tuple(kernel), tuple(stride))


_CONVS = {nn.Conv1d: 1, nn.Conv2d: 2}
_POOLS = {nn.MaxPool1d: ("max", 1), nn.MaxPool2d: ("max", 2), nn.AvgPool1d: ("avg", 1), nn.AvgPool2d: ("avg", 2)}
# the functional forms, read through the module each one is (their options have the modules' names)
_FUNCTIONAL_POOLS = {
    F.max_pool1d: (nn.MaxPool1d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    F.max_pool2d: (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")),
    F.avg_pool1d: (nn.AvgPool1d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    F.avg_pool2d: (
        nn.AvgPool2d,
        ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    ),
}
_BATCH_NORMS = {nn.BatchNorm1d: (1, 2), nn.BatchNorm2d: (3,)}  # the sample ranks each takes: (n,) or (C, L); (C, H, W)


def _module_layer(module: nn.Module, label: str) -> Layer | None:
    """The layer one of torch's modules computes (None: it computes nothing), or a one-line refusal."""
    kind = type(module)
    for parameter in module.parameters(recurse=False):
        if isinstance(parameter, nn.parameter.UninitializedParameter):
            raise UnsupportedModule(f"{label}: its parameters are not initialised yet (run one forward pass first)")
        if parameter.dtype in HALF_PRECISION:
            raise UnsupportedModule(f"{label}: {HALF_PRECISION_REASON} (model.double() converts it)")
    if issubclass(kind, nn.Linear) and kind.__module__.startswith("torch.nn"):
        return Linear(module.out_features, module.bias is not None)
    if kind in _CONVS:
        return _conv(module, _CONVS[kind], label)
    if kind in _POOLS:
        return _pool(module, *_POOLS[kind], label)
    if kind is nn.LayerNorm:
        _checked_options(
            label,
            [
                (not module.elementwise_affine, "elementwise_affine=False", "chainrule's LayerNorm has γ and β"),
                (module.elementwise_affine and module.bias is None, "bias=False", "chainrule's LayerNorm has β"),
            ],
        )
        return LayerNorm(float(module.eps))
    if kind in _BATCH_NORMS:
        _checked_options(
            label,
            [
                (
                    not module.training,
                    "eval mode",
                    "it normalises by its running statistics; chainrule's BatchNorm is training mode, over the "
                    "batch: call model.train()",
                ),
                (not module.affine, "affine=False", "chainrule's BatchNorm has γ and β"),
            ],
        )
        return BatchNorm(float(module.eps))
    if kind is nn.Flatten:
        _checked_options(
            label,
            [
                (
                    (module.start_dim, module.end_dim) != (1, -1),
                    "start_dim, end_dim other than 1, -1",
                    "a sample is flattened whole",
                )
            ],
        )
        return Flatten()
    if kind is nn.Dropout:
        # in eval mode dropout passes its input through: no layer, as the module computes nothing
        return Dropout(float(module.p)) if module.training else None
    if kind is nn.Identity:
        return None
    try:
        return Act(activation_of(module))
    except Refused as why:
        raise UnsupportedModule(f"{label}: {why}") from None


def _flatten_layer(node: fx.Node, label: str) -> Flatten:
    options = _bound(node, ("start_dim", "end_dim"), label)
    if (options.get("start_dim", 0), options.get("end_dim", -1)) != (1, -1):  # torch.flatten's defaults: 0, -1
        raise UnsupportedModule(f"{label}: only flatten(x, 1) is supported (start_dim=1 keeps the batch axis)")
    return Flatten()


def _is_view(node: fx.Node) -> bool:
    return (node.op == "call_method" and node.target in ("view", "reshape")) or (
        node.op == "call_function" and node.target is torch.reshape
    )


def _view_sizes(node: fx.Node) -> tuple:
    """The sizes a view or reshape asks for: x.view(b, -1), x.view((b, -1)) and torch.reshape(x, (b, -1)) alike."""
    sizes = node.args[1:] if len(node.args) > 1 else tuple(node.kwargs.values())
    return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)


def _batch_size_nodes(node: object, value: fx.Node) -> tuple[fx.Node, ...]:
    """The nodes that compute ``value``'s batch size as ``node`` (value.size(0), value.shape[0],
    value.size()[0]), or () when it is something else."""
    if not isinstance(node, fx.Node):
        return ()
    if node.op == "call_method" and node.target == "size" and node.args == (value, 0):
        return (node,)
    if node.op == "call_function" and node.target is operator.getitem and node.args[1:] == (0,):
        inner = node.args[0]
        shape = inner.op == "call_function" and inner.target is getattr and inner.args == (value, "shape")
        size = inner.op == "call_method" and inner.target == "size" and inner.args == (value,)
        return (node, inner) if shape or size else ()
    return ()


def _is_add(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _ADDS) or (node.op == "call_method" and node.target == "add")


class _Reader:
    """One module's fx graph, read into steps and residual connections."""

    def __init__(self, module: nn.Module) -> None:
        # a module fx does not trace into (one of torch's, say a bare nn.Linear) is read as the only layer of a
        # Sequential: traced alone, its graph would be the functions inside its forward (F.linear)
        self.alone = fx.Tracer().is_leaf_module(module, "")
        try:
            self.graph_module = fx.symbolic_trace(nn.Sequential(module) if self.alone else module)
        except Exception as error:  # fx raises TraceError, TypeError, ... from the user's forward
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UnsupportedModule(
                f"torch.fx cannot trace {type(module).__name__}: {reason} "
                "(from_torch reads modules whose forward fx can trace)"
            ) from None
        self.graph = self.graph_module.graph
        self.steps: dict[fx.Node, _Step] = {}
        self.adds: dict[fx.Node, tuple[fx.Node, fx.Node]] = {}
        self._ancestors: dict[fx.Node, frozenset[fx.Node]] = {}
        self.visited: set[fx.Node] = set()
        # the nodes that only read a batch size for a view, x.view(x.size(0), -1): part of the view, not layers
        self.helpers: set[fx.Node] = set()
        for node in self.graph.nodes:
            sizes = _view_sizes(node) if _is_view(node) else ()
            if sizes:  # any view: one that is not a flattening one is then refused by its own name
                self.helpers.update(_batch_size_nodes(sizes[0], node.args[0]))

    def classify(self) -> None:
        """Every node as a step or an add, or a refusal naming the first one that is neither."""
        placeholders = [node for node in self.graph.nodes if node.op == "placeholder"]
        if len(placeholders) != 1:
            names = ", ".join(node.name for node in placeholders)
            raise UnsupportedModule(f"from_torch reads modules whose forward takes one input; this one takes {names}")
        self.input = placeholders[0]
        called: dict[str, fx.Node] = {}
        for node in self.graph.nodes:
            if node.op in ("placeholder", "get_attr") or node in self.helpers:
                continue
            if node.op == "output":
                self.output = node
                if not isinstance(node.args[0], fx.Node):
                    raise UnsupportedModule(
                        f"from_torch reads modules that return one tensor; this one returns {_shown(node.args[0])}"
                    )
                continue
            if _is_add(node):
                operands = list(node.args) + list(node.kwargs.values())
                if node.kwargs or len(operands) != 2 or not all(isinstance(v, fx.Node) for v in operands):
                    raise UnsupportedModule(
                        f"{_describe(node)}: an add is supported between two values only (x + block(x))"
                    )
                self.adds[node] = (node.args[0], node.args[1])
                continue
            self.steps[node] = self._step(node, called)

    def _step(self, node: fx.Node, called: dict[str, fx.Node]) -> _Step:
        if node.op == "call_module":
            module = self.graph_module.get_submodule(node.target)
            label = _module_label(node.target, module)
            layer = _module_layer(module, label)
            owns = isinstance(layer, (Linear, Conv, LayerNorm, BatchNorm))
            if owns and node.target in called:
                raise UnsupportedModule(
                    f"{label} is called twice (shared parameters, whose gradient is a sum over both uses): "
                    "not supported"
                )
            called[node.target] = node
            self._one_input(node, label, bool(getattr(module, "inplace", False)))
            return _Step(node, label, layer, module if owns else None)
        label = _describe(node)
        inplace = False
        if node.op == "call_function" and node.target in _FUNCTIONS:
            layer: Layer | None = _functional_activation(node, *_FUNCTIONS[node.target], label)
            inplace = bool(_bound(node, _FUNCTIONS[node.target][1], label).get("inplace", False))
        elif node.op == "call_method" and node.target in _METHODS:
            layer = _functional_activation(node, *_METHODS[node.target], label)
        elif (node.op == "call_function" and node.target in _FLATTENS) or (
            node.op == "call_method" and node.target == "flatten"
        ):
            layer = _flatten_layer(node, label)
        elif _is_view(node):
            return self._view(node, label)
        elif node.op == "call_function" and node.target in _FUNCTIONAL_POOLS:
            kind_module, names = _FUNCTIONAL_POOLS[node.target]
            options = {k: v for k, v in _bound(node, names, label).items() if v is not None or k != "stride"}
            if any(isinstance(v, fx.Node) for v in options.values()):
                raise UnsupportedModule(f"{label}: its options must be constants, not computed from the input")
            kind, dims = _POOLS[kind_module]
            layer = _pool(kind_module(**options), kind, dims, label)
        elif node.op == "call_function" and node.target is F.dropout:
            options = _bound(node, ("p", "training", "inplace"), label)
            p, training = options.get("p", 0.5), options.get("training", True)
            layer = Dropout(float(p)) if training else None
            inplace = bool(options.get("inplace", False))
        else:
            raise UnsupportedModule(f"{label}: not a supported operation")
        self._one_input(node, label, inplace)
        return _Step(node, label, layer)

    def _view(self, node: fx.Node, label: str) -> _Step:
        """x.view(x.size(0), -1) (or x.shape[0]) and x.view(-1, n), reshape alike: a Flatten (n checked when
        the sample's shape is known); any other view changes what a sample is."""
        sizes = _view_sizes(node)
        batch = len(sizes) == 2 and sizes[1] == -1 and _batch_size_nodes(sizes[0], node.args[0])
        flat = len(sizes) == 2 and sizes[0] == -1 and isinstance(sizes[1], int) and not isinstance(sizes[1], bool)
        if not (batch or flat):
            raise UnsupportedModule(
                f"{label}: only a flattening view is supported (x.view(x.size(0), -1), x.view(-1, n) or "
                "torch.flatten(x, 1))"
            )
        self._one_input(node, label, False)
        return _Step(node, label, Flatten(), flat_size=sizes[1] if flat else None)

    def _one_input(self, node: fx.Node, label: str, inplace: bool) -> None:
        inputs = [value for value in _tensor_inputs(node) if value not in self.helpers]
        if len(inputs) != 1 or node.args[:1] != (inputs[0],):
            raise UnsupportedModule(f"{label}: takes {len(inputs)} values; supported layers take one, the value before")
        # in place, it overwrites its input: a residual add that reads that input too would add the changed value,
        # which the graph does not show (fx records x + f(relu_(x)) as if x were left as it was)
        others = [user.name for user in inputs[0].users if user is not node and user not in self.helpers]
        if inplace and others:
            raise UnsupportedModule(
                f"{label}: inplace=True overwrites {_shown(inputs[0])}, which {', '.join(others)} also reads; "
                "use inplace=False"
            )

    def ancestors(self, node: fx.Node) -> frozenset[fx.Node]:
        """Every node that ``node``'s value depends on; built once, in the graph's (topological) order, without
        recursion, as a deep model's chain would exceed Python's recursion limit."""
        if not self._ancestors:
            for each in self.graph.nodes:
                found: set[fx.Node] = set()
                for value in each.all_input_nodes:
                    found |= {value} | self._ancestors[value]
                self._ancestors[each] = frozenset(found)
        return self._ancestors[node]

    def chain(self, value: fx.Node, start: fx.Node) -> tuple[_Step | _Skip, ...]:
        """The items that compute ``value`` from ``start``, in forward order (read backwards)."""
        items: list[_Step | _Skip] = []
        while value is not start:
            if value in self.visited:  # a value used by two readers of the chain: not a chain of layers
                raise UnsupportedModule(
                    f"{_describe(value)}: its value is used twice; supported: layers in a row and x + block(x)"
                )
            self.visited.add(value)
            if value in self.adds:
                first, second = self.adds[value]
                if first is second:
                    raise UnsupportedModule(f"{_describe(value)}: adds a value to itself, not a residual connection")
                if first in self.ancestors(second):
                    skip, branch = first, second
                elif second in self.ancestors(first):
                    skip, branch = second, first
                else:
                    raise UnsupportedModule(
                        f"{_describe(value)}: not a residual connection (neither {_shown(first)} nor {_shown(second)} "
                        "is the input of the other's chain); supported: x + block(x)"
                    )
                items.append(_Skip(value, _describe(value), self.chain(branch, skip)))
                value = skip
            elif value in self.steps:
                items.append(self.steps[value])
                value = value.args[0]  # a step's input, its first argument (_one_input checked it)
            else:  # the module's input or a constant tensor, reached without passing ``start``
                where = "the input" if start.op == "placeholder" else _shown(start)
                raise UnsupportedModule(f"{_describe(value)}: the chain to the output does not start from {where}")
        return tuple(reversed(items))

    def read(self) -> tuple[_Step | _Skip, ...]:
        self.classify()
        items = self.chain(self.output.args[0], self.input)
        for node in self.graph.nodes:
            called = node.op in ("call_module", "call_function", "call_method")
            if called and node not in self.visited and node not in self.helpers:
                raise UnsupportedModule(f"{_describe(node)}: its result does not reach the output along the chain")
        return items


def _forward_order(items: Sequence[_Step | _Skip]) -> list[_Step]:
    steps: list[_Step] = []
    for item in items:
        steps += _forward_order(item.block) if isinstance(item, _Skip) else [item]
    return steps


def _input_shape(items: Sequence[_Step | _Skip]) -> Shape:
    """One sample's shape read from the first layer that tells it: nn.Linear's in_features, nn.LayerNorm's
    normalized_shape (the whole sample); a layer before them that changes the shape means it must be given."""
    for step in _forward_order(items):
        if isinstance(step.layer, Linear):
            return (step.module.in_features,)
        if isinstance(step.layer, LayerNorm):
            return tuple(step.module.normalized_shape)
        if isinstance(step.layer, (Conv, Pool, Flatten)):
            raise UnsupportedModule(
                f"from_torch needs input_shape, one sample's shape (e.g. input_shape=(1, 28, 28)): {step.label} "
                "does not tell the size of its input"
            )
    raise UnsupportedModule("from_torch needs input_shape, one sample's shape: no layer of this model tells it")


_TENSORS = ("weight", "bias")  # a module's tensors, in the order Model names them (W, b or gamma, beta)


@dataclass
class _Placing:
    """The forward walk: each layer placed on the shape it receives, its module's tensors named as Model does."""

    count: _Counters = field(default_factory=_Counters)
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    torch_names: dict[str, str] = field(default_factory=dict)

    def layers(self, items, shape: Shape, inside: tuple[str, ...], last: bool) -> tuple[tuple[Layer, ...], Shape]:
        kept = [item for item in items if isinstance(item, _Skip) or item.layer is not None]
        layers: list[Layer] = []
        for number, item in enumerate(kept, start=1):
            if isinstance(item, _Skip):
                block, out = self.layers(item.block, shape, (*inside, item.node.name), False)
                if not block:
                    raise UnsupportedModule(f"{item.label}: its block computes nothing (x + x)")
                if out != shape:
                    raise UnsupportedModule(
                        f"{item.label}: its block turns {shape} into {out}; a residual block keeps the shape"
                    )
                layers.append(Residual(block))
                continue
            try:
                placed = _place(
                    item.layer,
                    _position(item.node),
                    shape,
                    last and number == len(kept),
                    inside,
                    self.count,
                )[0]
            except ChainruleError as error:
                raise UnsupportedModule(str(error)) from None
            if item.flat_size is not None and placed.shape_out != (item.flat_size,):
                why = f"{item.flat_size} is not one sample's size: the sample {shape} holds {placed.shape_out[0]}"
                raise UnsupportedModule(f"{item.label}: {why}")
            self._take(item, placed.parameters, shape)
            layers.append(item.layer)
            shape = placed.shape_out
        return tuple(layers), shape

    def _take(self, step: _Step, expected: dict[str, Shape], shape: Shape) -> None:
        if isinstance(step.layer, LayerNorm) and tuple(step.module.normalized_shape) != shape:
            raise UnsupportedModule(
                f"{step.label}: normalized_shape {tuple(step.module.normalized_shape)} is not the whole sample "
                f"{shape}; chainrule's LayerNorm normalises over all of a sample's features"
            )
        if isinstance(step.layer, BatchNorm) and len(shape) not in _BATCH_NORMS[type(step.module)]:
            takes = " or ".join(
                {1: "(n,)", 2: "(C, L)", 3: "(C, H, W)"}[rank] for rank in _BATCH_NORMS[type(step.module)]
            )
            raise UnsupportedModule(f"{step.label}: takes samples of shape {takes}; it gets {shape}")
        path = str(step.node.target)
        for (name, want), attribute in zip(expected.items(), _TENSORS, strict=False):
            tensor = getattr(step.module, attribute)
            if tuple(tensor.shape) != want:
                raise UnsupportedModule(
                    f"{step.label}: its {attribute} is {list(tensor.shape)}, but the sample it receives, of shape "
                    f"{shape}, needs {list(want)}"
                )
            self.params[name] = tensor.detach().clone()
            self.torch_names[name] = f"{path}.{attribute}"


def read_model(
    module: nn.Module, loss: str | Loss, reduction: str, input_shape: Sequence[int] | None = None
) -> ModelReading:
    """``module`` as a Model and its parameters, or ``UnsupportedModule`` naming the first node it cannot read."""
    if not isinstance(module, nn.Module):
        raise UnsupportedModule(f"from_torch takes an nn.Module; got {type(module).__name__}")
    reader = _Reader(module)
    items = reader.read()
    if not _forward_order(items):
        raise UnsupportedModule(f"{type(module).__name__} computes nothing that chainrule reads as a layer")
    if input_shape is None:
        shape = _input_shape(items)
    elif isinstance(input_shape, (tuple, list)):
        shape = tuple(input_shape)
    else:
        shape = (input_shape,)
    placing = _Placing()
    Model(shape, (Flatten(),))  # checks input_shape as Model does, before it is walked
    layers, _ = placing.layers(items, shape, (), True)
    model = Model(shape, layers, loss, reduction)
    expected = model.parameter_shapes
    if {name: tuple(t.shape) for name, t in placing.params.items()} != expected:  # the walk is Model's placing
        raise AssertionError(f"from_torch named {sorted(placing.params)}; the Model has {sorted(expected)}")
    params = {name: placing.params[name] for name in expected}
    torch_names = {name: placing.torch_names[name].removeprefix("0." if reader.alone else "") for name in expected}
    return ModelReading(model, params, torch_names)
