"""Render the tutorial's derivation to PDF and its pages to PNG for the README, in English and Chinese
(docs/tutorial-page-N.png, docs/tutorial-zh-page-N.png).

    python scripts/render_pages.py

Needs pdflatex (TeX Live), its CJK package with an Arphic font (Debian: latex-cjk-chinese
latex-cjk-chinese-arphic-gbsn00lp) and pdftoppm (poppler-utils).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from symbolic import LANGUAGES, TUTORIAL, TUTORIAL_VALUES, derive, render_pdf  # noqa: E402

RESOLUTION = 70  # dots per inch: legible on GitHub, small in the repository


def main() -> int:
    if shutil.which("pdftoppm") is None:
        print("pdftoppm was not found; install poppler-utils", file=sys.stderr)
        return 1
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    for old in docs.glob("tutorial-*page-*.png"):
        old.unlink()
    derivation = derive(TUTORIAL)
    for lang in LANGUAGES:
        stem = "tutorial-page" if lang == "en" else f"tutorial-{lang}-page"
        with tempfile.TemporaryDirectory() as folder:
            pdf = Path(folder) / "tutorial.pdf"
            render_pdf(derivation, pdf, values=TUTORIAL_VALUES, lang=lang)
            subprocess.run(["pdftoppm", "-png", "-r", str(RESOLUTION), str(pdf), str(docs / stem)], check=True)
    for page in sorted(docs.glob("tutorial-*page-*.png")):
        print(page.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
