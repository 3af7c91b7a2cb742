"""The chainrule command: the tutorial run, derive, compile, verify, and one-line errors."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import numeric
import numeric._checks
import numeric._verify
import numeric.cli
import symbolic._atomic
from numeric.cli import main
from symbolic import ACTIVATIONS, TUTORIAL, TUTORIAL_PRINTED, TUTORIAL_VALUES, derive


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
    assert result.stderr == ""  # no warning either (torch warns at import when numpy is missing)
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
    assert "torch.relu" in result.stdout and "torch.mm(" in result.stdout and "return" in result.stdout


BAD = [
    (["verify", "--sizes", "3,x,2"], "'3,x,2'"),
    (["verify", "--sizes", "3,4", "--activation", "sigmod"], "'sigmod'"),
    (["derive", "--sizes", "3,4", "--loss", "l2"], "'l2'"),
    (["derive", "--sizes", "3", "--format", "text"], "two or more"),
    (["derive", "--sizes", "3,4,2", "--activation", "softmax,tanh"], "last layer"),
    (["derive", "--loss", "hinge"], "unknown loss 'hinge'"),
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
        f"chainrule: error: unknown activation 'sigmod' for layer 1; allowed: {', '.join(ACTIVATIONS)}"
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


def test_wrt_x_derives_compiles_and_verifies_the_input_gradient(capsys):
    """--wrt x: ∂L/∂x in the text, in the generated code's results, and compared with autograd's by verify."""
    network = ["--sizes", "3,4,2", "--activation", "tanh,softmax", "--loss", "cross_entropy", "--bias"]
    assert main(["derive", *network, "--wrt", "x"]) == 0
    assert "∂L/∂x = W⁽¹⁾ᵀ δ⁽¹⁾" in capsys.readouterr().out
    assert main(["derive", *network]) == 0
    assert "∂L/∂x" not in capsys.readouterr().out
    assert main(["compile", *network, "--wrt", "x"]) == 0
    source = capsys.readouterr().out
    assert "grad_x = torch.mm(W1.T, delta1)" in source and source.rstrip().endswith("grad_x]")
    assert main(["verify", *network, "--wrt", "x"]) == 0
    report = capsys.readouterr().out
    rows = {line.split()[0]: line for line in report.splitlines() if line[:1].isalnum()}
    assert rows["x"].endswith("ok") and "and of x (12 entries)" in report  # 3 inputs x 4 samples


def test_verify_exits_1_on_a_deliberately_broken_gradient(monkeypatch, capsys, doubled_gradients):
    real = numeric._verify.compile_gradients

    def broken(derivation, form="matrix", **options):
        return doubled_gradients(real(derivation, form, **options))

    monkeypatch.setattr(numeric._verify, "compile_gradients", broken)
    monkeypatch.setattr(numeric, "compile_gradients", broken)
    assert main(["verify", "--sizes", "2,3,1", "--activation", "tanh,sigmoid"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "gradcheck (float64, finite differences): FAILED" in out
    assert main(["tutorial"]) == 1


# The command line's edges: each is one line "chainrule: error: …" and a documented exit code.
EDGES = [
    # (arguments, exit code, a word the message must contain)
    (["derive", "-o", "{tmp}/no/such/folder/d.tex"], 3, "does not exist"),
    (["derive", "-o", "{tmp}"], 3, "is a folder"),
    (["derive", "-o", "{file}/d.tex"], 3, "plain' is a file, not a folder"),  # a file where a folder should be
    (["verify", "--device", "cuda"], 2, "this machine has: cpu"),
    (["verify", "--device", "cuda:7"], 2, "this machine has: cpu"),
    (["verify", "--device", "banana"], 2, "unknown device 'banana'"),
    (["verify", "--device", "meta"], 2, "meta tensors hold no values"),
    (["derive", "--loss", "hinge"], 2, "allowed: half_sse"),
    (["derive", "--activation", "swish"], 2, "unknown activation 'swish'"),
    (["derive", "--sizes", "3,99999999999999999999,2"], 2, "at most 100,000"),
    (["derive", "--format", "text", "--fragment"], 2, "--format latex only"),
    (["derive", "--format", "markdown", "--fragment"], 2, "--format latex only"),
    (["derive", "-o", ""], 2, "empty"),
    (["derive", "--activation", ""], 2, "unknown activation ''"),
    (["derive", "--loss", ""], 2, "unknown loss ''"),
    (["verify", "--batch", "100000000"], 2, "at most 10,000"),
    (["verify", "--wrt", "x", "--form", "elementwise"], 2, "matrix form only"),
    (["derive", "--wrt", "W1"], 2, "invalid choice: 'W1'"),
]


@pytest.mark.parametrize("args, code, fragment", EDGES, ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_command_line_edges_exit_with_one_line(args, code, fragment, tmp_path, capsys):
    if "cuda" in " ".join(args) and numeric._checks.torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    plain_file = tmp_path / "plain"
    plain_file.write_text("")
    args = [arg.format(tmp=tmp_path, file=plain_file) for arg in args]
    assert main(args) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chainrule: error:"), captured.err
    assert fragment in lines[0] and not captured.out


def test_an_unwritable_output_is_one_line_with_exit_3(tmp_path, monkeypatch, capsys):
    # root may write read-only files, so the refusal is simulated where the write happens
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(symbolic._atomic.os, "open", refuse)
    assert main(["derive", "-o", str(tmp_path / "d.tex")]) == 3
    err = capsys.readouterr().err
    assert err.startswith("chainrule: error: cannot write") and "Permission denied" in err
    assert len(err.strip().splitlines()) == 1


def test_pdf_to_standard_output_is_a_pdf(pdflatex):
    result = subprocess.run(
        [sys.executable, "-m", "numeric.cli", "derive", "--format", "pdf", "-o", "-"],
        capture_output=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"%PDF-") and not os.path.exists("-")


def test_version():
    result = run("--version")
    assert result.returncode == 0
    words = result.stdout.split()
    assert words[0] == "chainrule"
    if shutil.which("chainrule"):  # installed: the version pip knows
        from importlib.metadata import version

        assert words[1] == version("chainrule")


def test_every_option_and_command_explains_itself():
    for command in ("tutorial", "derive", "compile", "verify"):
        page = run(command, "--help").stdout
        # argparse prints the description after the usage block: a first sentence ending in a period
        description = page.split("\n\n")[1]
        assert description.strip().endswith(".") and not description.startswith(("options", "positional"))
        for option in ("--dtype", "--form", "--device", "--batch", "--seed", "--sizes", "--format", "--fragment"):
            if option in page:  # every option the page lists has help text beside it
                block = page[page.index(option) :].split("\n  -")[0]
                assert len(block.split()) > 3, (command, option, block)


def test_verify_help_states_the_batch_it_runs(capsys, monkeypatch):
    page = run("verify", "--help").stdout
    assert "default 4" in page and "own one sample" in page
    seen = {}

    def spy(derivation, values=None, **kwargs):
        seen[derivation.network.sizes] = len(values["x"][0]) if values is not None else 1
        return real(derivation, values, **kwargs)

    real = numeric.verify
    monkeypatch.setattr(numeric, "verify", spy)
    main(["verify"])
    main(["verify", "--sizes", "2,2"])
    assert seen == {TUTORIAL.sizes: 1, (2, 2): 4}


def test_options_without_sizes_change_the_tutorials_network(capsys):
    assert main(["verify", "--bias"]) == 0
    assert "network 1-2-2, sigmoid, half_sse, with bias" in capsys.readouterr().out
    assert main(["derive", "--activation", "tanh", "--loss", "sse"]) == 0
    assert "1-2-2, tanh, sse" in capsys.readouterr().out


def test_a_closed_pipe_ends_quietly():
    code = "import sys; from numeric.cli import main; sys.exit(main(['derive', '--sizes', '4,4,4']))"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        process.stdout.close()  # the reader is gone before chainrule writes (its imports take longer)
        stderr = process.stderr.read().decode()
        assert process.wait(timeout=300) == 141
    assert stderr == ""


def test_an_interrupt_ends_quietly_with_130():
    code = (
        "import sys, time; import numeric.cli as cli\n"
        "cli._run_tutorial = lambda args: (print('ready', flush=True), time.sleep(60))\n"
        "sys.exit(cli.main([]))"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == b""


def test_exit_codes_are_documented_in_help_and_readme():
    page = " ".join(run("--help").stdout.split())
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", readme, re.MULTILINE)}
    assert rows == set(numeric.cli.EXIT_CODES)
    for code, meaning in numeric.cli.EXIT_CODES.items():
        assert f"{code} {meaning}" in page
