"""Input checks shared by the compiled functions and the autograd reference."""

from __future__ import annotations

import torch

from symbolic import InputError, InputTypeError, Network
from symbolic._errors import require_exactly


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
