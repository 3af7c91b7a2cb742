"""Run pdflatex on a standalone document."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ._errors import ChainruleError


class LatexUnavailable(ChainruleError, RuntimeError):
    """pdflatex is not installed."""


class LatexFailed(ChainruleError, RuntimeError):
    """pdflatex ran and reported an error."""


def pdflatex_path() -> str | None:
    return shutil.which("pdflatex")


def build_pdf(document: str, output: str | Path, timeout: float = 120) -> str:
    """Compile the LaTeX ``document`` into the PDF file ``output``; return pdflatex's log."""
    executable = pdflatex_path()
    if executable is None:
        raise LatexUnavailable(
            "pdflatex was not found on PATH; install TeX Live (Debian: apt-get install -y "
            "--no-install-recommends texlive-latex-base texlive-latex-recommended) or use --format latex"
        )
    with tempfile.TemporaryDirectory(prefix="chainrule-") as folder:
        source = Path(folder) / "derivation.tex"
        source.write_text(document, encoding="utf-8")
        result = subprocess.run(
            [executable, "-interaction=nonstopmode", "-halt-on-error", source.name],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        log_path = source.with_suffix(".log")
        log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else result.stdout
        if result.returncode != 0 or not source.with_suffix(".pdf").exists():
            first_error = next((line for line in log.splitlines() if line.startswith("!")), "see the log")
            raise LatexFailed(f"pdflatex failed ({first_error.strip()})")
        shutil.copyfile(source.with_suffix(".pdf"), output)
    return log
