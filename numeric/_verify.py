"""verify: compiled gradients against torch autograd, the exact closed form, and finite differences."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from symbolic import (
    TUTORIAL,
    TUTORIAL_VALUES,
    Derivation,
    ExpressionTooLarge,
    InputError,
    InputTypeError,
    Network,
    display_width,
    pad,
    sample_arrays,
    words,
)
from symbolic._memory import gib, require_memory
from symbolic._model import Model
from symbolic._model_program import ModelProgram
from symbolic._values import check_seed_and_batch
from symbolic._words import Note

from ._checks import check_device, check_dtype, check_values, verify_memory
from ._choices import GRADCHECK_MODES
from ._compare import DEFAULT_RTOL, Comparison, compare
from ._compile import compile_gradients
from ._compiled import CompiledGradients
from ._finite_differences import ProbeResult, plan_probes, sampled_finite_differences
from ._torch_models import autograd_loss_and_gradients

if TYPE_CHECKING:
    from ._model_verify import ModelReport

# The exact closed form is evaluated (with SymPy, slowly) up to this many parameters x samples.
CLOSED_FORM_LIMIT = 400
# Finite differences (the modes: GRADCHECK_MODES, numeric/_choices.py): "full" checks every entry (two loss
# evaluations each), "sample" a random direction per parameter and SAMPLED_ENTRIES random entries in all, in one
# batched forward pass (_finite_differences.py), "off" none; "auto" is full up to FULL_GRADCHECK_LIMIT parameters
# (a fraction of a second), sampled above (784-128-10 has 101,770).
FULL_GRADCHECK_LIMIT = 2_000
SAMPLED_ENTRIES = 8


def random_values(
    network: Network,
    batch: int = 4,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """``symbolic.sample_arrays`` as tensors: the same numbers ``chainrule derive --seed`` shows.

    The arrays become tensors one at a time without a detour through Python lists (float64 on the CPU
    shares the array's memory); a draw that cannot fit in memory is refused before it starts (ResourceError).
    """
    dtype, device = check_dtype(dtype), check_device(device)
    arrays = sample_arrays(network, seed=seed, batch=batch)
    return {name: torch.from_numpy(arrays.pop(name)).to(dtype=dtype, device=device) for name in list(arrays)}


def as_tensors(
    values: Mapping[str, object], dtype: torch.dtype, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Nested lists or tensors as tensors of one dtype and device."""
    return {name: torch.as_tensor(value, dtype=dtype, device=device) for name, value in values.items()}


@dataclass(frozen=True)
class Settlement:
    """A gradient where autograd is NaN/inf at ``count`` entries and the compiled one is finite: what the
    exact reference ``judge`` ("closed_form", "finite_differences", or None when none could) says of the
    compiled gradient (``agrees``; None when no judge)."""

    name: str
    count: int
    entries: int
    judge: str | None
    agrees: bool | None

    def note(self) -> Note:
        fields = {"name": self.name, "count": f"{self.count:,}", "entries": f"{self.entries:,}"}
        if self.judge is None:
            return Note("autograd_nonfinite_unsettled", fields)
        key = "autograd_nonfinite_agrees" if self.agrees else "autograd_nonfinite_disagrees"
        return Note(key, {**fields, "judge": Note(f"judge_{self.judge}")})


# The reports' table (verify's and check_backward's): the word of each column head and its least width (the
# English one; the parameter left-aligned, the numbers right-aligned), then the result.
_REPORT_COLUMNS = (
    ("column_parameter", 10),
    ("column_max_abs_error", 14),
    ("column_max_rel_error", 14),
    ("column_tolerance", 10),
)


def _error_table(w: Mapping[str, str], rows: list[tuple[str, Comparison, str]], name_width: int) -> list[str]:
    """The head line, then a line per ``(label, comparison, result word)``, padded in terminal columns (a wide
    character takes two; format specs count characters, which would misalign a Chinese head)."""
    heads = [w[key] for key, _ in _REPORT_COLUMNS]
    least = [max(name_width, *(len(label) for label, _, _ in rows)), *(width for _, width in _REPORT_COLUMNS[1:])]
    widths = [max(width, display_width(head)) for width, head in zip(least, heads)]

    def line(cells: tuple[str, ...], result: str) -> str:
        padded = [pad(cells[0], widths[0]), *(pad(cell, width, ">") for cell, width in zip(cells[1:], widths[1:]))]
        return " ".join(padded) + f"  {result}"

    return [line(tuple(heads), w["column_result"])] + [
        line((label, f"{c.max_abs_error:.3e}", f"{c.max_rel_error:.3e}", f"{c.rtol:.0e}"), result)
        for label, c, result in rows
    ]


@dataclass(frozen=True)
class Report:
    """The result of :func:`verify`; ``ok`` when every check passed. ``str(report)`` is a table, in English;
    ``report.text(lang="zh")`` says it in Chinese."""

    network: Network
    dtype: torch.dtype
    batch: int
    form: str
    loss: float
    compiled: dict[str, torch.Tensor]
    autograd: dict[str, torch.Tensor]
    closed_form: dict[str, torch.Tensor] | None
    comparisons: tuple[Comparison, ...]  # compiled vs autograd
    closed_form_comparisons: tuple[Comparison, ...]  # closed form (exact) vs autograd
    gradcheck: bool | None  # finite differences of the compiled gradients (float64) all passed; None: not run
    gradcheck_coverage: Note | None = None  # what the finite differences covered (every entry, or what was sampled)
    closed_form_skipped: Note | None = None  # why the closed-form check was skipped, when it was
    # per checked name, the finite differences' answer: True, False, or None where the loss itself was NaN/inf
    finite_difference_results: Mapping[str, bool | None] = field(default_factory=dict)
    settlements: tuple[Settlement, ...] = ()  # where autograd is NaN/inf and the compiled gradient is finite

    @property
    def gradcheck_inconclusive(self) -> tuple[str, ...]:
        """The names whose finite differences met a NaN/inf loss and could say nothing."""
        return tuple(name for name, result in self.finite_difference_results.items() if result is None)

    @property
    def ok(self) -> bool:
        """Every comparison within its tolerance and the finite differences passed; where autograd is NaN/inf
        the verdict is the exact reference's (closed form, else finite differences), never the NaN's."""
        settled = {s.name for s in self.settlements if s.agrees}
        checks = self.comparisons + self.closed_form_comparisons
        compared = all(c.ok or (c.name in settled and c.ok_where_finite) for c in checks)
        unsure = self.gradcheck_inconclusive
        excused = bool(unsure) and False not in self.finite_difference_results.values() and set(unsure) <= settled
        return compared and (self.gradcheck is not False or excused)

    @property
    def gradcheck_detail(self) -> str:
        """What the finite differences covered, in English ("" when they were off)."""
        return self.gradcheck_coverage.text() if self.gradcheck_coverage else ""

    @property
    def closed_form_note(self) -> str:
        """Why the closed-form check was skipped, in English ("" when it ran)."""
        return self.closed_form_skipped.text() if self.closed_form_skipped else ""

    def __str__(self) -> str:
        return self.text()

    def text(self, lang: str = "en") -> str:
        """The report as a table, its words in ``lang`` (one of ``symbolic.LANGUAGES``); numbers, parameter
        names, dtypes and identifiers (autograd, gradcheck) are the same in every language."""
        w = words(lang)
        dtype = str(self.dtype).replace("torch.", "")
        compared = self.comparisons + self.closed_form_comparisons
        settled = {s.name for s in self.settlements if s.agrees}
        verdicts = [c.ok or (c.name in settled and c.ok_where_finite) for c in compared]
        head, *rows = _error_table(
            w, [(c.name, c, w["entry_ok"] if ok else w["mismatch"]) for c, ok in zip(compared, verdicts)], 10
        )
        network = self.network.describe(lang)
        lines = [
            w["report_network"].format(network=network, batch=self.batch, dtype=dtype, form=w[f"form_{self.form}"]),
            w["report_loss"].format(loss=f"{self.loss:.10g}"),
            head,
        ]
        split = len(self.comparisons)
        for title, section in (("compiled_vs_autograd", rows[:split]), ("closed_form_vs_autograd", rows[split:])):
            lines += [f"  {w[title]}", *section] if section else []
        if self.closed_form_skipped:
            lines.append(w["closed_form_skipped"].format(why=self.closed_form_skipped.text(lang)))
        lines += [f"  {settlement.note().text(lang)}" for settlement in self.settlements]
        lines += [
            "  " + Note("compiled_nonfinite", {"name": c.name, "count": f"{c.nonfinite_ours:,}"}).text(lang)
            for c in self.comparisons
            if c.nonfinite_ours
        ]
        if self.gradcheck is not None:
            if self.gradcheck:
                result = w["gradcheck_passed"]
            elif self.gradcheck_inconclusive and False not in self.finite_difference_results.values():
                result = w["gradcheck_inconclusive"].format(names=", ".join(self.gradcheck_inconclusive))
            else:
                result = w["gradcheck_failed"]
            sampled = self.gradcheck_coverage is not None and self.gradcheck_coverage.key.startswith("finite_")
            lines.append(w["finite_differences_result" if sampled else "gradcheck_result"].format(result=result))
        if self.gradcheck_coverage:
            lines.append(f"  {self.gradcheck_coverage.text(lang)}")
        lines.append(w["verdict"].format(verdict=w["verdict_ok"] if self.ok else w["mismatch"]))
        return "\n".join(lines)


class _CompiledLoss(torch.autograd.Function):
    """The compiled loss with the compiled gradients as its backward, so gradcheck can test them (the
    input's too, when the derivation has ∂L/∂x)."""

    @staticmethod
    def forward(ctx, x, y, compiled, names, *params):
        loss, gradients = compiled.value_and_grad(x, y, dict(zip(names, params)))
        ctx.has_input_gradient = "x" in gradients
        ctx.save_for_backward(*(gradients[name] for name in names), *([gradients["x"]] if "x" in gradients else []))
        return loss

    @staticmethod
    def backward(ctx, grad_output):
        saved = ctx.saved_tensors
        params, input_gradient = (saved[:-1], grad_output * saved[-1]) if ctx.has_input_gradient else (saved, None)
        return (input_gradient, None, None, None, *(grad_output * g for g in params))


FD_STEP = 1e-6  # gradcheck's eps


def _gradcheck(function, inputs, atol: float) -> bool:
    return torch.autograd.gradcheck(function, inputs, eps=FD_STEP, atol=atol, rtol=1e-5, raise_exception=False)


def _finite_difference_atol(loss: float) -> float:
    """gradcheck's absolute tolerance at a loss of this size: a central difference of a float64 loss L is
    off by about |L|·2.2e-16 / eps from rounding alone (3e-7 at a summed loss of 3,000), which would fail
    small true entries (∂L/∂x of one sample) under a fixed 1e-7; ten times that noise, and never below 1e-7."""
    return max(1e-7, 10 * abs(loss) * torch.finfo(torch.float64).eps / FD_STEP)


def check_with_gradcheck(
    compiled: CompiledGradients,
    values: Mapping[str, torch.Tensor],
    mode: str = "full",
    *,
    seed: int = 0,
    progress: bool | None = None,
) -> bool:
    """Finite differences of the compiled gradients, in float64; True when every checked part agrees.

    ``mode="full"``: ``torch.autograd.gradcheck`` of every entry, one parameter at a time (the others held),
    so a progress bar can follow. ``mode="sample"``: per parameter (and for x when derived) one random
    unit direction, and ``SAMPLED_ENTRIES`` random entries in all, drawn with ``seed``, every probe's two
    perturbed copies carried through one batched forward of the reference network (``_finite_differences``):
    linear in depth, where a gradcheck per parameter reran the whole network for each.
    """
    return all(finite_differences(compiled, values, mode, seed=seed, progress=progress).values())


def finite_differences(
    compiled: CompiledGradients,
    values: Mapping[str, torch.Tensor],
    mode: str = "full",
    *,
    seed: int = 0,
    progress: bool | None = None,
    gradients: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, bool | None]:
    """:func:`check_with_gradcheck`, parameter by parameter (and "x" when derived): True when its finite
    differences agree, False when one does not, None when the loss itself is NaN/inf there (they say
    nothing). ``gradients``: the float64 compiled gradients at ``values`` when the caller has them."""
    if mode not in ("full", "sample"):
        raise InputError(f"gradcheck mode must be 'full' or 'sample'; got {mode!r}")
    values64 = {name: torch.as_tensor(value).detach().to(torch.float64) for name, value in values.items()}
    names = compiled.derivation.parameters
    params = {name: values64[name] for name in names}
    if gradients is None or mode == "full":
        loss_value, gradients = compiled.value_and_grad(values64["x"], values64["y"], params)
    checked = (*names, *compiled.derivation.wrt)
    if mode == "sample":
        generator = torch.Generator().manual_seed(seed)
        shapes = {name: tuple(values64[name].shape) for name in checked}
        results = sampled_finite_differences(
            compiled.derivation.network,
            values64["x"],
            values64["y"],
            params,
            gradients,
            plan_probes(shapes, SAMPLED_ENTRIES, generator),
            generator,
            _finite_difference_atol,  # at the reference loss, which the pass computes
            layers=lambda steps: _progress(steps, "finite differences", progress),
        )
        return {name: _verdict([r for r in results if r.probe.name == name]) for name in checked}
    if not math.isfinite(float(loss_value)):  # every difference of a NaN/inf loss is NaN: nothing to learn
        return dict.fromkeys(checked)
    atol = _finite_difference_atol(float(loss_value))
    varied = ("x", *names)  # the loss's arguments in _CompiledLoss's order (y is never varied)
    passed = {}
    for name in _progress(checked, "finite differences", progress):
        arguments = [values64[other] for other in varied]
        position = varied.index(name)

        def loss(entries, position=position, arguments=arguments):
            moved = list(arguments)
            moved[position] = entries
            return _CompiledLoss.apply(moved[0], values64["y"], compiled, names, *moved[1:])

        passed[name] = bool(_gradcheck(loss, (values64[name].clone().requires_grad_(True),), atol))
    return passed


def _verdict(results: list[ProbeResult]) -> bool | None:
    """False when a finite difference disagrees; None when some were NaN/inf (the loss broke) and the rest
    agree; True when all agree."""
    conclusive = [r for r in results if math.isfinite(r.numerical)]
    if not all(r.ok for r in conclusive):
        return False
    return True if len(conclusive) == len(results) else None


def _progress(items, description: str, enabled: bool | None, total: int | None = None):
    """tqdm over ``items``; by default shown only when stdout is a terminal (never in pipes or logs)."""
    shown = sys.stdout.isatty() if enabled is None else enabled
    return tqdm(items, desc=description, total=total, disable=not shown, leave=False, file=sys.stderr)


def _gradcheck_coverage(network: Network, mode: str, input_entries: int = 0) -> Note:
    """What the finite differences covered; ``input_entries``: the entries of x when ∂L/∂x was derived."""
    and_x = "_and_x" if input_entries else ""
    if mode == "full":
        fields = {"entries": f"{network.parameter_count:,}", "x_entries": f"{input_entries:,}"}
        return Note(f"gradcheck_full{and_x}", fields if input_entries else {"entries": fields["entries"]})
    total = network.parameter_count + input_entries
    return Note(f"finite_differences_sample{and_x}", {"count": str(SAMPLED_ENTRIES), "total": f"{total:,}"})


def _check_rtol(rtol: object) -> float:
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)):
        raise InputTypeError(f"rtol must be a number such as 1e-6; got {rtol!r}")
    if not 0 < rtol < float("inf"):
        raise InputError(f"rtol must be a positive finite number (a relative tolerance); got {rtol!r}")
    return float(rtol)


def verify(
    derivation: Derivation,
    values: Mapping[str, object] | None = None,
    *,
    form: str = "matrix",
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    batch: int | None = None,
    seed: int | None = None,
    rtol: float | None = None,
    gradcheck: str | bool = "auto",
    compiled: CompiledGradients | None = None,
    progress: bool | None = None,
) -> Report | ModelReport:
    """Check the compiled gradients of ``derivation`` against torch autograd (and more).

    ``values`` (x, y and every parameter; nested lists or tensors) default to the tutorial's for the
    tutorial network when neither ``batch`` nor ``seed`` is given, else to ``random_values(network,
    batch, seed)`` (batch 4 and seed 0 unless given). Every entry of every gradient is
    compared with autograd. The exact closed form is compared too when the network is small (the report
    says why when it is not). ``gradcheck`` chooses the finite differences: ``"full"`` (every entry),
    ``"sample"`` (see :func:`check_with_gradcheck`; drawn with ``seed``), ``"off"``, or ``"auto"`` (full up
    to ``FULL_GRADCHECK_LIMIT`` entries, those of x included when derived, sampled above); True and False
    mean "auto" and "off".
    ``progress`` shows a progress bar (default: when stdout is a terminal).
    ``compiled`` lets a caller check a function it already has (or a deliberately broken one).
    A ``Model`` (or its ``derive_model_program``) is checked by ``_model_verify.verify_model``: a ModelReport.
    """
    if isinstance(derivation, (Model, ModelProgram)):  # a model beyond dense stacks: numeric/_model_verify.py
        from ._model_verify import verify_model

        return verify_model(
            derivation, values, dtype=dtype, batch=batch, seed=seed, rtol=rtol, gradcheck=gradcheck, compiled=compiled
        )
    if not isinstance(derivation, Derivation):
        raise InputTypeError(f"verify takes a Derivation (from symbolic.derive); got {type(derivation).__name__}")
    network = derivation.network
    dtype, device = check_dtype(dtype), check_device(device)
    mode = {True: "auto", False: "off"}.get(gradcheck, gradcheck) if isinstance(gradcheck, bool) else gradcheck
    if not isinstance(mode, str) or mode not in GRADCHECK_MODES:
        raise InputError(f"unknown gradcheck mode {gradcheck!r}; allowed: {', '.join(GRADCHECK_MODES)}")
    if values is None:  # refuse a run that cannot fit before drawing anything
        drawn = 1 if network == TUTORIAL and batch is None and seed is None else 4 if batch is None else batch
        check_seed_and_batch(0 if seed is None else seed, drawn)
        _require_memory(network, drawn, dtype, mode)
    if values is None:
        if network == TUTORIAL and batch is None and seed is None:
            values = TUTORIAL_VALUES
        else:
            values = random_values(network, 4 if batch is None else batch, 0 if seed is None else seed)
    else:
        try:  # the batch of the given x; a malformed one is left to check_values, which names the problem
            given = torch.as_tensor(values["x"]) if isinstance(values, Mapping) and "x" in values else None
        except (TypeError, ValueError, RuntimeError):
            given = None
        if given is not None and given.ndim == 2:
            _require_memory(network, given.shape[1], dtype, mode)
    seed = 0 if seed is None else seed
    tensors = as_tensors(check_values(network, values), dtype, device)
    rtol = DEFAULT_RTOL.get(dtype, 1e-4) if rtol is None else _check_rtol(rtol)
    if compiled is None:
        compiled = compile_gradients(derivation, form)
    elif not isinstance(compiled, CompiledGradients) or compiled.derivation.network != network:
        what = compiled.derivation.network.describe() if isinstance(compiled, CompiledGradients) else None
        raise InputTypeError(
            f"compiled must be the CompiledGradients of this network ({network.describe()}); "
            f"got {'those of ' + what if what else type(compiled).__name__}"
        )

    if mode == "auto":  # the entries finite differences would vary: the parameters', and x's when derived
        varied = network.parameter_count + (tensors["x"].numel() if derivation.wrt else 0)
        mode = "full" if varied <= FULL_GRADCHECK_LIMIT else "sample"
    params = {name: tensors[name] for name in network.parameter_shapes}
    stages = _progress(None, "verify: compiled vs autograd", progress, total=3)  # the closed form can be slow
    ours = compiled(tensors["x"], tensors["y"], params)
    loss, reference = autograd_loss_and_gradients(network, tensors["x"], tensors["y"], params, derivation.wrt)
    compared = (*derivation.parameters, *derivation.wrt)  # ∂L/∂x too when derived
    comparisons = tuple(compare(name, ours[name], reference[name], rtol) for name in compared)

    stages.update()
    stages.set_description("verify: closed form (SymPy)")
    closed_form, closed_comparisons, skipped = None, (), None
    samples = tensors["x"].shape[1]
    size = network.parameter_count * samples
    if size > CLOSED_FORM_LIMIT:
        skipped = Note(
            "closed_form_over_limit",
            {
                "parameters": f"{network.parameter_count:,}",
                "samples": str(samples),
                "size": f"{size:,}",
                "limit": f"{CLOSED_FORM_LIMIT:,}",
            },
        )
    else:
        try:
            exact = derivation.evaluate({k: v.tolist() for k, v in tensors.items()}, closed_form=True)
        except ExpressionTooLarge as error:
            exact, skipped = None, Note("closed_form_too_large", {"error": error.sentence or str(error)})
        if exact is not None:
            closed_form = {name: torch.tensor(exact[name], dtype=torch.float64) for name in derivation.parameters}
            # autograd is the reference side of both tables: where it is NaN/inf the row says so (Settlement)
            closed_comparisons = tuple(
                compare(name, closed_form[name], reference[name], rtol) for name in derivation.parameters
            )
    stages.update()
    stages.set_description("verify: finite differences")
    results: dict[str, bool | None] = {}
    if mode != "off":
        reuse = ours if dtype == torch.float64 else None  # the float64 gradients are the ones to check
        results = finite_differences(compiled, tensors, mode, seed=seed, progress=progress, gradients=reuse)
        if mode == "full" and None in results.values():
            # the compiled loss is NaN/inf at these values: the sampled differences read sigmoid + bce and
            # softmax + cross_entropy from the logits, where they stay finite (_finite_differences.py)
            mode = "sample"
            results = finite_differences(compiled, tensors, mode, seed=seed, progress=progress, gradients=reuse)
    passed = None if mode == "off" else all(result is True for result in results.values())
    settlements = tuple(
        _settle(c, ours[c.name], closed_form, results, rtol) for c in comparisons if c.nonfinite_reference
    )
    stages.update()
    stages.close()
    return Report(
        network,
        dtype,
        samples,
        compiled.form,
        float(loss),
        ours,
        reference,
        closed_form,
        comparisons,
        closed_comparisons,
        passed,
        None if mode == "off" else _gradcheck_coverage(network, mode, tensors["x"].numel() if derivation.wrt else 0),
        skipped,
        results,
        settlements,
    )


def _require_memory(network: Network, batch: int, dtype: torch.dtype, mode: str) -> None:
    """ResourceError, in one line with the estimate and what is available, when verify cannot fit."""
    parts = verify_memory(network, batch, dtype, mode)
    listed = ", ".join(f"{name} {gib(size)}" for name, size in parts.items())
    require_memory(sum(parts.values()), f"verify of {network.describe()} with batch {batch:,} in {dtype}", listed)


def _settle(
    comparison: Comparison,
    compiled: torch.Tensor,
    closed_form: Mapping[str, torch.Tensor] | None,
    finite_differences: Mapping[str, bool | None],
    rtol: float,
) -> Settlement:
    """Autograd is NaN/inf where the compiled gradient is finite: the exact closed form decides when it was
    evaluated (every entry, 50 digits), else the finite differences when they could say something."""
    count, entries, name = comparison.nonfinite_reference, comparison.entries, comparison.name
    if closed_form is not None and name in closed_form:
        return Settlement(name, count, entries, "closed_form", compare(name, compiled, closed_form[name], rtol).ok)
    if finite_differences.get(name) is not None:
        return Settlement(name, count, entries, "finite_differences", finite_differences[name])
    return Settlement(name, count, entries, None, None)
