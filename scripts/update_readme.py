"""Paste real command output into README.md, between markers, so the README never shows invented output.

    <!-- output: chainrule verify --sizes 3,4,2 -->
    ```text
    ...replaced by what the command prints...
    ```
    <!-- end output -->

``python scripts/update_readme.py`` rewrites every such block; ``--check`` exits 1 when one is stale
(``tests/test_readme.py`` runs that). Commands run in the repository root; ``python`` means this Python.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- output: (?P<command>.+?) -->\n```text\n)(?P<body>.*?)(```\n<!-- end output -->)", re.S)


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
            m.group("command")
            for m, n in zip(BLOCK.finditer(current), BLOCK.finditer(updated))
            if m.group("body") != n.group("body")
        ]
        for command in stale:
            print(f"README.md: the output of `{command}` is stale; run python scripts/update_readme.py")
        return 1 if stale else 0
    readme.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
