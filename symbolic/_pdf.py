"""Run pdflatex on a standalone document, reproducibly, and write the PDF atomically."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ._atomic import output_problem, write_atomically
from ._errors import ChainruleError


class LatexUnavailable(ChainruleError, RuntimeError):
    """pdflatex is not installed."""


class LatexFailed(ChainruleError, RuntimeError):
    """pdflatex ran and reported an error, or did not finish in time."""


class OutputError(ChainruleError, OSError):
    """The output file cannot be written there (a folder, a missing folder, no permission, a full disk)."""


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


# pdfTeX stamps each PDF with the time (CreationDate, ModDate) and an /ID made from the time: two builds of
# the same document differ. These primitives, put before the document on pdflatex's command line (so that
# the .tex file itself stays plain LaTeX), drop the /ID and, unless SOURCE_DATE_EPOCH asks for a date
# (the reproducible-builds convention, which pdfTeX honours with FORCE_SOURCE_DATE=1), the dates too.
_REPRODUCIBLE = r"\pdftrailerid{}"
_NO_DATES = r"\pdfinfoomitdate=1"


def _check_output(output: str | Path) -> None:
    problem = output_problem(output)
    if problem is not None:
        raise OutputError(f"cannot write the PDF to {str(output)!r}: {problem}")


def build_pdf(document: str, output: str | Path, timeout: float = 120) -> str:
    """Compile the LaTeX ``document`` into the PDF file ``output``; return pdflatex's log.

    The same document gives the same bytes (no time stamps; the dates of ``SOURCE_DATE_EPOCH`` when it is
    set). ``output`` is replaced only by a complete PDF: a failed run leaves the old file as it was.
    """
    executable = pdflatex_path()
    if executable is None:
        raise LatexUnavailable(
            "pdflatex was not found on PATH; install TeX Live (Debian: apt-get install -y "
            "--no-install-recommends texlive-latex-base texlive-latex-recommended) or use --format latex"
        )
    _check_output(output)
    if "\\usepackage{CJKutf8}" in document:
        _check_chinese_support()
    environment = dict(os.environ)
    dated = bool(environment.get("SOURCE_DATE_EPOCH"))
    if dated:
        environment["FORCE_SOURCE_DATE"] = "1"
    prefix = _REPRODUCIBLE if dated else _REPRODUCIBLE + _NO_DATES
    with tempfile.TemporaryDirectory(prefix="chainrule-") as folder:
        source = Path(folder) / "derivation.tex"
        source.write_text(document, encoding="utf-8")
        try:
            result = subprocess.run(
                [
                    executable,
                    "-interaction=nonstopmode",
                    "-halt-on-error",
                    "-jobname=derivation",
                    prefix + r"\input{derivation.tex}",
                ],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                env=environment,
            )
        except subprocess.TimeoutExpired:
            raise LatexFailed(f"pdflatex did not finish within {timeout:g} s (timeout); it was stopped") from None
        log_path = source.with_suffix(".log")
        log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else result.stdout
        if result.returncode != 0 or not source.with_suffix(".pdf").exists():
            first_error = next((line for line in log.splitlines() if line.startswith("!")), "see the log")
            raise LatexFailed(f"pdflatex failed ({first_error.strip()})")
        try:
            write_atomically(output, source.with_suffix(".pdf").read_bytes())
        except OSError as error:
            raise OutputError(f"cannot write {str(output)!r}: {error.strerror or error}") from None
    return log
