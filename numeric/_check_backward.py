"""check_backward: a user's hand-written backward pass against the derivation, with a diagnosis.

When the user's gradients are wrong, chainrule builds the derivation again with each classic mistake
in it (a sign flipped, a transpose dropped, ...: ``MISTAKES``), compiles each one like the correct
one, and names the mistakes whose gradients equal the user's. Nothing is guessed: a wrong gradient
that no catalogued mistake reproduces is reported as ``unknown``.

A verdict that never lies: the user's function is run on two draws at two batch sizes that equal no width of
the network (nor 1 or 2), so ``B = x.shape[0]`` cannot pass by luck, and a mistake is named only when it
reproduces the user's numbers at both (a factor of 4 is ``batch_scale`` at batch 4 and nothing at batch 5).
Shape, dtype and nan/inf entries are named before any number is compared.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import sympy
import torch
from torch import nn

from symbolic import (
    ChainruleError,
    InputError,
    InputTypeError,
    MatrixProgram,
    MatrixStep,
    Network,
    derive,
    matmul,
    sample_values,
    transpose,
    words,
)
from symbolic._errors import require_exactly
from symbolic._matrix import Role, reduction_scale
from symbolic._words import Note

from ._checks import check_inputs
from ._compile import _straight_line
from ._printer import MatrixTorchPrinter
from ._torch_models import network_from_torch, torch_batch, torch_parameter_names
from ._verify import Comparison, _error_table, _progress, as_tensors, compare, random_values

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
    # a whole-network mistake's sentence for when it explains some gradients only ("every gradient" would lie)
    partial: Note | None = None


def _replace(program: MatrixProgram, role: Role, layer: int, expression: sympy.Expr) -> tuple[MatrixStep, ...]:
    """The program's steps with the one step of ``role`` at ``layer`` computing ``expression`` instead. Found by
    what the step holds, not by its name: a renamed step is still found, and a missing one raises."""
    replaced = program.step(role, layer)
    return tuple(MatrixStep(s.target, expression, s.role, s.layer) if s is replaced else s for s in program.steps)


def _variants(network: Network, program: MatrixProgram) -> list[_Variant]:
    """The derivation's matrix program with each catalogued mistake in it, one mistake per variant."""
    _x, y, *_ = program.inputs  # the batch x, the target y, then the parameters
    weights = dict(zip(network.parameter_shapes, program.inputs[2:]))
    depth = network.depth

    def quantity(role: Role, layer: int) -> sympy.Symbol:
        return program.step(role, layer).target

    output_delta = program.step(Role.DELTA, depth).expression
    flipped = _replace(program, Role.DELTA, depth, -output_delta)
    variants = [_Variant("sign", Note("mistake_sign"), flipped, Note("mistake_sign_partial"))]
    # the other reduction's share of the loss: 1/B forgotten with the mean, put in with the sum
    other = "sum" if network.reduction == "mean" else "mean"
    scaled = output_delta * reduction_scale(replace(network, reduction=other)) / reduction_scale(network)
    scale = {
        "factor": Note(f"batch_scale_{network.reduction}_factor"),
        "why": Note(f"batch_scale_{network.reduction}_why"),
    }
    variants.append(
        _Variant(
            "batch_scale",
            Note("mistake_batch_scale", scale),
            _replace(program, Role.DELTA, depth, scaled),
            Note("mistake_batch_scale_partial", scale),
        )
    )
    for layer in range(depth, 0, -1):
        activation = network.activation_rules[layer - 1]
        a = quantity(Role.A, layer)
        if layer == depth:  # ∂L/∂a_L: each sample's ∂ℓ/∂a_L with its share of L
            upstream = reduction_scale(network) * network.loss_rule.matrix_gradient(a, y, network.sizes[-1])
        else:
            upstream = matmul(transpose(weights[f"W{layer + 1}"]), quantity(Role.DELTA, layer + 1))
        example = Note(_AT_OUTPUT_EXAMPLES[activation.name]) if activation.name in _AT_OUTPUT_EXAMPLES else ""
        text = {"layer": str(layer), "above": str(layer + 1), "below": str(layer - 1)}
        variants.append(
            _Variant(
                "missing_activation_derivative",
                Note("mistake_missing_activation_derivative", text),
                _replace(program, Role.DELTA, layer, upstream),
            )
        )
        if activation.elementwise:
            at_output = upstream * activation.derivative(a, activation.function(a))
            variants.append(
                _Variant(
                    "derivative_at_output",
                    Note("mistake_derivative_at_output", {**text, "example": example}),
                    _replace(program, Role.DELTA, layer, at_output),
                )
            )
        if layer < depth and network.sizes[layer + 1] == network.sizes[layer]:
            weight = weights[f"W{layer + 1}"]
            delta = program.step(Role.DELTA, layer).expression
            untransposed = delta.xreplace({transpose(weight): weight})
            variants.append(
                _Variant(
                    "missing_transpose",
                    Note("mistake_missing_transpose", text),
                    _replace(program, Role.DELTA, layer, untransposed),
                )
            )
        if network.sizes[layer] == network.sizes[layer - 1]:
            own_input = matmul(quantity(Role.DELTA, layer), transpose(a))
            variants.append(
                _Variant(
                    "wrong_layer_input",
                    Note("mistake_wrong_layer_input", text),
                    _replace(program, Role.GRAD_W, layer, own_input),
                )
            )
        if network.bias:
            variants.append(
                _Variant(
                    "bias_not_summed",
                    Note("mistake_bias_not_summed", text),
                    _replace(program, Role.GRAD_B, layer, quantity(Role.DELTA, layer)),
                )
            )
    return variants


# check_backward's own tolerances, relative to the largest entry of the right gradient. They are kept here rather
# than read from verify's DEFAULT_RTOL so that a change there cannot loosen this verdict unseen; tests/test_verdict.py
# pins them (a gradient off by 1e-3 relative is WRONG in float32, one off by 1e-8 in float64).
RTOL: Mapping[torch.dtype, float] = MappingProxyType(
    {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 1e-2}
)
FALLBACK_RTOL = 1e-4  # a dtype RTOL does not list
# What is wrong with a gradient before its numbers say anything; named in the diagnosis like mistakes, but not
# catalogued mistakes (MISTAKES): they need no derivation to find.
PROBLEMS = ("shape", "dtype", "not_finite")


def _forbidden_batches(network: Network) -> set[int]:
    """Batch sizes at which a wrong gradient can look right, or one mistake look like another.

    1: the batch's sum is the sample. 2: half_sse's ½ doubled or dropped (a factor 2 or ½) equals batch_scale's
    B or 1/B. Each width n: then x.shape[0] == x.shape[1] (the PyTorch habit B = x.shape[0] passes), a
    transposed [n, B] keeps its shape, and mse's 1/n forgotten is a factor n = B. 2n and n/2: mse's 2/n written
    1/n or 2 (a factor n/2 or 2n). Any other constant factor c can equal one batch size only; the second draw
    at another size tells it from batch_scale, whose factor follows B.
    """
    widths = set(network.sizes)
    return {1, 2, *widths, *(2 * n for n in widths), *(n // 2 for n in widths if n % 2 == 0)}


def _batch_sizes(network: Network, first: int | None = None) -> tuple[int, int]:
    """The two draws' batch sizes: ``first`` (the user's, when given) or the smallest allowed one, then the
    smallest allowed one other than ``first``."""
    forbidden = _forbidden_batches(network)
    allowed = (b for b in itertools.count(3) if b not in forbidden)
    first = next(allowed) if first is None else first
    return first, next(b for b in allowed if b != first)


@dataclass(frozen=True)
class _Draw:
    """One call of the user's function: the values it was given (chainrule's layout, float64) and its gradients
    (chainrule's layout, the dtype and shape it returned)."""

    values: Mapping[str, torch.Tensor]
    user: Mapping[str, torch.Tensor]
    dtype: torch.dtype  # the dtype the user was given
    # the model form: per parameter, (the shape returned, the shape expected) in torch's layout, where the user's
    # shapes are judged (a bias gradient is [n], as torch's own .grad; chainrule's [n, 1] is a wrong shape there)
    torch_shapes: Mapping[str, tuple[torch.Size, torch.Size]] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.values["x"].shape[1]


@dataclass(frozen=True)
class BackwardReport:
    """The result of :func:`check_backward`; ``ok`` when every gradient matches. ``str(report)`` explains, in
    English; ``report.text(lang="zh")`` in Chinese."""

    network: Network
    errors: Mapping[str, Comparison]  # per parameter, the user's gradient against the derivation's (worst draw)
    mistakes: tuple[Mistake, ...]  # empty when ok; PROBLEMS (shape, dtype, not_finite) first, then the catalogue's
    names: Mapping[str, str]  # the user's parameter names -> chainrule's (W1, b1, ...)
    notes: Mapping[str, Note] = field(default_factory=dict)  # each mistake's English explanation -> its Note
    batches: tuple[int, ...] = ()  # the batch size of each draw the user's function was called on

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.errors.values()) and not self.mistakes

    def __str__(self) -> str:
        return self.text()

    def text(self, lang: str = "en") -> str:
        """The report, its words in ``lang`` (one of ``symbolic.LANGUAGES``); the mistakes' names, parameter
        names and numbers are the same in every language."""
        w = words(lang)
        shown = {name: name if self.names[name] == name else f"{name} ({self.names[name]})" for name in self.errors}
        flagged = {m.parameter for m in self.mistakes}
        rows = [
            (shown[name], c, w["entry_ok"] if c.ok and name not in flagged else w["wrong"])
            for name, c in self.errors.items()
        ]
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


def _shape_text(shape: torch.Size) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _agrees(theirs: torch.Tensor, ours: torch.Tensor, rtol: float) -> bool:
    return theirs.shape == ours.shape and compare("", theirs, ours, rtol).ok


def _shape_problem(name: str, draws: list[_Draw], correct: list[dict], rtol: float) -> Note | None:
    """The first draw's wrong shape, "transposed" when the transpose is right at every draw; in the layout the
    user works in (torch's in the model form)."""
    for draw, right in zip(draws, correct):
        theirs, ours = draw.user[name].shape, right[name].shape
        if name in draw.torch_shapes:
            theirs, ours = draw.torch_shapes[name]
        if theirs != ours:
            transposed = all(
                d.user[name].ndim == 2 and _agrees(d.user[name].T, r[name], rtol) for d, r in zip(draws, correct)
            )
            key = "problem_shape_transposed" if transposed else "problem_shape"
            return Note(key, {"shape": _shape_text(theirs), "expected": _shape_text(ours)})
    return None


def _dtype_problem(name: str, draws: list[_Draw], rtol: float) -> tuple[Note | None, float]:
    """The gradient's dtype when it is not the one given, and the tolerance its numbers are compared at.

    A dtype other than the one given is WRONG, not a warning: float32 keeps about 7 digits, so a float32 gradient
    compared at float64's 1e-10 fails on rounding alone (a wrong verdict on right maths), and compared at float32's
    tolerance it passes without the float64 precision that was asked for (a wrong OK). Neither number is the truth,
    so the dtype is named as the problem, and the numbers are compared at the lower precision's tolerance so that
    the catalogue can still say whether the maths is right as well. Any other dtype (float64 for a float32 model,
    an integer) is WRONG too: a gradient has its parameter's dtype (torch refuses another one as ``.grad``).
    """
    for draw in draws:
        dtype = draw.user[name].dtype
        if dtype != draw.dtype:
            tolerance = max(rtol, RTOL.get(dtype, rtol))
            said = {"dtype": str(dtype).removeprefix("torch."), "expected": str(draw.dtype).removeprefix("torch.")}
            coarser = dtype.is_floating_point and torch.finfo(dtype).eps > torch.finfo(draw.dtype).eps
            key = "problem_dtype" if coarser else "problem_dtype_other"
            return Note(key, {**said, "rtol": f"{tolerance:.0e}"}), tolerance
    return None, rtol


def _not_finite_problem(name: str, draws: list[_Draw], correct: list[dict]) -> Note | None:
    """How many nan and inf entries the first draw that has any holds where the right gradient is finite."""
    for draw, right in zip(draws, correct):
        theirs, ours = draw.user[name], right[name]
        if theirs.shape != ours.shape or not theirs.is_floating_point():
            continue
        bad = ~torch.isfinite(theirs) & torch.isfinite(ours)
        if bad.any():
            nan = int((bad & torch.isnan(theirs)).sum())
            said = {"nan": str(nan), "inf": str(int(bad.sum()) - nan), "total": str(theirs.numel())}
            return Note("problem_not_finite", said)
    return None


def _diagnose(
    draws: list[_Draw],
    correct: list[dict],
    variants: list[tuple[_Variant, list[dict]]],
    wrong: list[str],
    tolerance: Mapping[str, float],
    skip: set[str],
) -> list[tuple[str, str, Note]]:
    """(parameter, mistake name, explanation) for each wrong gradient (``skip``: those named otherwise, which
    get a catalogued name when one reproduces them but no ``unknown``). A mistake is named for a parameter only
    when it reproduces the user's gradient at every draw."""

    def matches(grads: list[dict], name: str) -> list[bool]:
        return [_agrees(d.user[name], g[name], tolerance[name]) for d, g in zip(draws, grads)]

    # first the mistakes that reproduce every gradient; then, parameter by parameter
    whole = [v for v, grads in variants if all(all(matches(grads, name)) for name in correct[0])]
    if whole:
        return [(name, v.name, v.explanation) for v in whole for name in wrong]
    # a mistake changes some gradients; where the user's gradient of one of those is right, the user did not
    # make that mistake (a sign flipped in the last layer only is not "ŷ − y flipped", which flips them all)
    changed = {
        id(v): {n for n in correct[0] if any(not _agrees(g[n], c[n], tolerance[n]) for g, c in zip(grads, correct))}
        for v, grads in variants
    }
    mistakes = []
    for name in wrong:
        found = [v for v, grads in variants if all(matches(grads, name))]
        refuted = [v for v in found if changed[id(v)] - set(wrong)]
        found = [v for v in found if v not in refuted]
        mistakes += [(name, v.name, v.partial or v.explanation) for v in found]
        if found or name in skip:
            continue
        if refuted:  # e.g. these gradients are the negatives of the right ones, but the others are right
            names = ", ".join(dict.fromkeys(v.name for v in refuted))
            mistakes.append((name, UNKNOWN, Note("mistake_refuted", {"names": names})))
            continue
        # reproduced at one batch size only, where the user's gradient is wrong: a coincidence of sizes, said so
        # (where it is right, every mistake that leaves this gradient alone "reproduces" it)
        wrong_at = [not _agrees(d.user[name], c[name], tolerance[name]) for d, c in zip(draws, correct)]
        seen_by = [(v, matches(grads, name)) for v, grads in variants]
        once = [(v, seen) for v, seen in seen_by if any(m and w for m, w in zip(seen, wrong_at))]
        if once:
            seen = once[0][1]  # the batch sizes it matched at and did not; the names said are those that agree
            batch, other = draws[seen.index(True)].batch, draws[seen.index(False)].batch
            names = ", ".join(dict.fromkeys(v.name for v, each in once if each == seen))
            note = Note("mistake_coincidence", {"names": names, "batch": str(batch), "other": str(other)})
            mistakes.append((name, UNKNOWN, note))
        else:
            mistakes.append((name, UNKNOWN, Note("mistake_unknown")))
    return mistakes


def _as_user_gradients(result: object, expected: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The user's gradients as plain, dense CPU tensors, their dtype and shape kept (they are checked, not
    corrected). Reading them runs the user's code too (a Mapping's items(), a tensor subclass's
    __torch_function__): whatever that raises is said in one line, as an exception in their function is."""
    try:
        return _read_user_gradients(result, expected)
    except ChainruleError:
        raise
    except MemoryError:
        raise
    except Exception as error:
        raise InputTypeError(
            f"the backward function's result could not be read as gradients: {type(error).__name__}: {error}"
        ) from None


def _plain(value: torch.Tensor) -> torch.Tensor:
    """A tensor subclass as a plain tensor (its __torch_function__ not run), sparse as dense."""
    with torch._C.DisableTorchFunctionSubclass():
        if value.layout != torch.strided:
            value = value.to_dense()
        return value.as_subclass(torch.Tensor)


def _read_user_gradients(result: object, expected: Mapping[str, object]) -> dict[str, torch.Tensor]:
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
            # a tensor or array has a dtype to check; nested Python floats are float64 (torch would read float32)
            if isinstance(value, torch.Tensor):
                value = _plain(value)
            dtype = None if hasattr(value, "dtype") else torch.float64
            gradients[name] = torch.as_tensor(value, dtype=dtype).detach().cpu()
        except (TypeError, ValueError, RuntimeError) as error:
            raise InputTypeError(f"gradient {name!r} is not a tensor of numbers: {error}") from None
    return gradients


def _call(fn: Callable, batch: int, *arguments: object) -> object:
    """The user's function; an exception in it as one InputError that says at which batch size and where (the
    second draw's batch size is chainrule's choice, and code that assumes the first one fails there only)."""
    try:
        return fn(*arguments)
    except MemoryError:  # the machine, not the user's mathematics: the CLI's exit 3
        raise
    except ChainruleError as error:  # already one line (the CLI's runner names the user's file:line)
        raise type(error)(f"at batch {batch}: {error}") from error
    except Exception as error:  # the user's code: whatever it raises is theirs, said in one line
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        raise InputError(
            f"the backward function raised at batch {batch} ({where}): {type(error).__name__}: {error}"
        ) from error


def _check(network: Network, draws: list[_Draw], rtol: float, names: Mapping[str, str]) -> BackwardReport:
    derivation = derive(network)
    program = derivation.matrix_program
    steps = list(program.steps)
    outputs = list(program.gradients.values())

    def compiled(variant_steps) -> Callable[[_Draw], dict[str, torch.Tensor]]:
        # compiled once, run on each draw
        function = _straight_line(
            program.inputs, outputs, list((s.target, s.expression) for s in variant_steps), MatrixTorchPrinter()
        )

        def run(draw: _Draw) -> dict[str, torch.Tensor]:
            v = draw.values
            return dict(zip(program.gradients, function(v["x"], v["y"], *(v[n] for n in network.parameter_shapes))))

        return run

    right = compiled(steps)
    correct = [right(draw) for draw in draws]
    # named before any number is compared: shape, dtype, nan/inf (each parameter's first)
    problems: dict[str, list[tuple[str, Note]]] = {name: [] for name in program.gradients}
    tolerance = {}
    for name in program.gradients:
        dtype_note, tolerance[name] = _dtype_problem(name, draws, rtol)
        shape_note = _shape_problem(name, draws, correct, tolerance[name])
        finite_note = _not_finite_problem(name, draws, correct)
        found = (("shape", shape_note), ("dtype", dtype_note), ("not_finite", finite_note))
        problems[name] = [(kind, note) for kind, note in found if note is not None]

    def worst(name: str) -> Comparison:
        each = [compare(name, d.user[name], c[name], tolerance[name]) for d, c in zip(draws, correct)]
        return max(each, key=lambda c: c.max_rel_error)

    errors = {name: worst(name) for name in program.gradients}
    wrong = [name for name, c in errors.items() if not c.ok]
    catalogue: list[tuple[str, str, Note]] = []
    if wrong:
        # each variant is compiled and run: about a second at MNIST size, so a bar on a terminal
        variants = [
            (v, list(map(compiled(v.steps), draws))) for v in _progress(_variants(network, program), "diagnosis", None)
        ]
        # a "mistake" that changes nothing (relu' at a equals relu' at z) explains nothing
        variants = [
            (v, grads)
            for v, grads in variants
            if any(not _agrees(g[n], c[n], rtol) for g, c in zip(grads, correct) for n in c)
        ]
        # a wrong shape or nan entries say nothing more by their numbers; a wrong dtype's numbers still do
        skip = {name for name, found in problems.items() for kind, _ in found if kind != "dtype"}
        catalogue = _diagnose(draws, correct, variants, wrong, tolerance, skip)
    explained = {parameter for parameter, _, _ in catalogue}
    named = [
        (name, kind, note)
        for name, found in problems.items()
        for kind, note in found
        if not (kind == "shape" and name in explained)  # a catalogued mistake that gives this shape says more
    ]
    mistakes = named + catalogue
    back = {ours: theirs for theirs, ours in names.items()}
    return BackwardReport(
        network,
        {back[name]: Comparison(back[name], c.max_abs_error, c.max_rel_error, c.rtol) for name, c in errors.items()},
        tuple(Mistake(back[parameter], name, note.text()) for parameter, name, note in mistakes),
        names,
        {note.text(): note for _, _, note in mistakes},
        tuple(draw.batch for draw in draws),
    )


def _check_rtol(rtol: object) -> None:
    """None, or a relative tolerance in (0, 1): a bool (True reads as 1) or inf would pass any gradient."""
    if rtol is None:
        return
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)):
        raise InputTypeError(f"rtol must be a number in (0, 1); got {rtol!r}")
    if not 0 < rtol < 1:  # also refuses nan, for which every comparison is False
        raise InputError(f"rtol must be a number in (0, 1); got {rtol!r}")


def _check_seed(seed: object) -> None:
    """The seed range the CLI accepts (torch.Generator.manual_seed's and numpy's: 0 to 2**64 − 1)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputTypeError(f"seed must be an integer; got {seed!r}")
    if not 0 <= seed < 2**64:
        raise InputError(f"seed must be between 0 and 2**64 - 1; got {seed}")


def _values_as_tensors(values: object) -> dict[str, torch.Tensor]:
    if not isinstance(values, Mapping):
        raise InputTypeError(f"values must be a dict of tensors keyed x, y, W1, ...; got {type(values).__name__}")
    tensors = {}
    for name, value in values.items():
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError(f"a {type(value).__name__}")
            if torch.as_tensor(value).is_complex():  # torch would drop the imaginary part with a warning only
                raise TypeError("complex numbers")
            tensors[name] = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as error:
            raise InputTypeError(f"values[{name!r}] must be a tensor or nested lists of numbers; got {error}") from None
    return tensors


def check_backward(
    fn: Callable,
    network: Network | nn.Module,
    *args,
    values: Mapping[str, object] | None = None,
    seed: int = 0,
    batch: int | None = None,
    rtol: float | None = None,
) -> BackwardReport:
    """Check a hand-written backward pass against the derivation, and name its mistakes.

    ``check_backward(fn, network)``: ``fn(x, y, params) -> {"W1": ..., "b1": ...}`` in chainrule's
    layout (x [n_in, B], y [n_out, B], samples as columns; b as [n, 1]), in float64. ``fn`` is called twice:
    on ``values`` (or ``random_values`` at ``batch`` samples; None: chosen, equal to no width of the network
    and not 1 or 2), then with the same parameters on x and y drawn at a second batch size that collides with
    nothing either. Every gradient must match at both, and a catalogued mistake is named only when it gives the
    user's numbers at both (at one only, the gradient is ``unknown`` and the report says so).

    ``check_backward(fn, model, loss_fn, inputs, targets)``: an ``nn.Sequential`` and a loss (module or
    name); ``fn(inputs, targets, params)`` gets ``params`` keyed like ``model.named_parameters()`` and
    returns gradients keyed the same way, in torch's layout (rows are samples), each shaped like its parameter,
    as ``.grad`` is (a bias gradient is [n]; chainrule's [n, 1] is named a wrong shape here). The second call gets
    inputs and targets of the same kinds (dtype; class indices or values) drawn at another batch size.

    The report's ``mistakes`` lists ``(parameter, name, explanation)``; names are ``MISTAKES`` keys,
    ``"unknown"``, or one of ``PROBLEMS`` (a wrong shape, dtype, or nan/inf entries), which come first.
    """
    if not callable(fn):
        raise InputTypeError(f"check_backward takes the backward function first; got {type(fn).__name__}")
    _check_rtol(rtol)
    _check_seed(seed)
    if isinstance(network, nn.Module):
        if len(args) != 3:
            raise InputTypeError(
                "check_backward(fn, model, loss_fn, inputs, targets): give the loss, inputs and targets"
            )
        return _check_model(fn, network, *args, rtol=rtol, seed=seed)
    if not isinstance(network, Network):
        raise InputTypeError(
            f"check_backward takes a Network or an nn.Sequential after the function; got {type(network).__name__}"
        )
    if args:
        raise InputTypeError(
            "check_backward(fn, network, *, values=None, seed=0, batch=None): no more positional arguments"
        )
    if values is None:
        tensors = random_values(network, _batch_sizes(network)[0] if batch is None else batch, seed)
    else:
        tensors = _values_as_tensors(values)
    require_exactly("values", tensors, ("x", "y", *network.parameter_shapes))
    params = {name: tensors[name] for name in network.parameter_shapes}
    check_inputs(network, tensors["x"], tensors["y"], params)  # shapes, before the user's code sees them
    if tensors["x"].shape[1] < 1:
        raise InputError("the x of values has no samples (shape [n_in, 0]); give at least one column")
    if values is not None and batch is not None and batch != tensors["x"].shape[1]:
        raise InputError(f"batch={batch!r}, but the x of values has {tensors['x'].shape[1]} samples; give one of them")
    second = _batch_sizes(network, tensors["x"].shape[1])[1]
    # the second draw: the same parameters, x and y at another batch size
    drawn = as_tensors(sample_values(network, seed=seed, batch=second, inputs_only=True), torch.float64)
    draws = []
    for x, y in ((tensors["x"], tensors["y"]), (drawn["x"], drawn["y"])):
        given = {name: value.clone() for name, value in params.items()}
        user = _as_user_gradients(_call(fn, x.shape[1], x.clone(), y.clone(), given), network.parameter_shapes)
        draws.append(_Draw({"x": x, "y": y, **params}, user, torch.float64))
    rtol = RTOL[torch.float64] if rtol is None else rtol
    return _check(network, draws, rtol, {name: name for name in network.parameter_shapes})


def _model_draw(
    fn: Callable, network: Network, model: nn.Module, names: Mapping[str, str], inputs, targets, params
) -> _Draw:
    """The user's function called on a torch batch; its gradients in chainrule's names and layout."""
    x, y = torch_batch(network, inputs, targets)
    torch_params = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    result = _call(fn, inputs.shape[0], inputs.detach().clone(), targets.detach().clone(), torch_params)
    user_torch = _as_user_gradients(result, torch_params)
    batch = x.shape[1]
    user, shapes = {}, {}
    for theirs, value in user_torch.items():
        ours = names[theirs]
        shapes[ours] = (value.shape, torch_params[theirs].shape)  # torch's layout: a bias gradient is [n]
        if ours.startswith("b") and value.ndim == 1:
            value = value.reshape(-1, 1)
        elif ours.startswith("b") and value.ndim == 2 and value.shape[0] == batch:
            value = value.T  # one row per sample, as torch lays samples out: chainrule's columns
        user[ours] = value
    values = {"x": x, "y": y, **params}
    tensors = {name: value.detach().to(torch.float64) for name, value in values.items()}
    return _Draw(tensors, user, inputs.dtype, shapes)


def _second_torch_batch(network: Network, inputs: torch.Tensor, targets: torch.Tensor, batch: int, seed: int):
    """Inputs and targets of the same kinds as the user's (dtype; class indices or values) at ``batch`` samples.
    Always possible: torch_batch takes only inputs [B, n_in] and targets [B, n_out] or class indices [B], which
    can be drawn at any B; so the model form, too, confirms each diagnosis at a second batch size."""
    drawn = as_tensors(sample_values(network, seed=seed, batch=batch, inputs_only=True), torch.float64)
    second_inputs = drawn["x"].T.to(inputs.dtype)
    if targets.is_floating_point():
        return second_inputs, drawn["y"].T.to(targets.dtype)
    return second_inputs, drawn["y"].argmax(0).to(targets.dtype)  # class indices: y is one-hot per sample


def _check_model(
    fn: Callable, model: nn.Module, loss_fn, inputs, targets, rtol: float | None, seed: int = 0
) -> BackwardReport:
    network, params = network_from_torch(model, loss_fn, "check_backward")
    names = {theirs: ours for ours, theirs in torch_parameter_names(model).items()}
    draws = [_model_draw(fn, network, model, names, inputs, targets, params)]
    second = _second_torch_batch(network, inputs, targets, _batch_sizes(network, draws[0].batch)[1], seed)
    draws.append(_model_draw(fn, network, model, names, *second, params))
    rtol = RTOL.get(inputs.dtype, FALLBACK_RTOL) if rtol is None else rtol
    return _check(network, draws, rtol, names)


__all__ = ["MISTAKES", "PROBLEMS", "RTOL", "UNKNOWN", "BackwardReport", "Mistake", "check_backward"]
