"""Run pdflatex on a standalone document, reproducibly, and write the PDF atomically."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ._atomic import output_problem, write_atomically
from ._errors import ChainruleError, InputTypeError


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
    try:
        result = subprocess.run([kpsewhich, name], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:  # a TeX installation that hangs cannot be used either
        return False
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


def _run_pdflatex(command: list[str], folder: str, environment: dict[str, str], timeout: float) -> tuple[int, str]:
    """pdflatex's exit status and output; stopped, with every process it started, after ``timeout`` s.

    Its own session (process group), because subprocess.run's timeout kills pdflatex alone: a helper it
    started (mktexpk, a shell escape) keeps the output pipe open, and the wait for it would hang.
    """
    with subprocess.Popen(
        command,
        cwd=folder,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        try:
            stdout, _ = process.communicate(timeout=timeout)
        except BaseException as error:  # the timeout, or Ctrl-C (which a separate session does not receive)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            if isinstance(error, subprocess.TimeoutExpired):
                raise LatexFailed(f"pdflatex did not finish within {timeout:g} s (timeout); it was stopped") from None
            raise
    return process.returncode, stdout


def check_output_type(output: object) -> None:
    """``output`` must name a file: a str or a path (``os.PathLike``); ``None`` or a number is an InputTypeError."""
    if not isinstance(output, (str, os.PathLike)) or not isinstance(os.fspath(output), str):
        raise InputTypeError(f"the PDF's output must be a file name (str or pathlib.Path); got {output!r}")


def _check_output(output: str | Path) -> None:
    check_output_type(output)
    problem = output_problem(output)
    if problem is not None:
        raise OutputError(f"cannot write the PDF to {str(output)!r}: {problem}")


def build_pdf(document: str, output: str | Path, timeout: float = 120) -> str:
    """Compile the LaTeX ``document`` into the PDF file ``output``; return pdflatex's log.

    The same document gives the same bytes (no time stamps; the dates of ``SOURCE_DATE_EPOCH`` when it is
    set). ``output`` is replaced only by a complete PDF: a failed run leaves the old file as it was.
    """
    _check_output(output)
    executable = pdflatex_path()
    if executable is None:
        raise LatexUnavailable(
            "pdflatex was not found on PATH; install TeX Live (Debian: apt-get install -y "
            "--no-install-recommends texlive-latex-base texlive-latex-recommended texlive-pictures lmodern) "
            "or use --format latex"
        )
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
        returncode, stdout = _run_pdflatex(
            [
                executable,
                "-interaction=nonstopmode",
                "-halt-on-error",
                "-jobname=derivation",
                prefix + r"\input{derivation.tex}",
            ],
            folder,
            environment,
            timeout,
        )
        log_path = source.with_suffix(".log")
        log = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else stdout
        if returncode != 0 or not source.with_suffix(".pdf").exists():
            first_error = next((line for line in log.splitlines() if line.startswith("!")), "see the log")
            raise LatexFailed(f"pdflatex failed ({first_error.strip()})")
        try:
            write_atomically(output, source.with_suffix(".pdf").read_bytes())
        except OSError as error:
            raise OutputError(f"cannot write {str(output)!r}: {error.strerror or error}") from None
    return log
