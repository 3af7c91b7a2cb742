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


CJK_PACKAGES = "latex-cjk-chinese latex-cjk-chinese-arphic-gbsn00lp"  # Debian's CJK for pdflatex, Arphic fonts


def pdflatex_path() -> str | None:
    return shutil.which("pdflatex")


def tex_file_found(name: str) -> bool:
    """Whether TeX can find ``name`` (a .sty or .fd file), asked through kpsewhich."""
    kpsewhich = shutil.which("kpsewhich")
    if kpsewhich is None:
        return False
    result = subprocess.run([kpsewhich, name], capture_output=True, text=True, timeout=60, check=False)
    return result.returncode == 0 and bool(result.stdout.strip())


def _check_chinese_support() -> None:
    missing = [name for name in ("CJKutf8.sty", "c70gbsn.fd") if not tex_file_found(name)]
    if missing:
        raise LatexUnavailable(
            f"a Chinese PDF needs the CJK package for pdflatex and the Arphic gbsn font ({', '.join(missing)} not "
            f"found); install them (Debian: apt-get install -y --no-install-recommends {CJK_PACKAGES}) or use "
            "--format latex, markdown or text"
        )


def build_pdf(document: str, output: str | Path, timeout: float = 120) -> str:
    """Compile the LaTeX ``document`` into the PDF file ``output``; return pdflatex's log."""
    executable = pdflatex_path()
    if executable is None:
        raise LatexUnavailable(
            "pdflatex was not found on PATH; install TeX Live (Debian: apt-get install -y "
            "--no-install-recommends texlive-latex-base texlive-latex-recommended) or use --format latex"
        )
    if "\\usepackage{CJKutf8}" in document:
        _check_chinese_support()
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
