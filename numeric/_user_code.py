"""Load a user's ``FILE.py:FUNCTION`` and run it the way pytest runs a test file, within a time limit.

The file is executed (its module-level code runs; not its ``if __name__ == "__main__":`` block) with its
folder first on ``sys.path``, so that it can import the modules beside it. It is registered in
``sys.modules`` under a name of its own, which shadows no module of the same name elsewhere. Whatever the
user's code does (raises, recurses without end, calls ``sys.exit``, never returns) becomes one
``UserCodeError`` naming the exception and the innermost line of the user's file that was running.

The time limit: the user's code runs in a daemon thread while this thread waits ``timeout`` seconds.
A thread cannot be stopped from outside, but a daemon thread does not keep the process alive: the
command reports the timeout and exits at once. (``signal.alarm`` would interrupt only between Python
bytecodes of the main thread, so not a long torch call, and the user's ``except BaseException`` could
swallow it.) A thread still running after its timeout can keep the interpreter from ending (torch work
aborts at exit, deep recursion hangs it): the console entry point leaves with ``os._exit`` when
``user_code_running()`` says so.

``os._exit`` and ``os.abort`` (also reachable as ``posix._exit``, ``posix.abort``) end the process without
unwinding: called by the user's code they would end ``check`` with no report at all (``os._exit(0)``: a
false success). While the user's code runs they are replaced, under both names, by functions that raise
``HardExit`` in the user's threads, reported like ``sys.exit``.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symbolic import ChainruleError, InputError

DEFAULT_TIMEOUT = 60.0  # seconds; a student's backward pass on the default batch takes milliseconds

_names = itertools.count(1)


class UserCodeError(ChainruleError, RuntimeError):
    """The user's file could not be loaded, or its function failed: raised, exited, or ran too long."""


@dataclass(frozen=True)
class UserFile:
    """A user's Python file, as named on the command line (``shown``) and as found (``path``)."""

    shown: str
    path: Path

    def line_of(self, error: BaseException) -> str:
        """``FILE:LINE`` of the innermost frame of this file in ``error``'s traceback; ``FILE`` if none."""
        if isinstance(error, SyntaxError) and error.filename and error.lineno:
            # the parser's position, in whichever file it was reading (this one or one it imports)
            same = _same_file(error.filename, self.path)
            return f"{self.shown if same else error.filename}:{error.lineno}"
        lines = [
            frame.lineno for frame in traceback.extract_tb(error.__traceback__) if _same_file(frame.filename, self.path)
        ]
        return f"{self.shown}:{lines[-1]}" if lines else self.shown


def _same_file(name: str, path: Path) -> bool:
    try:
        return os.path.samefile(name, path)
    except OSError:
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(error: BaseException) -> str:
    """``Type: message`` on one line (a SyntaxError's message without its file and line, told apart)."""
    if isinstance(error, SystemExit):
        return f"SystemExit: the code called sys.exit({error.code!r})"
    if isinstance(error, HardExit):
        return str(error)
    message = error.msg if isinstance(error, SyntaxError) else str(error)
    message = _one_line(message)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


class HardExit(BaseException):
    """The user's code called ``os._exit`` or ``os.abort``: raised in its place (a BaseException, as SystemExit)."""


_real_exit, _real_abort = os._exit, os.abort  # kept here: the console entry point needs the real os._exit
# os._exit is the platform module's _exit (posix._exit, nt._exit), reachable under that name too: both guarded
_EXIT_MODULES = (os, importlib.import_module(os.name))
_user_threads: set[threading.Thread] = set()  # started and not known to have finished


def _in_user_thread() -> bool:
    return threading.current_thread() in _user_threads


def _guarded_exit(status: int) -> None:
    if _in_user_thread():
        raise HardExit(f"the code called os._exit({status!r})")
    _real_exit(status)


def _guarded_abort() -> None:
    if _in_user_thread():
        raise HardExit("the code called os.abort()")
    _real_abort()


def user_code_running() -> bool:
    """Whether a thread running the user's code is still alive (it ran past its timeout)."""
    return any(thread.is_alive() for thread in _user_threads)


def real_exit(status: int) -> None:
    """The real ``os._exit``, whatever the user's code did to ``os``."""
    _real_exit(status)


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None


def run_with_timeout(call: Callable[[], Any], user_file: UserFile, timeout: float, doing: str) -> Any:
    """``call()`` with the user's folder first on ``sys.path``, in a daemon thread, at most ``timeout`` s.

    Any exception, ``SystemExit`` and ``RecursionError`` included, becomes a ``UserCodeError`` saying what
    was being run (``doing``); ``KeyboardInterrupt`` and ``MemoryError`` pass, as the command's own would.
    """
    folder = str(user_file.path.parent)
    outcome = _Outcome()
    grad_enabled = _grad_enabled()

    def target() -> None:
        try:
            _set_grad_enabled(grad_enabled)  # torch's grad mode is per thread: the caller's, as if called directly
            outcome.value = call()
        except BaseException as error:  # reported in the waiting thread, whatever it is
            outcome.error = error

    sys.path.insert(0, folder)
    worker = threading.Thread(target=target, name="chainrule-user-code", daemon=True)
    _user_threads.add(worker)
    # the guards stay installed while any user thread lives: one past its timeout may still call os._exit;
    # in every other thread they call the real functions, so leaving them installed harms nobody
    _install(_guarded_exit, _guarded_abort)
    try:
        worker.start()
        worker.join(timeout)
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
        _user_threads.difference_update([thread for thread in list(_user_threads) if not thread.is_alive()])
        if not _user_threads:
            _install(_real_exit, _real_abort)
    if worker.is_alive():
        raise UserCodeError(
            f"{user_file.shown}: {doing} did not finish within {timeout:g} s (--timeout); does it loop forever?"
        )
    error = outcome.error
    if error is None:
        return outcome.value
    if isinstance(error, (KeyboardInterrupt, MemoryError)):  # Ctrl-C (exit 130); out of memory (exit 3)
        raise error
    raise UserCodeError(f"{user_file.line_of(error)}: {_describe(error)} (during {doing})") from None


def _install(exit_function: Callable[[int], None], abort_function: Callable[[], None]) -> None:
    for module in _EXIT_MODULES:
        module._exit, module.abort = exit_function, abort_function


def _grad_enabled() -> bool | None:
    torch = sys.modules.get("torch")
    return None if torch is None else torch.is_grad_enabled()


def _set_grad_enabled(enabled: bool | None) -> None:
    if enabled is not None:
        sys.modules["torch"].set_grad_enabled(enabled)


def parse_target(target: str) -> tuple[UserFile, str]:
    """``FILE.py:FUNCTION`` -> the file and the function's name; an ``InputError`` when it is not one."""
    path_text, colon, name = target.rpartition(":")
    if not colon or not path_text or not name:
        raise InputError(f"{target!r} is not FILE.py:FUNCTION (e.g. examples/student_backward.py:backward)")
    if not name.isidentifier():
        raise InputError(f"{name!r} in {target!r} is not a Python function name")
    path = Path(path_text)
    try:
        if not path.is_file():
            raise InputError(f"no file {path_text!r}")
    except OSError as error:  # a name too long, a loop of links
        raise InputError(f"{path_text!r}: {error.strerror or error}") from None
    if path.suffix != ".py":
        raise InputError(f"{path_text!r} is not a Python file (give a .py file)")
    return UserFile(path_text, path.resolve()), name


def load_function(target: str, timeout: float = DEFAULT_TIMEOUT) -> Callable:
    """The function ``FUNCTION`` of ``FILE.py``, after running the file's module-level code.

    The function returned runs the user's function with the same guards (the folder on ``sys.path``, the
    time limit, one ``UserCodeError`` for whatever goes wrong).
    """
    module, user_file, name = load_module(target, timeout)
    return guarded_function(module, user_file, name, ("x", "y", "params"), timeout)


def load_module(target: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[Any, UserFile, str]:
    """The module of ``FILE.py`` after running its module-level code (guarded), with the file and the name."""
    import importlib.util

    user_file, name = parse_target(target)
    module_name = (
        f"chainrule_user_file_{next(_names)}_{''.join(c if c.isalnum() else '_' for c in user_file.path.stem)}"
    )
    spec = importlib.util.spec_from_file_location(module_name, user_file.path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot load {user_file.shown!r} as Python (give a .py file)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # as pytest does: dataclasses and pickle look the module up by name

    def execute() -> None:
        # no __pycache__ left in the user's folder: checking a file should not write beside it
        writing, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            spec.loader.exec_module(module)
        finally:
            sys.dont_write_bytecode = writing

    try:
        run_with_timeout(execute, user_file, timeout, "the file's module-level code")
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module, user_file, name


def guarded_function(
    module: Any, user_file: UserFile, name: str, arguments: tuple[str, ...], timeout: float = DEFAULT_TIMEOUT
) -> Callable:
    """The module's function ``name``, its signature checked against ``arguments``, run under the guards."""
    function = getattr(module, name, None)
    if function is None:
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise InputError(f"{user_file.shown} has no function {name!r}; it has: {', '.join(found) or 'none'}")
    if not callable(function):
        raise InputError(f"{user_file.shown}:{name} is a {type(function).__name__}, not a function")
    _check_signature(function, user_file, name, arguments)
    call = f"{name}({', '.join(arguments)})"

    def guarded(*args: Any) -> Any:
        return run_with_timeout(lambda: function(*args), user_file, timeout, f"the call {call}")

    guarded.__name__ = guarded.__qualname__ = name
    return guarded


def _check_signature(function: Callable, user_file: UserFile, name: str, arguments: tuple[str, ...]) -> None:
    """The function must take ``arguments`` (x, y, params): said before it runs, with the line where it is defined."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or an object without a signature: let the call tell
        return
    try:
        signature.bind(*(None for _ in arguments))
    except TypeError as error:
        code = getattr(function, "__code__", None)
        where = f"{user_file.shown}:{code.co_firstlineno}" if code is not None else user_file.shown
        raise InputError(
            f"{where}: {name}{signature} cannot be called as {name}({', '.join(arguments)}): {_one_line(str(error))}"
        ) from None
