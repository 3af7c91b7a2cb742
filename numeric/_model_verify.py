"""verify for a Model: its compiled gradients against autograd of ``to_torch(model)``, and finite differences.

The reference shares no code with the derivation: ``_model_torch``'s modules of torch's own layers, run forward
and differentiated by ``backward()``, with torch's loss (``_torch_models.reference_loss``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from symbolic import InputError, InputTypeError
from symbolic._model import Dropout, Model
from symbolic._model_program import ModelProgram, derive_model_program

from ._checks import check_dtype
from ._compare import DEFAULT_RTOL, Comparison, compare
from ._model_compile import CompiledModelGradients, compile_model
from ._model_torch import set_masks, to_torch_model, torch_names
from ._torch_models import _activation_module, reference_loss


def autograd_model_gradients(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor] | None = None,
    wrt: tuple[str, ...] = (),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss and ``loss.backward()``'s gradients of ``to_torch(model, params)`` at (x, y) [B, ...] rows."""
    module = to_torch_model(model, params, functools.partial(_activation_module, exact=True))
    set_masks(module, masks)
    names = torch_names(model, module)
    inputs = x.detach().clone().requires_grad_("x" in wrt)
    loss = reference_loss(model, module(inputs), y)  # type: ignore[arg-type]  # reads loss_rule and reduction
    loss.backward()
    found = dict(module.named_parameters())
    gradients = {name: found[names[name]].grad for name in model.parameter_shapes}
    if "x" in wrt:
        gradients["x"] = inputs.grad
    return loss.detach(), gradients


# -- verify(model) ------------------------------------------------------------------------------------------

FLOOR = 1e-3  # a gradient that is 0 exactly (a bias before BatchNorm) is compared relative to this share of the
# largest gradient: autograd leaves rounding noise there, and noise relative to noise is no error


def random_model_values(
    model: Model, batch: int = 4, seed: int = 0, dtype: torch.dtype = torch.float64
) -> dict[str, torch.Tensor]:
    """x [B, *input_shape], y (what the loss takes: real numbers, probabilities or a distribution per row),
    every parameter (W scaled by 1/√fan-in, γ near 1) and dropout mask (kept with probability 1 − p), drawn
    from ``seed``."""
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    values: dict[str, torch.Tensor] = {"x": normal(batch, *model.input_shape)}
    n, targets = model.output_size, model.loss_rule.targets
    if targets == "distribution":
        values["y"] = torch.softmax(normal(batch, n), dim=1)
    elif targets == "probability":
        values["y"] = torch.rand(batch, n, generator=generator, dtype=torch.float64)
    else:
        values["y"] = normal(batch, n)
    for name, shape in model.parameter_shapes.items():
        if name.startswith("W"):
            values[name] = normal(*shape) / max(1, int(torch.tensor(shape[1:]).prod())) ** 0.5
        else:
            values[name] = (1.0 if name.startswith("gamma") else 0.0) + 0.3 * normal(*shape)
    dropouts = {id(p.layer): p.layer for p in model.placed if isinstance(p.layer, Dropout)}
    for (name, shape), layer in zip(model.mask_shapes.items(), dropouts.values(), strict=True):
        values[name] = (torch.rand(batch, *shape, generator=generator, dtype=torch.float64) >= layer.p).double()
    return {name: value.to(dtype) for name, value in values.items()}


@dataclass(frozen=True)
class ModelReport:
    """``verify``'s answer for a Model: every gradient against autograd of ``to_torch(model)``, and the
    directional finite differences of the compiled loss (a random direction per parameter)."""

    model: Model
    dtype: torch.dtype
    samples: int
    loss: float
    comparisons: tuple[Comparison, ...]
    finite_differences: dict[str, bool]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.comparisons) and all(self.finite_differences.values())

    def text(self, lang: str = "en") -> str:
        """The report in English (``lang`` is accepted for the dense Report's signature; no Chinese text yet)."""
        layers = f"{len(self.model.layers)} layers"
        if len(self.model.placed) != len(self.model.layers):
            layers += f" ({len(self.model.placed)} with the residual blocks' own)"
        lines = [f"verify: {layers}, {self.samples} samples, {self.dtype}, loss {self.loss:.6g}"]
        for c in self.comparisons:
            check = self.finite_differences.get(c.name)
            differences = "" if check is None else f"  finite differences {'ok' if check else 'FAIL'}"
            lines.append(
                f"  {c.name:<10} max rel error {c.max_rel_error:.2e} (rtol {c.rtol:g}) "
                f"{'ok' if c.ok else 'FAIL'}{differences}"
            )
        lines.append("all gradients agree" if self.ok else "MISMATCH")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _directional_check(compiled, values, gradients, seed: int) -> dict[str, bool]:
    """For each parameter, (L(p + h d) − L(p − h d)) / 2h against ⟨∂L/∂p, d⟩ for a random unit direction d."""
    generator = torch.Generator().manual_seed(seed)
    params = {name: values[name] for name in compiled.model.parameter_shapes}
    masks = {name: values[name] for name in compiled.model.mask_shapes}
    results = {}
    for name, value in params.items():
        direction = torch.randn(value.shape, generator=generator, dtype=torch.float64).to(value.dtype)
        direction /= direction.norm()
        step = 1e-6 * max(1.0, value.abs().max().item())
        losses = [
            compiled.value_and_grad(values["x"], values["y"], {**params, name: value + s * direction}, masks)[0]
            for s in (step, -step)
        ]
        estimate = ((losses[0] - losses[1]) / (2 * step)).item()
        exact = (gradients[name] * direction).sum().item()
        scale = max(abs(exact), max(g.abs().max().item() for g in gradients.values()) * FLOOR)
        results[name] = abs(estimate - exact) <= 1e-5 * scale + 1e-9 * abs(losses[0].item())
    return results


def verify_model(
    model: Model | ModelProgram,
    values: Mapping[str, object] | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    batch: int | None = None,
    seed: int | None = None,
    rtol: float | None = None,
    gradcheck: str | bool = "auto",
    compiled: object = None,
) -> ModelReport:
    """``verify`` for a Model: the compiled gradients (and ∂L/∂x, when the program was made with
    ``wrt=("x",)``) against autograd of ``to_torch(model)``; ``gradcheck`` (not "off"/False) adds the
    directional finite differences of the compiled loss, in float64. ``values`` (x, y, every parameter and
    mask) default to ``random_model_values(model, batch or 4, seed or 0)``. ``compiled`` checks a function a
    caller already has (a CompiledModelGradients of this model) rather than compiling one."""
    dtype = check_dtype(dtype)
    program = model if isinstance(model, ModelProgram) else derive_model_program(model)
    model = program.model
    if values is None:
        values = random_model_values(model, 4 if batch is None else batch, 0 if seed is None else seed, dtype)
    if not isinstance(values, Mapping):
        raise InputTypeError(f"values must map x, y, the parameters and masks to tensors; got {type(values).__name__}")
    expected = {"x", "y", *model.parameter_shapes, *model.mask_shapes}
    if set(values) != expected:
        raise InputError(f"values must hold exactly {', '.join(sorted(expected))}; got {', '.join(sorted(values))}")
    tensors = {name: torch.as_tensor(value, dtype=dtype) for name, value in values.items()}
    if rtol is not None and (isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < math.inf):
        raise InputError(f"rtol must be a positive finite number (a relative tolerance); got {rtol!r}")
    rtol = DEFAULT_RTOL.get(dtype, 1e-4) if rtol is None else float(rtol)
    if compiled is None:
        compiled = compile_model(program)
    elif not isinstance(compiled, CompiledModelGradients) or compiled.model != model:
        raise InputTypeError(
            f"compiled must be the CompiledModelGradients of this model; got {type(compiled).__name__}"
        )
    params = {name: tensors[name] for name in model.parameter_shapes}
    masks = {name: tensors[name] for name in model.mask_shapes}
    ours = compiled(tensors["x"], tensors["y"], params, masks)
    loss, reference = autograd_model_gradients(model, tensors["x"], tensors["y"], params, masks, program.wrt)
    largest = max((r.abs().max().item() for r in reference.values() if r.numel()), default=0.0)
    comparisons = []
    for name, expected_gradient in reference.items():
        found = compare(name, ours[name], expected_gradient, rtol)
        floor = FLOOR * largest
        if math.isfinite(found.max_abs_error) and expected_gradient.abs().max().item() < floor:
            found = replace(found, max_rel_error=found.max_abs_error / floor)
        comparisons.append(found)
    checks: dict[str, bool] = {}
    if gradcheck not in ("off", False):
        as64 = {name: value.double() for name, value in tensors.items()}
        compiled64 = compiled if dtype == torch.float64 else compile_model(compiled.program)
        reused = (
            ours
            if dtype == torch.float64
            else compiled64(as64["x"], as64["y"], {n: as64[n] for n in params}, {n: as64[n] for n in masks})
        )
        checks = _directional_check(compiled64, as64, reused, 0 if seed is None else seed)
    return ModelReport(model, dtype, tensors["x"].shape[0], float(loss), tuple(comparisons), checks)
