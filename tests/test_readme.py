"""The README shows real output: each pasted block is what its command prints now.

Words and numbers are compared (``update_readme.difference``): a number as printed, except in a float32 run's
results' last bits, which may differ with the BLAS kernel. Only the rounding errors of a passing comparison (a
row ending ``ok``) are not compared. ``python scripts/update_readme.py`` refreshes the blocks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import update_readme  # noqa: E402


def test_readme_output_blocks_are_current():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = list(update_readme.BLOCK.finditer(text))
    assert len(blocks) >= 4
    for block in blocks:
        fresh = update_readme.run(block.group("command"))
        assert fresh.strip(), block.group("command")
        said = update_readme.difference(block.group("body"), fresh, update_readme.slack(block.group("command")))
        command = block.group("command")
        assert said is None, (
            f"README.md: the output of `{command}` is stale ({said}); run python scripts/update_readme.py"
        )


def test_a_stale_number_is_stale():
    """A number changed in its last printed digit is stale (in a float32 run: beyond its last bits); the rounding
    errors of an ok row are not compared."""
    shown = "loss (autograd) = 0.4998743766\nW1              6.646e-17      5.428e-13      1e-10  ok\n"
    assert update_readme.difference(shown, shown) is None
    assert "0.4998743767 printed" in update_readme.difference(shown, shown.replace("0.4998743766", "0.4998743767"))
    float32 = update_readme.slack("chainrule verify --dtype float32")
    assert update_readme.difference(shown, shown.replace("0.4998743766", "0.4998743767"), float32) is None  # its bits
    stale = shown.replace("0.4998743766", "0.4998753766")
    assert "0.4998753766 printed" in update_readme.difference(shown, stale, float32)
    assert "7.8006368e-05 printed" in update_readme.difference("7.8006367e-05\n", "7.8006368e-05\n")
    assert update_readme.difference(shown, shown.replace("6.646e-17", "9.1e-17")) is None
    assert "printed" in update_readme.difference(shown, shown.replace("ok", "WRONG"))
    assert "7.8006e-05 printed" in update_readme.difference("W1 = 7.8005e-05\n", "W1 = 7.8006e-05\n")
    assert update_readme.difference("26 entries\n", "26 entries\n") is None
    assert update_readme.difference("26 entries\n", "27 entries\n") is not None


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
