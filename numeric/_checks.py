"""Input checks shared by the compiled functions, the autograd reference, verify and the CLI.

Each turns a mistake a user can make into an InputError/InputTypeError that names the value and what is
allowed, before torch or SymPy would fail on it somewhere deep inside.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from symbolic import InputError, InputTypeError, Network
from symbolic._errors import require_exactly

# float16 keeps about 3 significant decimal digits and bfloat16 about 2: too few for backpropagated
# products (the tutorial's dL/dW1[1,1] comes out with the wrong sign in float16; tests/test_errors.py shows it).
HALF_PRECISION = (torch.float16, torch.bfloat16)
HALF_PRECISION_REASON = (
    "half precision (float16, bfloat16) keeps too few digits for backpropagated gradients "
    "(they can come out with the wrong sign); use float32 or float64"
)


def check_dtype(dtype: object) -> torch.dtype:
    """A floating dtype chainrule computes in: float32 or float64 (or another non-half floating dtype)."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise InputTypeError(f"dtype must be a floating torch.dtype such as torch.float64; got {dtype!r}")
    if dtype in HALF_PRECISION:
        raise InputTypeError(f"dtype {dtype} is not supported: {HALF_PRECISION_REASON}")
    return dtype


def available_devices() -> list[str]:
    """The torch devices this machine can compute on, e.g. ``["cpu", "cuda:0"]``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(device: object) -> torch.device:
    """``device`` as a torch.device this machine has; else an InputError listing the devices it has."""
    if not isinstance(device, (str, torch.device)):
        raise InputTypeError(f"device must be a str or torch.device such as 'cpu'; got {device!r}")
    available = available_devices()
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {str(device)!r}; this machine has: {', '.join(available)}") from None
    if parsed.type == "cpu":  # torch accepts cpu:0 and treats it as cpu
        return torch.device("cpu")
    if parsed.type == "cuda" and parsed.index is None and torch.cuda.is_available():
        parsed = torch.device("cuda", torch.cuda.current_device())
    if str(parsed) not in available:
        reason = "meta tensors hold no values" if parsed.type == "meta" else "not available here"
        raise InputError(f"device {str(device)!r}: {reason}; this machine has: {', '.join(available)}")
    return parsed


def check_values(network: Network, values: object) -> dict[str, torch.Tensor]:
    """x, y and every parameter as float64 tensors (on their own device), all names present, all finite."""
    require_exactly("values", values, ("x", "y", *network.parameter_shapes))
    assert isinstance(values, Mapping)  # require_exactly checked it
    checked: dict[str, torch.Tensor] = {}
    for name, value in values.items():
        try:
            tensor = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value)
        except (TypeError, ValueError, RuntimeError) as error:
            raise InputTypeError(
                f"values[{name!r}] is not a matrix of real numbers ({type(value).__name__}: {error})"
            ) from None
        if tensor.is_complex() or tensor.dtype == torch.bool:
            raise InputTypeError(f"values[{name!r}] has dtype {tensor.dtype}; expected real numbers")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            position = [int(i) for i in torch.nonzero(~torch.isfinite(tensor))[0]]
            bad = tensor[tuple(position)].item()
            raise InputError(
                f"values[{name!r}] has a non-finite entry {bad} at index {position}; "
                "every value must be a finite number"
            )
        checked[name] = tensor
    return checked


def _check_tensor(name: str, value: object, rows: int, cols: int | None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise InputTypeError(
            f"{name} must be a torch.Tensor; got {type(value).__name__} "
            "(wrap it: torch.tensor(..., dtype=torch.float64))"
        )
    expected = f"[{rows}, {'B' if cols is None else cols}]"
    if value.ndim != 2 or value.shape[0] != rows or (cols is not None and value.shape[1] != cols):
        raise InputError(f"{name} has shape {list(value.shape)}; expected {expected}")
    if not value.is_floating_point():
        raise InputTypeError(f"{name} has dtype {value.dtype}; expected a floating dtype (float32, float64, ...)")
    if value.dtype in HALF_PRECISION:
        raise InputTypeError(f"{name} has dtype {value.dtype}: {HALF_PRECISION_REASON}")
    return value


def check_inputs(network: Network, x: object, y: object, params: object) -> list[torch.Tensor]:
    """Check x [n_in, B], y [n_out, B] and every parameter; return the parameters in network order."""
    x = _check_tensor("x", x, network.sizes[0], None)
    y = _check_tensor("y", y, network.sizes[-1], x.shape[1])
    shapes = network.parameter_shapes
    require_exactly("params", params, tuple(shapes))
    ordered = [_check_tensor(name, params[name], *shape) for name, shape in shapes.items()]
    for name, tensor in zip(("y", *shapes), (y, *ordered)):
        if tensor.dtype != x.dtype or tensor.device != x.device:
            raise InputError(
                f"{name} is {tensor.dtype} on {tensor.device} but x is {x.dtype} on {x.device}; "
                "give every tensor the same dtype and device"
            )
    return ordered


def verify_memory(network: Network, batch: int, dtype: torch.dtype, mode: str) -> dict[str, int]:
    """Bytes ``verify`` needs at its peak, about, by what they hold (their sum is the estimate).

    P parameter entries, A = (n_in + Σ widths + n_out)·B entries of x, the activations and y, in the dtype's
    bytes: the values (P + A), the compiled run (gradients P, its intermediates z, a, δ: 3A), autograd's
    (nn.Linear's copy of the weights P, their .grad P, the activations kept for backward 2A), and the finite
    differences in float64 (the values again unless already float64, the gradients checked P, one parameter's
    random direction, and the perturbed copies' activations: two per probe). Python floats drawn one at a
    time are gone (sample_arrays draws float64 arrays that float64 tensors share).
    """
    item = torch.empty((), dtype=dtype).element_size()
    entries = network.parameter_count
    carried = sum(network.sizes) * batch + network.sizes[-1] * batch  # x, every layer's a, and y
    largest = max(rows * cols for rows, cols in network.parameter_shapes.values())
    parts = {
        "values": item * (entries + carried) + (8 * (entries + carried) if dtype != torch.float64 else 0),
        "compiled": item * (entries + 3 * carried),
        "autograd": item * (2 * entries + 2 * carried),
    }
    if mode != "off":
        probes = 2 * (len(network.parameter_shapes) + 9)  # a direction each, SAMPLED_ENTRIES, x: two copies each
        copies = 8 * probes * batch * max(network.sizes) * 2 if mode != "full" else 0
        again = 8 * (entries + carried) if dtype != torch.float64 else 0
        parts["finite differences"] = again + 8 * (entries + largest) + copies
    return parts
