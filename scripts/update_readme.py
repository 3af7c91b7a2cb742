"""Paste real command output into README.md, between markers, so the README never shows invented output.

    <!-- output: chainrule verify --sizes 3,4,2 -->
    ```text
    ...replaced by what the command prints...
    ```
    <!-- end output -->

``python scripts/update_readme.py`` rewrites every such block; ``--check`` exits 1 when one is stale
(``tests/test_readme.py`` asks ``difference`` the same). Commands run in the repository root; ``python`` means
this Python.

A block is stale when a word or a number differs as printed; in the output of a float32 run (``--dtype
float32``), a number that differs only in a float32 result's last bits (which may differ with the BLAS kernel)
is not. Only the rounding errors of a comparison that passed (a row ending ``ok``, a "largest ... difference"
line) are not compared: they are the rounding of the machine, and what they say is the ``ok`` beside them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- output: (?P<command>.+?) -->\n```text\n)(?P<body>.*?)(```\n<!-- end output -->)", re.S)


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
# lines whose numbers are a passing comparison's rounding errors: machine-dependent, their verdict is the line's "ok"
ROUNDING_LINES = re.compile(r"\sok$|largest (?:relative )?difference")
FLOAT32_BITS = 4 * 2.0**-23  # a float32 result's last two bits, relative
FLOAT32_RUN = "--dtype float32"  # in a command: its numbers are float32 results


def slack(command: str) -> float:
    """How far, relative, a number of ``command``'s output may move between machines: float32's last bits for a
    float32 run, nothing otherwise (float64 results printed with at most 10 digits do not move)."""
    return FLOAT32_BITS if FLOAT32_RUN in command else 0.0


def difference(shown: str, fresh: str, relative: float = 0.0) -> str | None:
    """The first line where the README's ``shown`` output and the ``fresh`` output differ, said; None when equal
    in every word and, to the precision printed, every number (``relative``: the slack of a float32 run)."""
    shown_lines, fresh_lines = shown.splitlines(), fresh.splitlines()
    if len(shown_lines) != len(fresh_lines):
        return f"{len(shown_lines)} lines shown, {len(fresh_lines)} printed"
    for old, new in zip(shown_lines, fresh_lines):
        if NUMBER.sub("#", old) != NUMBER.sub("#", new):
            return f"shown {old!r}, printed {new!r}"
        if ROUNDING_LINES.search(new):
            continue
        for a, b in zip(NUMBER.finditer(old), NUMBER.finditer(new)):
            x, y = float(a.group()), float(b.group())
            if a.group() != b.group() and abs(x - y) > relative * abs(y):
                return f"{a.group()} shown, {b.group()} printed, in {new.strip()!r}"
    return None


def run(command: str) -> str:
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
    elif argv[0] == "chainrule":
        argv = [sys.executable, "-m", "numeric.cli", *argv[1:]]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return result.stdout + result.stderr


def refreshed(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + run(m.group("command")) + m.group(4), text)


def main() -> int:
    readme = ROOT / "README.md"
    current = readme.read_text(encoding="utf-8")
    updated = refreshed(current)
    if "--check" in sys.argv:
        stale = [
            (m.group("command"), difference(m.group("body"), n.group("body"), slack(m.group("command"))))
            for m, n in zip(BLOCK.finditer(current), BLOCK.finditer(updated))
        ]
        stale = [(command, said) for command, said in stale if said is not None]
        for command, said in stale:
            print(f"README.md: the output of `{command}` is stale ({said}); run python scripts/update_readme.py")
        return 1 if stale else 0
    readme.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
