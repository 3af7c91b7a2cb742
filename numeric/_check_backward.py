"""check_backward: a user's hand-written backward pass against the derivation, with a diagnosis.

When the user's gradients are wrong, chainrule builds the derivation again with each classic mistake
in it (a sign flipped, a transpose dropped, ...: ``MISTAKES``), compiles each one like the correct
one, and names the mistakes whose gradients equal the user's. Nothing is guessed: a wrong gradient
that no catalogued mistake reproduces is reported as ``unknown``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import sympy
import torch
from torch import nn

from symbolic import (
    InputError,
    InputTypeError,
    MatrixStep,
    Network,
    batch_size,
    derive,
    matmul,
    transpose,
    words,
)
from symbolic._errors import require_exactly
from symbolic._words import Note

from ._checks import check_inputs
from ._compile import _straight_line
from ._printer import MatrixTorchPrinter
from ._torch_models import from_torch, torch_batch, torch_parameter_names
from ._verify import DEFAULT_RTOL, Comparison, _error_table, _progress, compare, random_values

# The catalogue: name -> what the mistake is, with {layer} and friends filled in per variant. The sentences
# live in the word tables (symbolic/_words.py, key "mistake_" + name), so a report can say them in Chinese.
_MISTAKE_NAMES = (
    "sign",
    "missing_activation_derivative",
    "derivative_at_output",
    "missing_transpose",
    "batch_scale",
    "wrong_layer_input",
    "bias_not_summed",
)
MISTAKES: dict[str, str] = {name: words("en")[f"mistake_{name}"] for name in _MISTAKE_NAMES}
UNKNOWN = "unknown"
_AT_OUTPUT_EXAMPLES = {"sigmoid": "at_output_sigmoid", "tanh": "at_output_tanh"}  # keys of the word tables


class Mistake(NamedTuple):
    """One diagnosis: ``(parameter, name, explanation)``; name is a MISTAKES key or ``"unknown"``."""

    parameter: str
    name: str
    explanation: str


@dataclass(frozen=True)
class _Variant:
    name: str
    explanation: Note
    steps: tuple[MatrixStep, ...]


def _replace(steps: list[MatrixStep], target: str, expression: sympy.Expr) -> tuple[MatrixStep, ...]:
    return tuple(MatrixStep(s.target, expression, s.role, s.layer) if s.target.name == target else s for s in steps)


def _variants(network: Network, steps: list[MatrixStep]) -> list[_Variant]:
    """The derivation's matrix program with each catalogued mistake in it, one mistake per variant."""
    sym = {s.target.name: s for s in steps}
    symbol = lambda name: sympy.Symbol(name, real=True)  # noqa: E731 - the program's own naming
    x, y, depth = symbol("x"), symbol("y"), network.depth
    B = batch_size(x)  # noqa: N806 - the batch size, as the derivation writes it
    mean = network.reduction == "mean"
    output_delta = sym[f"delta{depth}"].expression
    variants = [_Variant("sign", Note("mistake_sign"), _replace(steps, f"delta{depth}", -output_delta))]
    reduction = "mean" if mean else "sum"
    scaled = output_delta * B if mean else output_delta / B
    variants.append(
        _Variant(
            "batch_scale",
            Note(
                "mistake_batch_scale",
                {"factor": Note(f"batch_scale_{reduction}_factor"), "why": Note(f"batch_scale_{reduction}_why")},
            ),
            _replace(steps, f"delta{depth}", scaled),
        )
    )
    for layer in range(depth, 0, -1):
        activation = network.activation_rules[layer - 1]
        a = symbol(f"a{layer}")
        if layer == depth:
            upstream = network.loss_rule.matrix_gradient(a, y, network.sizes[-1])
            upstream = upstream / B if mean else upstream
        else:
            upstream = matmul(transpose(symbol(f"W{layer + 1}")), symbol(f"delta{layer + 1}"))
        example = Note(_AT_OUTPUT_EXAMPLES[activation.name]) if activation.name in _AT_OUTPUT_EXAMPLES else ""
        text = {"layer": str(layer), "above": str(layer + 1), "below": str(layer - 1)}
        variants.append(
            _Variant(
                "missing_activation_derivative",
                Note("mistake_missing_activation_derivative", text),
                _replace(steps, f"delta{layer}", upstream),
            )
        )
        if activation.elementwise:
            at_output = upstream * activation.derivative(a, activation.function(a))
            variants.append(
                _Variant(
                    "derivative_at_output",
                    Note("mistake_derivative_at_output", {**text, "example": example}),
                    _replace(steps, f"delta{layer}", at_output),
                )
            )
        if layer < depth and network.sizes[layer + 1] == network.sizes[layer]:
            weight = symbol(f"W{layer + 1}")
            untransposed = sym[f"delta{layer}"].expression.xreplace({transpose(weight): weight})
            variants.append(
                _Variant(
                    "missing_transpose",
                    Note("mistake_missing_transpose", text),
                    _replace(steps, f"delta{layer}", untransposed),
                )
            )
        if network.sizes[layer] == network.sizes[layer - 1]:
            own_input = matmul(symbol(f"delta{layer}"), transpose(a))
            variants.append(
                _Variant(
                    "wrong_layer_input",
                    Note("mistake_wrong_layer_input", text),
                    _replace(steps, f"grad_W{layer}", own_input),
                )
            )
        if network.bias:
            variants.append(
                _Variant(
                    "bias_not_summed",
                    Note("mistake_bias_not_summed", text),
                    _replace(steps, f"grad_b{layer}", symbol(f"delta{layer}")),
                )
            )
    return variants


@dataclass(frozen=True)
class BackwardReport:
    """The result of :func:`check_backward`; ``ok`` when every gradient matches. ``str(report)`` explains, in
    English; ``report.text(lang="zh")`` in Chinese."""

    network: Network
    errors: Mapping[str, Comparison]  # per parameter, the user's gradient against the derivation's
    mistakes: tuple[Mistake, ...]  # empty when ok
    names: Mapping[str, str]  # the user's parameter names -> chainrule's (W1, b1, ...)
    notes: Mapping[str, Note] = field(default_factory=dict)  # each mistake's English explanation -> its Note

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.errors.values())

    def __str__(self) -> str:
        return self.text()

    def text(self, lang: str = "en") -> str:
        """The report, its words in ``lang`` (one of ``symbolic.LANGUAGES``); the mistakes' names, parameter
        names and numbers are the same in every language."""
        w = words(lang)
        shown = {name: name if self.names[name] == name else f"{name} ({self.names[name]})" for name in self.errors}
        rows = [(shown[name], c, w["entry_ok"] if c.ok else w["wrong"]) for name, c in self.errors.items()]
        lines = [w["check_title"].format(network=self.network.describe(lang)), *_error_table(w, rows, 12)]
        if self.ok:
            lines.append(w["verdict"].format(verdict=w["verdict_all_match"]))
            return "\n".join(lines)
        lines.append(w["diagnosis"])
        grouped: dict[tuple[str, str], list[str]] = {}  # one line per mistake, naming the gradients it explains
        for mistake in self.mistakes:
            grouped.setdefault((mistake.name, mistake.explanation), []).append(mistake.parameter)
        for (name, explanation), parameters in grouped.items():
            said = self.notes[explanation].text(lang) if explanation in self.notes else explanation
            lines.append(w["diagnosis_line"].format(name=name, parameters=", ".join(parameters), explanation=said))
        lines.append(w["verdict"].format(verdict=w["wrong"]))
        return "\n".join(lines)


def _diagnose(
    user: Mapping[str, torch.Tensor],
    correct: Mapping[str, torch.Tensor],
    variants: list[tuple[_Variant, dict]],
    rtol: float,
) -> list[tuple[str, str, Note]]:
    """(parameter, mistake name, explanation) for each wrong gradient."""

    def agrees(ours, theirs):
        return ours.shape == theirs.shape and compare("", ours, theirs, rtol).ok

    wrong = [name for name in correct if not agrees(user[name], correct[name])]
    # first the mistakes that reproduce the user's whole gradient; then, parameter by parameter
    whole = [v for v, grads in variants if all(agrees(user[name], grads[name]) for name in correct)]
    if whole:
        return [(name, v.name, v.explanation) for v in whole for name in wrong]
    mistakes = []
    for name in wrong:
        found = [v for v, grads in variants if agrees(user[name], grads[name])]
        if not found:
            mistakes.append((name, UNKNOWN, Note("mistake_unknown")))
        mistakes += [(name, v.name, v.explanation) for v in found]
    return mistakes


def _as_user_gradients(result: object, expected: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not isinstance(result, Mapping):
        raise InputTypeError(
            f"the backward function must return a dict of gradients keyed {', '.join(expected)}; "
            f"got {type(result).__name__}"
        )
    missing = [name for name in expected if name not in result]
    extra = [name for name in result if name not in expected]
    if missing or extra:
        raise InputError(
            f"the backward function returned keys {list(result)}; expected {list(expected)}"
            + (f" (missing {', '.join(missing)})" if missing else "")
        )
    gradients = {}
    for name, value in result.items():
        try:
            gradients[name] = torch.as_tensor(value).detach().to(torch.float64).cpu()
        except (TypeError, ValueError, RuntimeError) as error:
            raise InputTypeError(f"gradient {name!r} is not a tensor of numbers: {error}") from None
    return gradients


def _check(
    network: Network,
    gradients_in_chainrule_layout: Mapping[str, torch.Tensor],
    values: Mapping[str, torch.Tensor],
    rtol: float,
    names: Mapping[str, str],
) -> BackwardReport:
    derivation = derive(network)
    program = derivation.matrix_program
    steps = list(program.steps)
    outputs = list(program.gradients.values())
    arguments = [values["x"], values["y"], *(values[name] for name in network.parameter_shapes)]

    def run(variant_steps) -> dict[str, torch.Tensor]:
        function = _straight_line(
            program.inputs, outputs, list((s.target, s.expression) for s in variant_steps), MatrixTorchPrinter()
        )
        return dict(zip(program.gradients, function(*arguments)))

    correct = run(steps)
    user = gradients_in_chainrule_layout
    errors = {name: compare(name, user[name], correct[name], rtol) for name in correct}
    mistakes: list[tuple[str, str, Note]] = []
    if not all(c.ok for c in errors.values()):
        # each variant is compiled and run: about a second at MNIST size, so a bar on a terminal
        variants = [(v, run(v.steps)) for v in _progress(_variants(network, steps), "diagnosis", None)]
        # a "mistake" that changes nothing (relu' at a equals relu' at z) explains nothing
        variants = [
            (v, grads)
            for v, grads in variants
            if any(grads[n].shape != correct[n].shape or not compare(n, grads[n], correct[n], rtol).ok for n in correct)
        ]
        mistakes = _diagnose(user, correct, variants, rtol)
    back = {ours: theirs for theirs, ours in names.items()}
    return BackwardReport(
        network,
        {back[name]: Comparison(back[name], c.max_abs_error, c.max_rel_error, c.rtol) for name, c in errors.items()},
        tuple(Mistake(back[parameter], name, note.text()) for parameter, name, note in mistakes),
        names,
        {note.text(): note for _, _, note in mistakes},
    )


def check_backward(
    fn: Callable,
    network: Network | nn.Module,
    *args,
    values: Mapping[str, object] | None = None,
    seed: int = 0,
    batch: int = 4,
    rtol: float | None = None,
) -> BackwardReport:
    """Check a hand-written backward pass against the derivation, and name its mistakes.

    ``check_backward(fn, network)``: ``fn(x, y, params) -> {"W1": ..., "b1": ...}`` in chainrule's
    layout (x [n_in, B], y [n_out, B], samples as columns; b as [n, 1]), called with ``values`` or with
    ``random_values(network, batch, seed)``, in float64.

    ``check_backward(fn, model, loss_fn, inputs, targets)``: an ``nn.Sequential`` and a loss (module or
    name); ``fn(inputs, targets, params)`` gets ``params`` keyed like ``model.named_parameters()`` and
    returns gradients keyed the same way, in torch's layout (rows are samples).

    The report's ``mistakes`` lists ``(parameter, name, explanation)``; see ``MISTAKES``.
    """
    if not callable(fn):
        raise InputTypeError(f"check_backward takes the backward function first; got {type(fn).__name__}")
    if isinstance(network, nn.Module):
        if len(args) != 3:
            raise InputTypeError(
                "check_backward(fn, model, loss_fn, inputs, targets): give the loss, inputs and targets"
            )
        return _check_model(fn, network, *args, rtol=rtol)
    if not isinstance(network, Network):
        raise InputTypeError(
            f"check_backward takes a Network or an nn.Sequential after the function; got {type(network).__name__}"
        )
    if args:
        raise InputTypeError(
            "check_backward(fn, network, *, values=None, seed=0, batch=4): no more positional arguments"
        )
    tensors = (
        random_values(network, batch, seed)
        if values is None
        else {name: torch.as_tensor(value, dtype=torch.float64) for name, value in values.items()}
    )
    require_exactly("values", tensors, ("x", "y", *network.parameter_shapes))
    params = {name: tensors[name].clone() for name in network.parameter_shapes}
    check_inputs(network, tensors["x"], tensors["y"], params)  # shapes, before the user's code sees them
    user = _as_user_gradients(fn(tensors["x"].clone(), tensors["y"].clone(), params), network.parameter_shapes)
    rtol = DEFAULT_RTOL[torch.float64] if rtol is None else rtol
    names = {name: name for name in network.parameter_shapes}
    return _check(network, user, tensors, rtol, names)


def _check_model(fn: Callable, model: nn.Module, loss_fn, inputs, targets, rtol: float | None) -> BackwardReport:
    network, params = from_torch(model, loss_fn)
    x, y = torch_batch(network, inputs, targets)
    names = {theirs: ours for ours, theirs in torch_parameter_names(model).items()}
    torch_params = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    result = fn(inputs.detach().clone(), targets.detach().clone(), torch_params)
    user_torch = _as_user_gradients(result, torch_params)
    batch = x.shape[1]
    user = {}
    for theirs, value in user_torch.items():
        ours = names[theirs]
        if ours.startswith("b") and value.ndim == 1:
            value = value.reshape(-1, 1)
        elif ours.startswith("b") and value.ndim == 2 and value.shape[0] == batch:
            value = value.T  # one row per sample, as torch lays samples out: chainrule's columns
        user[ours] = value
    values = {"x": x, "y": y, **params}
    values = {name: value.detach().to(torch.float64) for name, value in values.items()}
    rtol = DEFAULT_RTOL.get(inputs.dtype, 1e-4) if rtol is None else rtol
    return _check(network, user, values, rtol, names)


__all__ = ["MISTAKES", "UNKNOWN", "BackwardReport", "Mistake", "check_backward"]
