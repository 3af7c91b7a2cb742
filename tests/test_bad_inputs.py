"""Every bad input to the command line ends in ONE line ``chainrule: error: …`` and its documented exit code.

``BAD`` is the table: add a row for each new way in. A row runs in this process through ``main`` unless
the process itself matters (standard output closed or full, its encoding, a user function that never
returns): those are in ``BAD_PROCESSES`` and run ``python -m numeric.cli``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import numeric.cli
import symbolic
from numeric.cli import EXIT_CODES, main
from symbolic import LatexFailed, LatexUnavailable

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Bad:
    """One bad command line: ``{tmp}`` in ``args`` is a fresh folder holding ``files``; ``{file}`` a plain file."""

    name: str
    args: tuple[str, ...]
    code: int
    says: str  # a fragment the one error line must contain
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    never: str = ""  # a fragment the line must not contain


def _check(file: str, *more: str) -> tuple[str, ...]:
    return ("check", f"{{tmp}}/{file}:backward", *more)


BAD = [
    # the user's file fails to load: exit 2 with the exception and the file's line, never 1 ("gradients disagree")
    Bad("syntax error", _check("s.py"), 2, "s.py:1: SyntaxError", {"s.py": "def backward(x, y, params)\n  pass\n"}),
    Bad("NUL byte", _check("n.py"), 2, "null bytes", {"n.py": b"x = 1\x00\n"}),
    Bad("not UTF-8", _check("u.py"), 2, "u.py:1: SyntaxError", {"u.py": b"s = '\xff'\n"}),
    Bad(
        "missing import",
        _check("m.py"),
        2,
        "m.py:2: ModuleNotFoundError: No module named 'no_such_module_xyz'",
        {"m.py": "import os\nimport no_such_module_xyz\n"},
    ),
    Bad(
        "raises at import", _check("r.py"), 2, "r.py:2: ValueError: boom", {"r.py": "x = 1\nraise ValueError('boom')\n"}
    ),
    Bad("sys.exit at import", _check("e.py"), 2, "e.py:2: SystemExit", {"e.py": "import sys\nsys.exit(0)\n"}),
    # the function is wrong: said with the line where it is defined, before it runs
    Bad(
        "wrong signature",
        _check("w.py"),
        2,
        "w.py:2: backward(x) cannot be called as backward(x, y, params)",
        {"w.py": "\ndef backward(x):\n    return {}\n"},
    ),
    # the function fails when called: the innermost line of the user's file that was running
    Bad(
        "raises in a helper",
        _check("z.py"),
        2,
        "z.py:2: ZeroDivisionError: division by zero (during the call backward(x, y, params))",
        {"z.py": "def helper():\n    return 1 / 0\ndef backward(x, y, params):\n    return helper()\n"},
    ),
    Bad(
        "recursion",
        _check("rec.py"),
        2,
        "rec.py:2: RecursionError",
        {"rec.py": "def backward(x, y, params):\n    return backward(x, y, params)\n"},
    ),
    Bad(
        "sys.exit(0) in the call",
        _check("x.py"),
        2,
        "x.py:3: SystemExit: the code called sys.exit(0)",
        {"x.py": "import sys\ndef backward(x, y, params):\n    sys.exit(0)\n"},
    ),
    Bad(
        "a message of several lines",
        _check("l.py"),
        2,
        "ValueError: first second",
        {"l.py": "def backward(x, y, params):\n    raise ValueError('first\\n  second')\n"},
    ),
    Bad(
        "code that does not match --sizes",
        _check("t.py", "--sizes", "3,4,2"),
        2,
        "t.py:3: RuntimeError: mat1 and mat2 shapes cannot be multiplied",
        {"t.py": "import torch\ndef backward(x, y, params):\n    return {'W1': torch.ones(2, 1) @ x}\n"},
    ),
    Bad(
        "never returns (in-process: a sleeping thread)",
        _check("slow.py", "--timeout", "0.2"),
        2,
        "slow.py: the call backward(x, y, params) did not finish within 0.2 s (--timeout)",
        {"slow.py": "import time\ndef backward(x, y, params):\n    time.sleep(5)\n"},
    ),
    Bad(
        "module-level code that never ends",
        _check("hang.py", "--timeout", "0.2"),
        2,
        "hang.py: the file's module-level code did not finish within 0.2 s",
        {"hang.py": "import time\ntime.sleep(5)\n"},
    ),
    Bad("not a .py file", _check("notes.txt"), 2, "not a Python file", {"notes.txt": "def backward(): pass\n"}),
    Bad("--timeout 0", _check("w.py", "--timeout", "0"), 2, "positive, finite number of seconds"),
    Bad("--timeout inf", _check("w.py", "--timeout", "inf"), 2, "positive, finite number of seconds"),
    Bad("--timeout 1e10 (join would overflow)", _check("w.py", "--timeout", "1e10"), 2, "more than a day"),
    # seeds: every command takes the range every generator accepts (torch.Generator.manual_seed: 64 bits)
    Bad("verify --seed 10**23", ("verify", "--seed", "100000000000000000000000"), 2, "0 to 2**64-1"),
    Bad("derive --seed 2**64", ("derive", "--seed", str(2**64)), 2, "0 to 2**64-1"),
    Bad("check --seed -1", _check("w.py", "--seed", "-1"), 2, "0 to 2**64-1"),
    # -o: what is wrong with the path, before any work
    Bad("-o a name too long", ("derive", "-o", "{tmp}/" + "x" * 300 + ".tex"), 3, "bytes long"),
    Bad("-o under a file", ("derive", "-o", "{file}/x.tex"), 3, "plain' is a file, not a folder"),
]


def _prepare(case: Bad, folder: Path) -> list[str]:
    for name, content in case.files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content, encoding="utf-8")
    (folder / "plain").write_text("")
    return [arg.format(tmp=folder, file=folder / "plain") for arg in case.args]


def _assert_one_line(err: str, code: int, expected: int, says: str, never: str = "") -> None:
    lines = err.strip().splitlines()
    assert code == expected, err
    assert len(lines) == 1 and lines[0].startswith("chainrule: error:"), err
    assert "Traceback" not in err and says in lines[0], lines[0]
    assert not never or never not in lines[0], lines[0]


@pytest.mark.parametrize("case", BAD, ids=lambda case: case.name)
def test_bad_input_is_one_line_with_its_exit_code(case, tmp_path, capsys):
    code = main(_prepare(case, tmp_path))
    captured = capsys.readouterr()
    _assert_one_line(captured.err, code, case.code, case.says, case.never)
    assert not captured.out


# --- through a process: where standard output, its encoding or the process's end is what is tested ----------


@dataclass(frozen=True)
class BadProcess(Bad):
    stdout: str = "pipe"  # "pipe", "closed" (fd 1 closed at start) or "full" (/dev/full)
    env: Mapping[str, str] = field(default_factory=dict)


BUSY = "while True:\n    pass\n"
# chainrule's layout (samples are columns); the gradients by torch autograd, an independent reference
AUTOGRAD_BACKWARD = """
import torch

def gradients(x, y, params):
    W1 = params["W1"].detach().requires_grad_()
    W2 = params["W2"].detach().requires_grad_()
    loss = 0.5 * ((torch.sigmoid(W2 @ torch.sigmoid(W1 @ x)) - y) ** 2).sum()
    g1, g2 = torch.autograd.grad(loss, [W1, W2])
    return {"W1": g1, "W2": g2}

backward = gradients
"""
# still working when its time is up: torch work aborted the interpreter at exit (134), deep recursion hung it
TORCH_SPIN = (  # float64 and a 300x300 product: torch's worker threads are busy when the interpreter ends
    "import torch\ndef backward(x, y, p):\n    a = torch.randn(300, 300, dtype=torch.float64)\n"
    "    while True:\n        a = torch.tanh(a @ a)\n"
)
DEEP = (
    "import sys\ndef backward(x, y, p):\n    sys.setrecursionlimit(10**7)\n"
    "    def f(n):\n        return f(n + 1) + 1\n    return f(0)\n"
)

BAD_PROCESSES = [
    BadProcess("stdout closed", ("derive",), 3, "standard output is closed", stdout="closed"),
    BadProcess("stdout is /dev/full", ("derive",), 3, "No space left on device", stdout="full"),
    BadProcess("--help to /dev/full", ("--help",), 3, "No space left on device", stdout="full"),
    BadProcess(
        "an encoding without σ", ("derive",), 3, "encoding (ascii) cannot print", env={"PYTHONIOENCODING": "ascii"}
    ),
    # a busy loop, still running in its thread: the process must end anyway, at the timeout
    BadProcess("never ends", _check("busy.py", "--timeout", "1"), 2, "did not finish within 1 s", {"busy.py": BUSY}),
    BadProcess("torch work past --timeout", _check("t.py", "--timeout", "1"), 2, "within 1 s", {"t.py": TORCH_SPIN}),
    BadProcess("deep recursion past --timeout", _check("d.py", "--timeout", "1"), 2, "within 1 s", {"d.py": DEEP}),
    # os._exit and os.abort end the process without unwinding: here, not in-process, where they would end pytest
    BadProcess(
        "os._exit(0) at import",
        _check("o.py"),
        2,
        "o.py:2: the code called os._exit(0)",
        {"o.py": "import os\nos._exit(0)\n"},
    ),
    BadProcess(  # os._exit under its platform module's name
        "posix._exit(0) at import",
        _check("p.py"),
        2,
        "p.py:2: the code called os._exit(0)",
        {"p.py": "import posix\nposix._exit(0)\n"},
    ),
    BadProcess(
        "os.abort() in the call",
        _check("a.py"),
        2,
        "a.py:3: the code called os.abort() (during the call",
        {"a.py": "import os\ndef backward(x, y, p):\n    os.abort()\n"},
    ),
    BadProcess(
        "the file closes stdout",
        _check("c.py"),
        3,
        "standard output is closed",
        {"c.py": AUTOGRAD_BACKWARD + "import sys\nsys.stdout.close()\n"},
    ),
    BadProcess(
        "check's report in an encoding without its characters: no -o, which check has not",
        _check("g.py"),
        3,
        "set PYTHONIOENCODING=utf-8",
        {"g.py": AUTOGRAD_BACKWARD.replace('"W1": g1, "W2": g2', '"W1": -g1, "W2": -g2')},  # sign: writes ŷ
        never="-o",
        env={"PYTHONIOENCODING": "ascii"},
    ),
]


def _run(args: list[str], stdout: str, env: Mapping[str, str]) -> subprocess.CompletedProcess:
    target = {"pipe": subprocess.PIPE, "closed": None, "full": None}[stdout]
    preexec = (lambda: os.close(1)) if stdout == "closed" else None
    with open(os.devnull if stdout != "full" else "/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "numeric.cli", *args],
            stdout=full if stdout == "full" else target,
            stderr=subprocess.PIPE,
            preexec_fn=preexec,
            cwd=ROOT,
            env={**os.environ, **env},
            text=True,
            timeout=180,  # the old code never ended on "never returns": this fails it instead of hanging
        )


@pytest.mark.parametrize("case", BAD_PROCESSES, ids=lambda case: case.name)
def test_bad_process_is_one_line_with_its_exit_code(case, tmp_path):
    if case.stdout == "full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    result = _run(_prepare(case, tmp_path), case.stdout, case.env)
    _assert_one_line(result.stderr, result.returncode, case.code, case.says, case.never)


def test_ctrl_c_while_sympy_loads_ends_quietly_with_130():
    """The entry point imports SymPy and torch inside main's guard: an interrupt there is exit 130, no traceback."""
    code = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sympy':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from numeric.cli import main\n"
        "sys.exit(main(['derive']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (result.returncode, result.stderr, result.stdout) == (130, "", "")


def test_ctrl_c_while_the_users_code_runs_ends_quietly_with_130(tmp_path):
    """The wait for the user's thread is interruptible: Ctrl-C during a busy loop is 130, not the timeout."""
    import signal

    (tmp_path / "spin.py").write_text("print('ready', flush=True)\nwhile True:\n    pass\n")
    command = [sys.executable, "-m", "numeric.cli", "check", f"{tmp_path}/spin.py:backward", "--timeout", "100"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout.readline() == b"ready\n"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert (process.returncode, stderr) == (130, b"")


# --- the user's file runs like pytest runs it -------------------------------------------------------------


def test_the_file_imports_the_module_beside_it_and_shadows_nothing(tmp_path, capsys):
    helper = f"helper_{tmp_path.name.replace('-', '_')}"  # a name no other test has imported
    (tmp_path / f"{helper}.py").write_text(AUTOGRAD_BACKWARD)
    # a user's file named like one of chainrule's packages must not replace it in sys.modules
    (tmp_path / "symbolic.py").write_text(f"from {helper} import gradients as backward\nprint('module-level code')\n")
    path_before, symbolic_before = list(sys.path), sys.modules["symbolic"]
    assert main(["check", f"{tmp_path}/symbolic.py:backward"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("module-level code\n") and "verdict: OK" in out
    assert sys.modules["symbolic"] is symbolic_before and sys.path == path_before
    assert not (tmp_path / "__pycache__").exists()  # nothing written beside the user's file


def test_check_help_and_readme_say_the_file_is_executed(capsys):
    assert main(["check", "--help"]) == 0
    page = " ".join(capsys.readouterr().out.split())
    assert "FILE.py is executed" in page and "module-level code runs" in page and "--timeout SECONDS" in page
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "module-level code runs" in readme and "--timeout" in readme


def test_check_passes_batch_only_when_given(monkeypatch, capsys):
    """--batch left out is check_backward's own choice: no number of the CLI's own is passed."""
    seen = []

    def spy(function, network, **kwargs):
        seen.append(kwargs)
        raise symbolic.InputError("stop here")

    monkeypatch.setattr(numeric, "check_backward", spy)
    example = str(ROOT / "examples" / "student_backward.py") + ":backward"
    assert main(["check", example, "--sizes", "3,4,2", "--bias"]) == 2
    assert main(["check", example, "--sizes", "3,4,2", "--bias", "--batch", "7"]) == 2
    assert seen == [{"seed": 0}, {"seed": 0, "batch": 7}]


# --- the exit codes that no test held before: an environment problem is 3, never 2; memory is 3 ---------


@pytest.mark.parametrize("error", [LatexUnavailable("no pdflatex"), LatexFailed("pdflatex failed (! boom)")])
def test_tex_problems_exit_3(error, tmp_path, monkeypatch, capsys):
    def fail(document, output, timeout=120):
        raise error

    monkeypatch.setattr(symbolic, "build_pdf", fail)
    assert main(["derive", "--format", "pdf", "-o", str(tmp_path / "d.pdf")]) == 3
    _assert_one_line(capsys.readouterr().err, 3, 3, str(error))
    assert EXIT_CODES[3].startswith("the environment")


def test_running_out_of_memory_exits_3(monkeypatch, capsys):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(symbolic, "derive", exhausted)
    assert main(["derive", "--sizes", "3,4,2"]) == 3
    _assert_one_line(capsys.readouterr().err, 3, 3, "not enough memory")


def test_the_users_code_running_out_of_memory_exits_3(tmp_path, capsys):
    (tmp_path / "big.py").write_text("def backward(x, y, params):\n    raise MemoryError\n")
    assert main(["check", f"{tmp_path}/big.py:backward"]) == 3
    _assert_one_line(capsys.readouterr().err, 3, 3, "not enough memory")


def test_a_timeout_leaves_promptly_in_process(tmp_path, capsys):
    (tmp_path / "slow.py").write_text("import time\ndef backward(x, y, params):\n    time.sleep(30)\n")
    start = time.perf_counter()
    assert main(["check", f"{tmp_path}/slow.py:backward", "--timeout", "0.3"]) == 2
    assert time.perf_counter() - start < 10  # the derivation takes a moment; the sleep's 30 s must not count
    _assert_one_line(capsys.readouterr().err, 2, 2, "did not finish within 0.3 s")


def test_an_error_of_several_lines_is_printed_on_one(monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise symbolic.InputError("first line\n  second line")

    monkeypatch.setattr(symbolic, "derive", fail)
    assert main(["derive"]) == 2
    _assert_one_line(capsys.readouterr().err, 2, 2, "first line second line")


def test_a_closed_stdout_is_refused_before_any_work(tmp_path):
    """chainrule -o FILE >&- : refused at once, not after the file is written and 'wrote FILE' fails."""
    target = tmp_path / "d.tex"
    result = _run(["derive", "-o", str(target)], "closed", {})
    _assert_one_line(result.stderr, result.returncode, 3, "standard output is closed")
    assert not target.exists()


# --- issue 16: the process's end, standard error, torch's import, chainrule's own bugs -------------------------


def test_torch_is_imported_before_the_users_clock_starts(tmp_path):
    """A file's module-level time is its own: torch and the check machinery are loaded before it runs."""
    (tmp_path / "t.py").write_text(
        "import sys\n"
        "assert 'torch' in sys.modules and 'numeric._check_backward' in sys.modules, 'torch charged to the file'\n"
        + AUTOGRAD_BACKWARD
    )
    result = _run([arg.format(tmp=tmp_path) for arg in _check("t.py")], "pipe", {})
    assert (result.returncode, result.stderr) == (0, ""), result.stderr


@pytest.mark.parametrize("stderr", ["full", "closed", "closed by the user's file"])
def test_a_stderr_that_cannot_take_the_line_keeps_the_exit_code(stderr, tmp_path):
    """2>/dev/full, 2>&-, sys.stderr.close(): the error line is lost, the exit code is still the error's (2).

    Nothing goes to standard output in its place (print(file=None) would write there).
    """
    if stderr == "full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    (tmp_path / "e.py").write_text("import sys\nsys.stderr.close()\nraise ValueError('boom')\n")
    args = ["check", f"{tmp_path}/e.py:backward"] if stderr.endswith("file") else ["derive", "--sizes", "x"]
    with open("/dev/full" if stderr == "full" else os.devnull, "w") as sink:
        result = subprocess.run(
            [sys.executable, "-m", "numeric.cli", *args],
            stdout=subprocess.PIPE,
            stderr=sink,
            preexec_fn=(lambda: os.close(2)) if stderr == "closed" else None,
            cwd=ROOT,
            timeout=120,
        )
    assert (result.returncode, result.stdout) == (2, b"")


def test_an_unexpected_exception_is_one_line_exit_4(monkeypatch, capsys):
    """chainrule's own bug (here a TypeError from deep inside): one line asking for a report, exit 4, never 1."""

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand\n  on two lines")

    monkeypatch.setattr(symbolic, "derive", broken)
    assert main(["derive"]) == 4
    _assert_one_line(
        capsys.readouterr().err, 4, 4, "internal error, please report it: TypeError: unsupported operand on"
    )
    assert "internal error" in EXIT_CODES[4]

    def verbose(*args, **kwargs):  # as torch's dispatcher errors, which list every backend
        raise KeyError("x" * 5000)

    monkeypatch.setattr(symbolic, "derive", verbose)
    assert main(["derive"]) == 4
    line = capsys.readouterr().err.strip()
    assert "KeyError: 'xxx" in line and "xxx…" in line and len(line) < 500  # shortened, still one line
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "| 4 | internal error" in readme


@pytest.mark.parametrize(
    ("name", "error", "says", "never"),
    [
        ("σ", symbolic.NetworkError, "ASCII identifier: letters a-z, A-Z, digits and _", "Python identifier"),
        (3, symbolic.NetworkTypeError, "an activation name must be a str", "a activation"),
    ],
)
def test_activation_name_messages_say_what_is_allowed(name, error, says, never):
    """'σ'.isidentifier() is True: the message must not call it 'not a Python identifier'; English articles."""
    assert isinstance(name, int) or name.isidentifier()  # why 'Python identifier' was wrong
    with pytest.raises(error) as caught:
        symbolic.Activation.define(name, lambda z: z)
    assert says in str(caught.value) and never not in str(caught.value)


def test_os_exit_is_given_back_once_the_users_code_has_finished(tmp_path, capsys, monkeypatch):
    """The guard on os._exit and os.abort lasts only while the user's code runs: a notebook keeps its os."""
    import numeric._user_code

    # forget the threads of earlier tests still sleeping past their --timeout: they keep the guard installed
    monkeypatch.setattr(numeric._user_code, "_user_threads", set())
    real_exit, real_abort = numeric._user_code._real_exit, numeric._user_code._real_abort
    (tmp_path / "r.py").write_text("import os\nassert os._exit is not os.abort\nraise ValueError('boom')\n")
    assert main(["check", f"{tmp_path}/r.py:backward"]) == 2
    capsys.readouterr()
    assert (os._exit, os.abort) == (real_exit, real_abort)
