"""chainrule.symbolic: networks, derivative rules, the chain-rule derivation and its LaTeX (SymPy only).

This package never imports torch or ``numeric``: a derivation can be made and typeset without them.
"""

from ._derivation import DEFAULT_CLOSED_FORM_BUDGET, WRT, Derivation, derive
from ._elementwise import Entries, LayerDerivation
from ._errors import (
    ChainruleError,
    ExpressionTooLarge,
    InputError,
    InputTypeError,
    NetworkError,
    NetworkTypeError,
    ResourceError,
    UnsupportedModule,
)
from ._formats import MarkdownText, display_width, pad, render_latex, render_markdown, render_pdf, render_text
from ._functions import (
    DefinedFunctionBase,
    batch_size,
    batch_sum,
    elu,
    gelu,
    leaky_relu,
    logsumexp,
    matmul,
    max_mask,
    relu,
    sigmoid,
    silu,
    softmax,
    softmax_without_max,
    softplus,
    step,
    transpose,
    unit_logsumexp,
    unit_sum,
)
from ._html import render_html
from ._index import IndexFact, layer_facts
from ._matrix import MatrixProgram, MatrixStep
from ._model_pages import explain_model, render_model
from ._network import MAX_WIDTH, Network
from ._pdf import LatexFailed, LatexUnavailable, build_pdf, pdflatex_path
from ._render import NUMBERS_LIMIT
from ._rules import ACTIVATIONS, LOSSES, Activation, Loss
from ._tutorial import TUTORIAL, TUTORIAL_PRINTED, TUTORIAL_VALUES
from ._values import sample_arrays, sample_values
from ._words import LANGUAGES, words

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_CLOSED_FORM_BUDGET",
    "LANGUAGES",
    "LOSSES",
    "MAX_WIDTH",
    "NUMBERS_LIMIT",
    "TUTORIAL",
    "TUTORIAL_PRINTED",
    "TUTORIAL_VALUES",
    "WRT",
    "Activation",
    "ChainruleError",
    "DefinedFunctionBase",
    "Derivation",
    "Entries",
    "ExpressionTooLarge",
    "IndexFact",
    "InputError",
    "InputTypeError",
    "LatexFailed",
    "LatexUnavailable",
    "LayerDerivation",
    "Loss",
    "MarkdownText",
    "MatrixProgram",
    "MatrixStep",
    "Network",
    "NetworkError",
    "NetworkTypeError",
    "ResourceError",
    "UnsupportedModule",
    "batch_size",
    "batch_sum",
    "build_pdf",
    "derive",
    "display_width",
    "elu",
    "explain_model",
    "gelu",
    "layer_facts",
    "leaky_relu",
    "logsumexp",
    "matmul",
    "max_mask",
    "pad",
    "pdflatex_path",
    "relu",
    "render_html",
    "render_latex",
    "render_markdown",
    "render_model",
    "render_pdf",
    "render_text",
    "sample_arrays",
    "sample_values",
    "sigmoid",
    "silu",
    "softmax",
    "softmax_without_max",
    "softplus",
    "step",
    "transpose",
    "unit_logsumexp",
    "unit_sum",
    "words",
]
