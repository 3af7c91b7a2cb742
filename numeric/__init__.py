"""chainrule.numeric: compiled torch gradients, the autograd reference, verification, torch import, CLI.

The names below are imported on first use (PEP 562), so ``chainrule derive``, which only typesets,
never pays for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "compile_gradients": "._compile",
    "CompiledGradients": "._compiled",
    "FORMS": "._choices",
    "autograd_gradients": "._torch_models",
    "autograd_loss_and_gradients": "._torch_models",
    "from_torch": "._torch_models",
    "gradients": "._torch_models",
    "to_torch": "._torch_models",
    "REFERENCE_LOSSES": "._torch_models",
    "verify": "._verify",
    "Report": "._verify",
    "Comparison": "._verify",
    "random_values": "._verify",
    "as_tensors": "._verify",
    "check_with_gradcheck": "._verify",
    "check_backward": "._check_backward",
    "BackwardReport": "._check_backward",
    "Mistake": "._check_backward",
    "MISTAKES": "._check_backward",
    "check_layer_backward": "._check_layer",
    "LayerReport": "._check_layer",
    "CompiledModelGradients": "._model_compile",
    "ModelReport": "._model_verify",
    "random_model_values": "._model_verify",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on demand
    from ._check_backward import MISTAKES as MISTAKES
    from ._check_backward import BackwardReport as BackwardReport
    from ._check_backward import Mistake as Mistake
    from ._check_backward import check_backward as check_backward
    from ._check_layer import LayerReport as LayerReport
    from ._check_layer import check_layer_backward as check_layer_backward
    from ._choices import FORMS as FORMS
    from ._compile import compile_gradients as compile_gradients
    from ._compiled import CompiledGradients as CompiledGradients
    from ._model_compile import CompiledModelGradients as CompiledModelGradients
    from ._model_verify import ModelReport as ModelReport
    from ._model_verify import random_model_values as random_model_values
    from ._torch_models import REFERENCE_LOSSES as REFERENCE_LOSSES
    from ._torch_models import autograd_gradients as autograd_gradients
    from ._torch_models import autograd_loss_and_gradients as autograd_loss_and_gradients
    from ._torch_models import from_torch as from_torch
    from ._torch_models import gradients as gradients
    from ._torch_models import to_torch as to_torch
    from ._verify import Comparison as Comparison
    from ._verify import Report as Report
    from ._verify import as_tensors as as_tensors
    from ._verify import check_with_gradcheck as check_with_gradcheck
    from ._verify import random_values as random_values
    from ._verify import verify as verify


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'numeric' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
