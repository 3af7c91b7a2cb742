"""Write example model pages as PDFs, in English and Chinese: a residual block with LayerNorm, a BatchNorm layer
(with its numbers worked), a small CNN and a strided Conv1d (their convolution and max-pooling worked in numbers).

    python scripts/render_model_pages.py [OUTPUT_FOLDER]    (default: model-pages/)

Needs pdflatex (TeX Live) and, for Chinese, its CJK package with an Arphic font (Debian: latex-cjk-chinese
latex-cjk-chinese-arphic-gbsn00lp).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symbolic import LANGUAGES  # noqa: E402
from symbolic._model import (  # noqa: E402
    Act,
    BatchNorm,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool2d,
    Model,
    Residual,
)
from symbolic._model_pages import example_values, render_model  # noqa: E402

EXAMPLES = {
    # (the model, the batch its numbers are worked on; None: no numbers)
    "residual-layernorm": (
        Model((4,), (Linear(4), Residual((LayerNorm(), Linear(4), Act("tanh"), Dropout(0.25))), Linear(2)), "half_sse"),
        2,
    ),
    "batchnorm": (Model((3,), (BatchNorm(), Linear(2), Act("sigmoid")), "half_sse"), 4),
    # one channel in, a 4 × 4 input, 2 × 2 kernels moved by 1, and max-pool windows that overlap (stride 1)
    "small-cnn": (
        Model(
            (1, 4, 4),
            (Conv2d(2, 2), Act("relu"), MaxPool2d(2, stride=1), Flatten(), Linear(2)),
            "softmax_cross_entropy",
            "mean",
        ),
        1,
    ),
    # a length-6 input, a length-3 kernel moved by 2: ĝ has a zero between g's entries
    "conv1d-stride2": (Model((1, 6), (Conv1d(1, 3, stride=2), Act("tanh"), Flatten(), Linear(2)), "half_sse"), 1),
}


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "model-pages"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (model, batch) in EXAMPLES.items():
        values = example_values(model, batch) if batch is not None else None
        for lang in LANGUAGES:
            output = folder / f"{name}-{lang}.pdf"
            render_model(model, "pdf", lang, values, output)
            print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
