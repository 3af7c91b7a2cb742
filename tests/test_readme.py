"""The README shows real output: each pasted block is what its command prints now.

Numbers are masked in the comparison (float32 error magnitudes may differ with the BLAS kernel); the
numbers themselves are checked by the other tests. ``python scripts/update_readme.py`` refreshes them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import update_readme  # noqa: E402

NUMBER = re.compile(r"-?\d+(\.\d+)?(e[-+]?\d+)?")


def test_readme_output_blocks_are_current():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = list(update_readme.BLOCK.finditer(text))
    assert len(blocks) >= 4
    for block in blocks:
        fresh = update_readme.run(block.group("command"))
        assert fresh.strip(), block.group("command")
        assert NUMBER.sub("#", fresh) == NUMBER.sub("#", block.group("body")), (
            f"README.md: the output of `{block.group('command')}` is stale; run python scripts/update_readme.py"
        )


def test_readme_commands_are_the_ci_commands():
    """.ci/run takes the README's quick-start block itself and runs it in a fresh venv: the same lines."""
    extract = subprocess.run(
        ["bash", "-c", "grep -o \"awk '.*' README.md\" .ci/run | head -1 | bash"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    commands = extract.stdout.splitlines()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(commands) == 2 and all(f"\n{command}\n" in readme for command in commands)
    assert commands[0].split("#")[0].strip().endswith("&& chainrule")
    assert commands[1].split("#")[0].strip().endswith("&& pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m venv" in ci and "system-site-packages" not in ci.replace("no --system-site-packages", "")
    assert subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")]).returncode == 0
