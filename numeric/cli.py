"""The ``chainrule`` command.

``chainrule`` alone runs the tutorial end to end; ``derive``, ``compile`` and ``verify`` work on any
network given with ``--sizes/--activation/--loss/--bias`` (options given without ``--sizes`` change the
tutorial's network). torch is imported only by the commands that compute (``derive`` never imports it).
Every error is one line ``chainrule: error: …`` on stderr and one of the exit codes in ``EXIT_CODES``.

This module imports only the standard library at its top: SymPy (through ``symbolic``) and torch are
imported inside ``main``, so that a Ctrl-C while they load ends quietly with 130 like any other.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symbolic import Network

FORMATS = ("latex", "text", "markdown", "pdf", "html")
DTYPES = ("float32", "float64")

EXIT_CODES = {
    0: "success (verify: every check passed)",
    1: "a check failed: the gradients disagree (verify, check, the tutorial)",
    2: "bad input: an unknown option, name or value; for check, a FILE.py that fails to load or whose "
    "function raises, exits (sys.exit, os._exit, os.abort) or runs past --timeout",
    3: "the environment: the output (a file or standard output) cannot be written, TeX is missing or failed, "
    "memory ran out",
    4: "internal error: an exception chainrule did not expect, which is chainrule's bug; please report it",
    130: "interrupted (Ctrl-C)",
    141: "the reader of the output went away while chainrule still had output to write (e.g. chainrule | head)",
}
EXIT_MISMATCH, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 3, 4, 130, 141
TIMEOUT_MAX = 86400.0  # a day: beyond threading.TIMEOUT_MAX (about 292 years) join() overflows; a day is plenty
INTERNAL_MESSAGE_MAX = 300  # characters of an unexpected exception's message on its one line
SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes at most 64 bits; numpy's generators no negatives


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise _UsageError(message)


class _UsageError(Exception):
    """The command line asks for something chainrule cannot do (exit 2)."""


class _EnvironmentProblem(Exception):
    """The request is fine but this machine cannot carry it out (exit 3)."""


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("chainrule")
    except metadata.PackageNotFoundError:  # run from a checkout that was never pip-installed
        return "unknown (not installed)"


def _parse_sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise _UsageError(f"--sizes {text!r} is not a comma-separated list of integers (e.g. --sizes 3,4,2)") from None


def _seed(text: str) -> int:
    """An argparse type: an integer seed that every generator chainrule draws with accepts."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= seed <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{text} is out of range: a seed is an integer from 0 to 2**64-1 ({SEED_MAX})")
    return seed


def _seconds(text: str) -> float:
    """An argparse type: a positive, finite number of seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number of seconds")
    if seconds > TIMEOUT_MAX:
        raise argparse.ArgumentTypeError(f"{text} is more than a day ({TIMEOUT_MAX:g} s), the most --timeout takes")
    return seconds


def _network(args: argparse.Namespace) -> Network:
    """The network the options describe: the tutorial's, changed by whichever options are given."""
    from symbolic import TUTORIAL, Network

    sizes = _parse_sizes(args.sizes) if args.sizes is not None else list(TUTORIAL.sizes)
    activations = args.activation.split(",") if args.activation is not None else "sigmoid"
    if isinstance(activations, list) and len(activations) == 1:
        activations = activations[0]
    return Network(
        sizes,
        activations=activations,
        loss="half_sse" if args.loss is None else args.loss,
        bias=args.bias,
        reduction=args.reduction or "sum",
    )


def _add_network_options(parser: argparse.ArgumentParser) -> None:
    from symbolic import ACTIVATIONS, LOSSES, MAX_WIDTH

    group = parser.add_argument_group(
        "network (default: the tutorial's 1-2-2 sigmoid network with the half_sse loss; "
        "each option given changes only that part of it)"
    )
    group.add_argument("--sizes", help=f"widths, input first, e.g. 3,4,2 (at most {MAX_WIDTH:,} a layer)")
    group.add_argument("--activation", help=f"one name, or one per layer, comma-separated: {', '.join(ACTIVATIONS)}")
    group.add_argument("--loss", help=f"one of {', '.join(LOSSES)} (default half_sse)")
    group.add_argument("--bias", action="store_true", help="give every layer a bias b_l")
    group.add_argument(
        "--reduction",
        choices=("sum", "mean"),
        help="sum the loss over the batch (default), or take its mean (PyTorch's default)",
    )


def _add_wrt_option(parser: argparse.ArgumentParser) -> None:
    from symbolic import WRT

    parser.add_argument(
        "--wrt",
        choices=WRT,
        action="append",
        help="also derive the gradient with respect to the input x (saliency, adversarial examples)",
    )


def _add_lang_option(parser: argparse.ArgumentParser, default: str, what: str = "the derivation") -> None:
    # a subcommand's default must not overwrite a --lang given before the subcommand: it is SUPPRESSed there
    from symbolic import LANGUAGES

    parser.add_argument("--lang", choices=LANGUAGES, default=default, help=f"language of {what} (default en)")


def _command(commands, name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
    """A subcommand whose --help page starts with what it does."""
    return commands.add_parser(name, help=summary, description=f"{summary[0].upper()}{summary[1:]}. {details}".strip())


def _check_output_path(output: str) -> None:
    """Refuse an -o path that cannot be written before any work is done (root may write read-only files)."""
    from symbolic._atomic import output_problem

    if not output.strip():
        raise _UsageError("-o needs a file name (or - for standard output); got an empty one")
    problem = output_problem(output)
    if problem is not None:
        raise _EnvironmentProblem(f"-o {output}: {problem}")


def _write_output(output: str, data: str | bytes) -> None:
    """Write -o atomically: a failed write (a full disk) leaves the file it would replace as it was."""
    from symbolic._atomic import write_atomically

    try:
        write_atomically(output, data)
    except OSError as error:
        raise _EnvironmentProblem(f"cannot write -o {output}: {error.strerror or error}") from None


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that what is still buffered does not fail again at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):  # not a real file (a test's capture): nothing to flush at exit
        pass


def _emit(text: str | bytes, output_option: bool = False) -> None:
    """Write to standard output and flush, so that a failure shows here as one line with exit 3.

    Standard output that cannot take the text (closed, a full disk, an encoding without σ) is an error,
    not a fallback: writing UTF-8 where PYTHONIOENCODING=ascii was asked for, or escapes in place of the
    mathematics, would hand the reader something other than what it asked for, silently. ``output_option``:
    the command has ``-o``, which the advice may then name.
    """
    stream = sys.stdout
    if stream is None or stream.closed:  # closed at the start (>&-), or by the user's file (sys.stdout.close())
        raise _EnvironmentProblem("standard output is closed; redirect it to a file or to /dev/null")
    try:
        if isinstance(text, bytes):
            stream.flush()
            stream.buffer.write(text)
        else:
            stream.write(text)
        stream.flush()
    except UnicodeEncodeError as error:
        import unicodedata

        character = error.object[error.start]
        name = f"U+{ord(character):04X} {unicodedata.name(character, '')}".strip()
        raise _EnvironmentProblem(
            f"standard output's encoding ({stream.encoding}) cannot print {character!r} ({name}); "
            f"set PYTHONIOENCODING=utf-8{', or write to a file with -o' if output_option else ''}"
        ) from None
    except BrokenPipeError:
        raise
    except OSError as error:
        _discard_stdout()
        raise _EnvironmentProblem(f"cannot write to standard output: {error.strerror or error}") from None


def _parser() -> argparse.ArgumentParser:
    from ._choices import FORMS, GRADCHECK_MODES  # torch-free tables: derive never imports torch

    parser = _Parser(
        prog="chainrule",
        description="Derive backpropagation by the chain rule with SymPy, compile it to torch, verify it. "
        "With no command: the tutorial's network, derived, compiled, checked against autograd and shown.",
        epilog="exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"chainrule {_version()}")
    _add_lang_option(parser, "en", "the derivation, the tables and the reports")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    tutorial = _command(
        commands,
        "tutorial",
        "the tutorial end to end (the default command)",
        "Derives the tutorial's 1-2-2 sigmoid network, compiles it, checks it against autograd and prints all of it.",
    )
    _add_lang_option(tutorial, argparse.SUPPRESS, "the derivation, the gradient table and the report")
    tutorial.set_defaults(handler=_run_tutorial)

    derive_cmd = _command(
        commands,
        "derive",
        "write the derivation as LaTeX, PDF, Markdown, a web page (html) or text",
        "The chain rule worked through for the network, in teaching order; torch is not needed.",
    )
    _add_network_options(derive_cmd)
    derive_cmd.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    derive_cmd.add_argument(
        "-o", "--output", help="write to this file (required for pdf); default or '-': standard output"
    )
    derive_cmd.add_argument(
        "--fragment", action="store_true", help="with --format latex: the body only, not a standalone document"
    )
    derive_cmd.add_argument(
        "--seed",
        type=_seed,
        help="substitute reproducible example values drawn with this seed (the tutorial has its own)",
    )
    _add_wrt_option(derive_cmd)
    _add_lang_option(derive_cmd, argparse.SUPPRESS)
    derive_cmd.set_defaults(handler=_run_derive)

    compile_cmd = _command(
        commands,
        "compile",
        "print the generated torch code of the gradients",
        "The Python source that compile_gradients makes for the network.",
    )
    _add_network_options(compile_cmd)
    compile_cmd.add_argument("--form", choices=FORMS, default="matrix", help=_FORM_HELP)
    _add_wrt_option(compile_cmd)
    compile_cmd.set_defaults(handler=_run_compile)

    verify_cmd = _command(
        commands,
        "verify",
        "check compiled gradients against autograd, the closed form and gradcheck",
        "Exits 0 when every check passes and 1 when one fails.",
    )
    _add_network_options(verify_cmd)
    verify_cmd.add_argument(
        "--batch",
        type=int,
        help="samples of random values (default 4; the tutorial's network alone defaults to its own one sample)",
    )
    verify_cmd.add_argument("--seed", type=_seed, help="seed of the random values (default 0)")
    verify_cmd.add_argument(
        "--dtype", choices=DTYPES, default="float64", help="precision of the compiled run (default float64)"
    )
    verify_cmd.add_argument("--form", choices=FORMS, default="matrix", help=_FORM_HELP)
    verify_cmd.add_argument(
        "--gradcheck",
        choices=GRADCHECK_MODES,
        default="auto",
        help="finite differences on every entry (full), on a random direction and random entries per "
        "parameter (sample), or none (off); auto (default): full on small networks, sampled on large ones",
    )
    verify_cmd.add_argument(
        "--device", default="cpu", help="torch device to compute on: cpu (default), cuda, cuda:1, mps"
    )
    _add_wrt_option(verify_cmd)
    _add_lang_option(verify_cmd, argparse.SUPPRESS, "the report")
    verify_cmd.set_defaults(handler=_run_verify)

    from ._user_code import DEFAULT_TIMEOUT

    check_cmd = _command(
        commands,
        "check",
        "check a hand-written backward pass FILE.py:FUNCTION against the derivation, naming its mistakes",
        "FILE.py is executed, as pytest imports a test file: its module-level code runs (not its "
        "'if __name__ == \"__main__\":' block), with its folder first on sys.path. "
        "FUNCTION(x, y, params) must return {'W1': ..., 'b1': ...}: the gradients in chainrule's layout "
        "(x is [n_in, B], samples are columns; b is [n, 1]). Exits 0 when every gradient matches, 1 when "
        "not, after a diagnosis; 2 when the file cannot be loaded or the function raises, calls sys.exit "
        "or runs past --timeout (one line naming the exception and the file's line).",
    )
    check_cmd.add_argument("target", metavar="FILE.py:FUNCTION", help="the file and the function in it")
    _add_network_options(check_cmd)
    check_cmd.add_argument(
        "--batch", type=int, help="samples per batch of random values (default: check_backward's own choice)"
    )
    check_cmd.add_argument("--seed", type=_seed, default=0, help="seed of the random values (default 0)")
    check_cmd.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long the file's module-level code, and then the function, may each run before chainrule "
        f"gives up with exit 2 (default {DEFAULT_TIMEOUT:g})",
    )
    check_cmd.add_argument(
        "--layer",
        choices=("batchnorm", "layernorm", "conv", "maxpool", "residual"),
        help="FUNCTION is one layer's backward in CS231n's style, FUNCTION(dout, cache), its cache built by the "
        "file's forward: batchnorm_forward(x, gamma, beta, bn_param) or layernorm_forward(x, gamma, beta, ln_param) "
        "-> (dx, dgamma, dbeta), samples are rows (x is [N, D]); conv_forward_naive(x, w, b, conv_param) -> (dx, dw, "
        "db), x is [N, C, H, W]; max_pool_forward_naive(x, pool_param) -> dx; residual_forward(x, w, b), out = x + "
        "relu(x @ w + b) -> (dx, dw, db); no network options",
    )
    _add_lang_option(check_cmd, argparse.SUPPRESS, "the report")
    check_cmd.set_defaults(handler=_run_check)
    parser.set_defaults(handler=_run_tutorial)
    return parser


_FORM_HELP = "matrix: one line per layer quantity over whole tensors (default); elementwise: one line per unit"


def _run_derive(args: argparse.Namespace) -> int:
    from symbolic import NUMBERS_LIMIT, TUTORIAL, TUTORIAL_VALUES, derive, sample_values

    if args.fragment and args.format != "latex":
        raise _UsageError(f"--fragment applies to --format latex only; got --format {args.format}")
    to_stdout = args.output in (None, "-")
    if args.format == "pdf":
        if args.output is None:
            raise _UsageError("--format pdf needs -o FILE.pdf (or -o - to send the PDF to a pipe)")
        if to_stdout and sys.stdout.isatty():
            raise _UsageError("--format pdf -o - would print a binary PDF on the terminal; pipe it or give -o FILE.pdf")
    if not to_stdout:
        _check_output_path(args.output)
    network = _network(args)
    derivation = derive(network, wrt=tuple(args.wrt or ()))
    if args.seed is not None:
        # above NUMBERS_LIMIT the page says why it shows no numbers, reading only x: draw no weights
        values = sample_values(network, seed=args.seed, inputs_only=network.parameter_count > NUMBERS_LIMIT)
    else:
        values = TUTORIAL_VALUES if network == TUTORIAL else None
    if args.format == "pdf":
        data: str | bytes = _pdf_bytes(derivation.latex(document=True, values=values, lang=args.lang))
    elif args.format == "latex":
        data = derivation.latex(document=not args.fragment, values=values, lang=args.lang)
    elif args.format == "markdown":
        data = derivation.markdown(values=values, lang=args.lang)
    elif args.format == "html":  # one self-contained page: KaTeX and the figure inside it
        data = derivation.html(values=values, lang=args.lang)
    else:
        data = derivation.text(values=values, lang=args.lang)
    if to_stdout:
        _emit(data, output_option=True)
        return 0
    _write_output(args.output, data)
    _emit(f"wrote {args.output}\n")
    return 0


def _pdf_bytes(document: str) -> bytes:
    import tempfile

    from symbolic import build_pdf

    # LatexUnavailable and LatexFailed reach main, which gives them the environment's exit code, 3
    with tempfile.TemporaryDirectory(prefix="chainrule-") as folder:
        path = Path(folder) / "derivation.pdf"
        build_pdf(document, path)
        return path.read_bytes()


def _run_compile(args: argparse.Namespace) -> int:
    from numeric import compile_gradients
    from symbolic import derive

    _emit(compile_gradients(derive(_network(args), wrt=tuple(args.wrt or ())), form=args.form).source)
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    import torch

    from numeric import random_values, verify
    from numeric._checks import check_device
    from numeric._verify import _require_memory
    from symbolic import TUTORIAL, derive
    from symbolic._values import check_seed_and_batch

    network = _network(args)
    check_device(args.device)  # before any work: a machine without CUDA says so at once
    dtype = getattr(torch, args.dtype)
    values = None
    if network != TUTORIAL or args.batch is not None or args.seed is not None:
        batch = 4 if args.batch is None else args.batch
        # the batch's bounds, then the whole run's estimate, before the draw: a run that cannot fit is refused
        # before it fills memory
        check_seed_and_batch(0 if args.seed is None else args.seed, batch)
        _require_memory(network, batch, dtype, "sample" if args.gradcheck == "auto" else args.gradcheck)
        values = random_values(network, batch, 0 if args.seed is None else args.seed, dtype=dtype)
    report = verify(
        derive(network, wrt=tuple(args.wrt or ())),
        values,
        form=args.form,
        dtype=dtype,
        device=args.device,
        gradcheck=args.gradcheck,
        seed=0 if args.seed is None else args.seed,
    )
    _emit(report.text(args.lang) + "\n")
    return 0 if report.ok else 1


def _run_check(args: argparse.Namespace) -> int:
    from ._user_code import load_function

    if args.layer is not None:
        return _run_check_layer(args)
    network = _network(args)  # a bad network option is refused before the user's file runs
    # torch and the check machinery before the user's clock starts: a file that imports torch itself would
    # otherwise be charged its import (seconds on a loaded machine) and time out at a small --timeout
    from numeric import check_backward

    function = load_function(args.target, args.timeout)

    # --batch not given: check_backward chooses (its default), rather than a number repeated here
    batch = {} if args.batch is None else {"batch": args.batch}
    report = check_backward(function, network, seed=args.seed, **batch)
    _emit(report.text(args.lang) + "\n")
    return 0 if report.ok else 1


def _run_check_layer(args: argparse.Namespace) -> int:
    """``check FILE.py:FUNCTION --layer NAME``: the file's forward builds the cache, FUNCTION is checked."""
    from symbolic import InputError

    from ._check_layer import ALL_LAYERS, check_layer_backward
    from ._user_code import guarded_function, load_module

    given = [f"--{name}" for name in ("sizes", "activation", "loss", "reduction", "batch") if getattr(args, name)]
    if given or args.bias:
        raise _UsageError(f"{', '.join(given + ['--bias'] * args.bias)}: not with --layer (it checks one layer)")
    layer = ALL_LAYERS[args.layer]
    expects = f"--layer {args.layer} expects {layer.forward_signature} -> (out, cache) and {layer.backward_signature}"
    module, user_file, name = load_module(args.target, args.timeout)
    try:  # a missing function or a wrong arity: said with the signatures chainrule expects
        backward = guarded_function(module, user_file, name, ("dout", "cache"), args.timeout)
    except InputError as error:
        raise type(error)(f"{error} ({expects})") from None
    if not callable(getattr(module, layer.forward_name, None)):
        raise _UsageError(
            f"{user_file.shown} has no function {layer.forward_signature}: "
            f"--layer {args.layer} needs it to build {name}'s cache"
        )
    try:
        forward = guarded_function(module, user_file, layer.forward_name, layer.forward_arguments, args.timeout)
    except InputError as error:
        raise type(error)(f"{error} ({expects})") from None
    report = check_layer_backward(backward, args.layer, forward=forward, seed=args.seed)
    _emit(report.text(args.lang) + "\n")
    return 0 if report.ok else 1


def _matrix_text(rows: list[list[float]], spec: str) -> str:
    return "[" + ", ".join("[" + ", ".join(format(v, spec) for v in row) + "]" for row in rows) + "]"


EXACT_DIGITS = ".7f"  # the tutorial's forward values, exact: more digits than its float32 print shows
TUTORIAL_DIGITS = ".4f"  # how the tutorial prints its forward values


def _values_text(rows: list[list[float]], spec: str) -> str:
    """One number as itself, more as a matrix."""
    return format(rows[0][0], spec) if len(rows) == 1 and len(rows[0]) == 1 else _matrix_text(rows, spec)


def _within_last_digit(value: float, printed: float, spec: str) -> bool:
    """Whether ``value`` is within one unit of the last digit of ``printed``, written with ``spec`` (".4f",
    ".4e"): how a number from the tutorial's page is compared with chainrule's, to the precision printed."""
    digits = int(spec[1:-1])
    if spec.endswith("e"):
        exponent = int(format(printed, spec).split("e")[1])
        unit = 10.0 ** (exponent - digits)
    else:
        unit = 10.0**-digits
    return abs(value - printed) <= unit * (1 + 1e-9)


def _tutorial_equations(network: Network) -> str:
    """The network's forward pass and loss in the tutorial's names (y_l for the output of layer l), printed
    from the matrix program's own steps: ``z1 = W1 x, y1 = σ(z1), ..., L = Σ (y2 − y)²/2``."""
    import sympy

    from symbolic import derive
    from symbolic._matrix import Role
    from symbolic._printers import TextNotation

    class Notation(TextNotation):  # the matrix product as the tutorial writes it, W1 x
        def _print_matmul(self, expr: sympy.Expr) -> str:
            return " ".join(self._print(argument) for argument in expr.args)

        def _print_unit_sum(self, expr: sympy.Expr) -> str:
            return f"Σ {self._print(expr.args[0])}"

    program = derive(network).matrix_program
    x, y, *parameters = program.inputs
    names = {x: "x", y: "y", **{p: p.name for p in parameters}}
    names.update({program.step(Role.Z, layer).target: f"z{layer}" for layer in range(1, network.depth + 1)})
    names.update({program.step(Role.A, layer).target: f"y{layer}" for layer in range(1, network.depth + 1)})
    printer = Notation(names)
    lines = [
        f"{names[step.target]} = {printer.doprint(step.expression)}"
        for step in program.steps
        if step.role in (Role.Z, Role.A)
    ]
    output = program.step(Role.A, network.depth).target
    per_sample = network.loss_rule.matrix_per_sample(output, y, network.sizes[-1])  # the tutorial has one sample
    return ", ".join([*lines, f"L = {printer.doprint(per_sample)}"])


def _run_tutorial(args: argparse.Namespace) -> int:
    import torch

    from numeric import as_tensors, compile_gradients, verify
    from symbolic import TUTORIAL, TUTORIAL_PRINTED, TUTORIAL_VALUES, derive, display_width, pad, words

    w = words(args.lang)
    derivation = derive(TUTORIAL)
    forward = derivation.intermediates(TUTORIAL_VALUES)
    exact = derivation.evaluate(TUTORIAL_VALUES, closed_form=True)
    # (name, chainrule's value, the tutorial's printed value): chainrule's are computed, shown and compared with
    # the tutorial's, which are only shown beside them
    ours = [
        ("y1 = a1", forward["a1"], TUTORIAL_PRINTED["y1"]),
        ("y2 = a2", forward["a2"], TUTORIAL_PRINTED["y2"]),
        (w["tutorial_loss"], [[exact["loss"]]], [[TUTORIAL_PRINTED["loss"]]]),
    ]
    differing = [
        name
        for name, value, printed in ours
        if not all(_within_last_digit(v, p, TUTORIAL_DIGITS) for vs, ps in zip(value, printed) for v, p in zip(vs, ps))
    ]
    name_width = max(display_width(name) for name, _, _ in ours)
    value_width = max(display_width(_values_text(value, EXACT_DIGITS)) for _, value, _ in ours)
    given = ", ".join(f"{name} = {_matrix_text(rows, 'g')}" for name, rows in TUTORIAL_VALUES.items())
    out = [
        w["tutorial_title"],
        f"  {_tutorial_equations(TUTORIAL)}",
        f"  {given}",
        "",
        w["tutorial_forward"],
        *(
            f"  {pad(name, name_width)} = {pad(_values_text(value, EXACT_DIGITS), value_width)}    "
            + w["tutorial_printed"].format(value=_values_text(printed, TUTORIAL_DIGITS))
            for name, value, printed in ours
        ),
        "",
        w["heading_derivation"],
        "=" * display_width(w["heading_derivation"]),
        derivation.text(lang=args.lang),
    ]
    compiled = compile_gradients(derivation, scalar=False)  # float32 arithmetic, as the tutorial's own run
    runs = {}
    for dtype in (torch.float32, torch.float64):
        t = as_tensors(TUTORIAL_VALUES, dtype)
        runs[dtype] = compiled(t["x"], t["y"], {name: t[name] for name in derivation.parameters})
    report = verify(derivation, compiled=compiled)  # float64: compiled, closed form and autograd

    rows = []  # (entry, the tutorial's printed value, closed form, compiled f32, compiled f64, autograd f64)
    for name in derivation.parameters:
        shape_rows, shape_cols = TUTORIAL.parameter_shapes[name]
        for i in range(shape_rows):
            for j in range(shape_cols):
                entry = f"dL/d{name}[{i + 1},{j + 1}]"
                printed, float32 = TUTORIAL_PRINTED[name][i][j], runs[torch.float32][name][i, j].item()
                if not _within_last_digit(float32, printed, ".4e"):  # the tutorial ran float32 too
                    differing.append(entry)
                rows.append(
                    (
                        entry,
                        f"{printed:.4e}",
                        f"{exact[name][i][j]:.7e}",
                        f"{float32:.4e}",
                        f"{runs[torch.float64][name][i, j].item():.7e}",
                        f"{report.autograd[name][i, j].item():.7e}",
                    )
                )
    heads = (
        w["column_entry"],
        w["column_tutorial"],
        w["column_closed_form"],
        w["column_compiled"].format(dtype="f32"),
        w["column_compiled"].format(dtype="f64"),
        "autograd f64",  # an identifier and a dtype: the same in every language
    )
    # each column as wide as its widest cell (in terminal columns: a CJK head counts 2 a character)
    widths = [max(display_width(cell) for cell in column) for column in zip(heads, *rows)]
    widths = [widths[0], *(max(width, least) for width, least in zip(widths[1:], (12, 14, 14, 14, 14)))]

    def line(cells: tuple[str, ...]) -> str:
        return "  " + " ".join([pad(cells[0], widths[0]), *(pad(c, n, ">") for c, n in zip(cells[1:], widths[1:]))])

    gradients = w["heading_gradients"]
    out += [gradients, "=" * display_width(gradients), line(heads), *map(line, rows)]
    if differing:
        out.append(w["tutorial_differs"].format(names=", ".join(differing)))
    else:
        compared = sum(len(row) for _, value, _ in ours for row in value) + len(rows)
        out.append(w["tutorial_agrees"].format(count=compared))
    out += ["", report.text(args.lang)]
    worst = max(c.max_rel_error for c in report.comparisons + report.closed_form_comparisons)
    out.append(w["largest_difference"].format(worst=f"{worst:.1e}"))
    _emit("\n".join(out) + "\n")
    return 0 if report.ok and not differing else 1


def _fail(message: object, code: int) -> int:
    """One line on stderr, however many lines the message had (a torch error may have several).

    Standard error that cannot take the line (closed, full: ``2>/dev/full``) does not change the exit code:
    the code is the answer; the line only explains it. What stays buffered is sent to /dev/null, so that
    the interpreter's flush at exit does not fail again and turn the code into 120.
    """
    stream = sys.stderr
    if stream is None:  # started with standard error closed (2>&-): print(file=None) would use stdout
        return code
    try:
        print(f"chainrule: error: {' '.join(str(message).split())}", file=stream, flush=True)
    except (OSError, ValueError, AttributeError):  # full or gone; ValueError: closed; AttributeError: None
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # at any moment, the imports of SymPy and torch included
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, less) left: say nothing, and keep Python from complaining when it flushes at exit.
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    if sys.stdout is None:  # started with standard output closed (chainrule >&-): every command prints
        return _fail("standard output is closed; redirect it to a file or to /dev/null", EXIT_ENVIRONMENT)
    from symbolic import ChainruleError, LatexFailed, LatexUnavailable, ResourceError
    from symbolic._pdf import OutputError

    try:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as done:  # --help and --version print, then exit: flushed here, where errors show
            _emit("")
            return done.code if isinstance(done.code, int) else EXIT_USAGE
        code = args.handler(args)
        _emit("")  # a closed pipe shows here, inside the handlers of main, not at interpreter exit
        return code
    except _UsageError as error:
        return _fail(error, EXIT_USAGE)
    except ChainruleError as error:
        environment = isinstance(error, (LatexUnavailable, LatexFailed, OutputError, ResourceError))
        return _fail(error, EXIT_ENVIRONMENT if environment else EXIT_USAGE)
    except _EnvironmentProblem as error:
        return _fail(error, EXIT_ENVIRONMENT)
    except MemoryError:
        return _fail("not enough memory for this network; try smaller --sizes or --batch", EXIT_ENVIRONMENT)
    except (KeyboardInterrupt, BrokenPipeError):
        raise  # main's: 130 and 141
    except Exception as error:  # chainrule's bug, not the user's: still one line, with what to report
        message = " ".join(str(error).split())
        if len(message) > INTERNAL_MESSAGE_MAX:  # torch's dispatcher errors list every backend: thousands of chars
            message = message[:INTERNAL_MESSAGE_MAX] + "…"
        return _fail(
            f"internal error, please report it: {type(error).__name__}: {message} (chainrule {_version()})",
            EXIT_INTERNAL,
        )


def console_main() -> None:
    """The ``chainrule`` command and ``python -m numeric.cli``: ``main``, then leave the process.

    A user's function that ran past --timeout is still running in its thread, and may keep the interpreter
    from ending: torch work aborts at exit ("terminate called without an active exception", 134), deep
    recursion hangs it. Then the process leaves with ``os._exit`` once stdout and stderr are flushed. Only
    here: ``main()`` called in a test or a notebook must never end the caller's process.
    """
    code = main()
    user_code = sys.modules.get("numeric._user_code")  # not loaded: no user code ran (and no import here)
    if user_code is not None and user_code.user_code_running():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):  # closed, full or None: the code says it already
                pass
        user_code.real_exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
