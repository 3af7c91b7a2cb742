"""The chainrule command: the tutorial run, derive, compile, verify, and one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import numeric
import numeric._verify
from numeric.cli import main
from symbolic import TUTORIAL, TUTORIAL_PRINTED, TUTORIAL_VALUES, derive


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the command as a user would (the installed console script when there is one)."""
    executable = shutil.which("chainrule")
    command = [executable] if executable else [sys.executable, "-m", "numeric.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def test_console_script_is_installed():
    executable = shutil.which("chainrule")
    if executable is None and not os.environ.get("CI"):
        pytest.skip("chainrule is not installed here (pip install -e . installs it)")
    assert executable is not None, "the chainrule console script is not on PATH"
    result = subprocess.run([executable, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "derive" in result.stdout


def test_main_command_shows_the_tutorial_and_exits_0():
    result = run()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    exact = derive(TUTORIAL).evaluate(TUTORIAL_VALUES)
    for name in ("W1", "W2"):  # the tutorial's printed numbers, and the exact values beside them
        for row_printed, row_exact in zip(TUTORIAL_PRINTED[name], exact[name]):
            for printed, value in zip(row_printed, row_exact):
                assert f"{printed:.4e}" in out and f"{value:.7e}" in out
    assert "[[0.7311], [0.8808]]" in out and "[[0.9967], [0.9999]]" in out
    assert "δ⁽²⁾[1]" in out and "verdict: OK" in out
    assert "gradcheck" in out


def test_help_explains_every_command():
    result = run("--help")
    assert result.returncode == 0
    for command in ("tutorial", "derive", "compile", "verify"):
        assert command in result.stdout
    for command in ("derive", "compile", "verify"):
        sub = run(command, "--help")
        assert sub.returncode == 0 and "--sizes" in sub.stdout


@pytest.mark.parametrize("fmt, marker", [("latex", r"\documentclass"), ("text", "δ⁽²⁾[1]"), ("markdown", "$$")])
def test_derive_writes_each_format(tmp_path, fmt, marker):
    result = run("derive", "--format", fmt)
    assert result.returncode == 0 and marker in result.stdout
    target = tmp_path / f"out.{fmt}"
    assert run("derive", "--format", fmt, "-o", str(target)).returncode == 0
    assert target.read_text() == result.stdout


def test_derive_for_a_general_network():
    result = run(
        "derive", "--sizes", "3,4,2", "--activation", "tanh,sigmoid", "--loss", "bce", "--bias", "--format", "text"
    )
    assert result.returncode == 0, result.stderr
    assert "3-4-2, tanh/sigmoid, bce, with bias" in result.stdout and "b⁽²⁾[1]" in result.stdout


def test_derive_never_imports_torch(tmp_path):
    code = (
        "import sys; from numeric.cli import main; "
        f"code = main(['derive', '--format', 'latex', '-o', {str(tmp_path / 'd.tex')!r}]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_compile_prints_the_generated_source():
    result = run("compile", "--sizes", "2,3,1", "--activation", "relu,sigmoid")
    assert result.returncode == 0
    assert "torch.relu" in result.stdout and "@" in result.stdout and "return" in result.stdout


BAD = [
    (["verify", "--sizes", "3,x,2"], "'3,x,2'"),
    (["verify", "--sizes", "3,4", "--activation", "sigmod"], "'sigmod'"),
    (["derive", "--sizes", "3,4", "--loss", "l2"], "'l2'"),
    (["derive", "--sizes", "3", "--format", "text"], "two or more"),
    (["derive", "--sizes", "3,4,2", "--activation", "softmax,tanh"], "last layer"),
    (["derive", "--activation", "tanh"], "needs --sizes"),
    (["derive", "--format", "pdf"], "-o"),
    (["derive", "--format", "docx"], "docx"),
    (["verify", "--batch", "0"], "batch"),
    (["verify", "--dtype", "int8"], "int8"),
    (["frobnicate"], "frobnicate"),
]


@pytest.mark.parametrize("args, fragment", BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_bad_input_prints_one_line_and_exits_2(args, fragment, capsys):
    assert main(args) == 2  # an exception escaping here would be a traceback for the user
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chainrule: error:"), captured.err
    assert fragment in lines[0] and not captured.out


def test_bad_input_from_the_shell_has_no_traceback():
    result = run("verify", "--sizes", "3,4", "--activation", "sigmod")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "chainrule: error: unknown activation 'sigmod' for layer 1; "
        "allowed: sigmoid, tanh, relu, softplus, identity, softmax"
    ]


def test_verify_exits_0_on_a_good_network():
    result = run(
        "verify",
        "--sizes",
        "3,4,2",
        "--activation",
        "tanh,softmax",
        "--loss",
        "cross_entropy",
        "--bias",
        "--batch",
        "3",
        "--seed",
        "1",
        "--dtype",
        "float32",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gradcheck" in result.stdout and "verdict: OK" in result.stdout
    for name in ("W1", "b1", "W2", "b2"):
        assert f"\n{name} " in result.stdout


def test_verify_exits_1_on_a_deliberately_broken_gradient(monkeypatch, capsys, doubled_gradients):
    real = numeric._verify.compile_gradients

    def broken(derivation, form="matrix"):
        return doubled_gradients(real(derivation, form))

    monkeypatch.setattr(numeric._verify, "compile_gradients", broken)
    monkeypatch.setattr(numeric, "compile_gradients", broken)
    assert main(["verify", "--sizes", "2,3,1", "--activation", "tanh,sigmoid"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "gradcheck (float64, finite differences): FAILED" in out
    assert main(["tutorial"]) == 1
