"""The ``chainrule`` command.

``chainrule`` alone runs the tutorial end to end; ``derive``, ``compile`` and ``verify`` work on any
network given with ``--sizes/--activation/--loss/--bias``. Bad input prints one line and exits 2.
torch is imported only by the commands that compute (``derive`` never imports it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from symbolic import (
    ACTIVATIONS,
    LOSSES,
    TUTORIAL,
    TUTORIAL_PRINTED,
    TUTORIAL_VALUES,
    LANGUAGES,
    ChainruleError,
    Network,
    derive,
    display_width,
    render_pdf,
    sample_values,
    words,
)

FORMATS = ("latex", "text", "markdown", "pdf")
DTYPES = ("float32", "float64")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        raise _UsageError(message)


class _UsageError(Exception):
    pass


def _parse_sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise _UsageError(f"--sizes {text!r} is not a comma-separated list of integers (e.g. --sizes 3,4,2)") from None


def _network(args: argparse.Namespace) -> Network:
    """The network the options describe; the tutorial's when none is given."""
    if args.sizes is None:
        given = [flag for flag, value in (("--activation", args.activation), ("--loss", args.loss)) if value]
        given += ["--bias"] if args.bias else []
        if given:
            raise _UsageError(f"{', '.join(given)} needs --sizes (without --sizes the network is the tutorial's)")
        return TUTORIAL
    activations = args.activation.split(",") if args.activation else "sigmoid"
    if isinstance(activations, list) and len(activations) == 1:
        activations = activations[0]
    return Network(_parse_sizes(args.sizes), activations=activations, loss=args.loss or "half_sse", bias=args.bias)


def _add_network_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("network (default: the tutorial's 1-2-2 sigmoid network, half_sse loss)")
    group.add_argument("--sizes", help="widths, input first, e.g. 3,4,2")
    group.add_argument("--activation", help=f"one name, or one per layer, comma-separated: {', '.join(ACTIVATIONS)}")
    group.add_argument("--loss", help=f"one of {', '.join(LOSSES)} (default half_sse)")
    group.add_argument("--bias", action="store_true", help="give every layer a bias b_l")


def _add_lang_option(parser: argparse.ArgumentParser, default: str) -> None:
    # a subcommand's default must not overwrite a --lang given before the subcommand: it is SUPPRESSed there
    parser.add_argument("--lang", choices=LANGUAGES, default=default, help="language of the derivation (default en)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chainrule",
        description="Derive backpropagation by the chain rule with SymPy, compile it to torch, verify it. "
        "With no command: the tutorial's network, derived, compiled, checked against autograd and shown.",
    )
    _add_lang_option(parser, "en")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    tutorial = commands.add_parser("tutorial", help="the tutorial end to end (the default command)")
    _add_lang_option(tutorial, argparse.SUPPRESS)
    tutorial.set_defaults(handler=_run_tutorial)

    derive_cmd = commands.add_parser("derive", help="write the derivation as LaTeX, PDF, Markdown or text")
    _add_network_options(derive_cmd)
    derive_cmd.add_argument("--format", choices=FORMATS, default="text", help="output format (default text)")
    derive_cmd.add_argument("-o", "--output", help="write to this file (required for pdf); default: stdout")
    derive_cmd.add_argument("--fragment", action="store_true", help="latex: the body only, not a standalone document")
    derive_cmd.add_argument(
        "--seed",
        type=int,
        help="substitute reproducible example values drawn with this seed (the tutorial has its own)",
    )
    _add_lang_option(derive_cmd, argparse.SUPPRESS)
    derive_cmd.set_defaults(handler=_run_derive)

    compile_cmd = commands.add_parser("compile", help="print the generated torch code of the gradients")
    _add_network_options(compile_cmd)
    compile_cmd.add_argument("--form", choices=("matrix", "elementwise"), default="matrix")
    compile_cmd.set_defaults(handler=_run_compile)

    verify_cmd = commands.add_parser(
        "verify", help="check compiled gradients against autograd, the closed form and gradcheck"
    )
    _add_network_options(verify_cmd)
    verify_cmd.add_argument("--batch", type=int, help="samples per batch (random values; default 4)")
    verify_cmd.add_argument("--seed", type=int, help="seed of the random values (default 0)")
    verify_cmd.add_argument("--dtype", choices=DTYPES, default="float64")
    verify_cmd.add_argument("--form", choices=("matrix", "elementwise"), default="matrix")
    verify_cmd.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    verify_cmd.set_defaults(handler=_run_verify)
    parser.set_defaults(handler=_run_tutorial)
    return parser


def _run_derive(args: argparse.Namespace) -> int:
    network = _network(args)
    derivation = derive(network)
    if args.seed is not None:
        values = sample_values(network, seed=args.seed)
    else:
        values = TUTORIAL_VALUES if network == TUTORIAL else None
    if args.format == "pdf":
        if not args.output:
            raise _UsageError("--format pdf needs -o FILE.pdf")
        render_pdf(derivation, args.output, values=values, lang=args.lang)
        print(f"wrote {args.output}")
        return 0
    if args.format == "latex":
        text = derivation.latex(document=not args.fragment, values=values, lang=args.lang)
    elif args.format == "markdown":
        text = derivation.markdown(values=values, lang=args.lang)
    else:
        text = derivation.text(values=values, lang=args.lang)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _run_compile(args: argparse.Namespace) -> int:
    from numeric import compile_gradients

    sys.stdout.write(compile_gradients(derive(_network(args)), form=args.form).source)
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    import torch

    from numeric import random_values, verify

    network = _network(args)
    dtype = getattr(torch, args.dtype)
    values = None
    if network != TUTORIAL or args.batch is not None or args.seed is not None:
        batch = 4 if args.batch is None else args.batch
        values = random_values(network, batch, 0 if args.seed is None else args.seed, dtype=dtype)
    report = verify(derive(network), values, form=args.form, dtype=dtype, device=args.device)
    print(report)
    return 0 if report.ok else 1


def _matrix_text(rows: list[list[float]], spec: str) -> str:
    return "[" + ", ".join("[" + ", ".join(format(v, spec) for v in row) + "]" for row in rows) + "]"


def _run_tutorial(args: argparse.Namespace) -> int:
    import torch

    from numeric import as_tensors, compile_gradients, verify

    derivation = derive(TUTORIAL)
    forward = derivation.intermediates(TUTORIAL_VALUES)
    exact = derivation.evaluate(TUTORIAL_VALUES, closed_form=True)
    out = [
        "chainrule: the tutorial's network, derived by SymPy, compiled to torch, checked against autograd",
        "  z1 = W1 x, y1 = σ(z1), z2 = W2 y1, y2 = σ(z2), L = ½ Σ (y2 − y)²",
        "  x = [[1]], y = [[1], [0]], W1 = [[1], [2]], W2 = [[3, 4], [5, 6]]",
        "",
        "Forward pass (exact; the tutorial prints float32 to 4 digits)",
        f"  y1 = a1 = {_matrix_text(forward['a1'], '.4f')}    tutorial: {TUTORIAL_PRINTED['y1']}",
        f"  y2 = a2 = {_matrix_text(forward['a2'], '.4f')}    tutorial: {TUTORIAL_PRINTED['y2']}",
        f"  loss    = {exact['loss']:.4f}                  tutorial: {TUTORIAL_PRINTED['loss']}",
        "",
        words(args.lang)["heading_derivation"],
        "=" * display_width(words(args.lang)["heading_derivation"]),
        derivation.text(lang=args.lang),
    ]
    compiled = compile_gradients(derivation)
    runs = {}
    for dtype in (torch.float32, torch.float64):
        t = as_tensors(TUTORIAL_VALUES, dtype)
        runs[dtype] = compiled(t["x"], t["y"], {name: t[name] for name in derivation.parameters})
    report = verify(derivation, compiled=compiled)  # float64: compiled, closed form and autograd

    columns = ("tutorial", "closed form", "compiled f32", "compiled f64", "autograd f64")
    header = f"  {'entry':<10} {columns[0]:>12}" + "".join(f" {title:>14}" for title in columns[1:])
    out += ["Gradients", "=========", header]
    for name in derivation.parameters:
        rows, cols = TUTORIAL.parameter_shapes[name]
        for i in range(rows):
            for j in range(cols):
                entry = f"dL/d{name}[{i + 1},{j + 1}]"
                out.append(
                    f"  {entry:<10} {TUTORIAL_PRINTED[name][i][j]:>12.4e} {exact[name][i][j]:>14.7e} "
                    f"{runs[torch.float32][name][i, j].item():>14.4e} {runs[torch.float64][name][i, j].item():>14.7e} "
                    f"{report.autograd[name][i, j].item():>14.7e}"
                )
    out += ["", str(report)]
    worst = max(c.max_rel_error for c in report.comparisons + report.closed_form_comparisons)
    out.append(f"largest relative difference between closed form, compiled and autograd: {worst:.1e}")
    print("\n".join(out))
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return args.handler(args)
    except (_UsageError, ChainruleError) as error:
        print(f"chainrule: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
