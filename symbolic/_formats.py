"""The explanation's blocks typeset: a LaTeX article (and its PDF), Markdown, display math, terminal text.

Each backend only lays out what ``_render.explain`` says; the mathematics in every format is printed
from the same trees. Consecutive equations form one aligned block (a forward pass, a list of numbers),
which keeps pages short and stops a page break from falling inside such a run.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._blocks import Block, Chain, Frame, FrameEnd, Heading, Math, Notation, Picture, Prose
from ._derivation import Derivation, page_writer
from ._figure import figure_svg, figure_tikz, network_figure
from ._pdf import build_pdf, check_output_type
from ._render import explain
from ._words import words

PAIRED = 36  # equations this short (text characters) are set two to a row
WIDE = 72  # characters of an equation's text form (a fair measure of its printed width) before it breaks


class MarkdownText(str):
    """Markdown that is still a ``str``, and that a notebook renders when it is a cell's last value."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _runs(blocks: Sequence[Block]) -> list[Block | list[Chain]]:
    """The blocks with each run of consecutive equations gathered into one list."""
    grouped: list[Block | list[Chain]] = []
    for block in blocks:
        if isinstance(block, Chain):
            if grouped and isinstance(grouped[-1], list):
                grouped[-1].append(block)
            else:
                grouped.append([block])
        else:
            grouped.append(block)
    return grouped


_SMALL = set("⁽⁾⁰¹²³⁴⁵⁶⁷⁸⁹⁻ᵀ[],")  # superscripts and indices: set small in LaTeX


def _width(chain: Chain) -> float:
    """The printed width of an equation, estimated from its text form (small characters count half)."""
    return sum(sum(0.5 if ch in _SMALL else 1 for ch in term.text) + 3 for term in chain.terms)


def _aligned_rows(chain: Chain) -> list[str]:
    """One row for a short equation, else one row per side, aligned at the equals signs; the shapes of the
    factors, when given, in a column of their own after the last side."""
    first, *rest = chain.terms
    if _width(chain) <= WIDE:
        rows = [f"{first.latex} &= " + " = ".join(t.latex for t in rest)]
    else:
        rows = [f"{first.latex} &= {rest[0].latex}"] + [f"&= {t.latex}" for t in rest[1:]]
    if chain.shapes is not None:
        rows[-1] += rf" && {chain.shapes.latex}"
    return rows


def _aligned(run: Sequence[Chain]) -> str:
    """The rows of a run of equations; two short one-row equations share a row, to keep pages short."""
    rows: list[str] = []
    waiting: str | None = None
    for chain in run:
        chain_rows = _aligned_rows(chain)
        if len(chain_rows) == 1 and _width(chain) <= PAIRED and chain.shapes is None:
            if waiting is None:
                waiting = chain_rows[0]
            else:
                rows.append(f"{waiting} & {chain_rows[0]}")
                waiting = None
            continue
        if waiting is not None:
            rows.append(waiting)
            waiting = None
        rows += chain_rows
    if waiting is not None:
        rows.append(waiting)
    return " \\\\\n".join(rows)


# --- LaTeX -------------------------------------------------------------------------------------------------

_PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[hmargin=1.5cm, vmargin=1.2cm]{geometry}% 1.2cm, not 1.5cm, above and below: room for the figure
\usepackage{amsmath,amssymb}
\usepackage[T1]{fontenc}
% T1 text in Latin Modern, vector (Type 1) fonts, so that the PDF's text can be searched and copied (T1 without
% them falls back to Type 3 bitmaps). Text only, not \usepackage{lmodern}: its math fonts set the same formulas
% taller (the tutorial grew by a page); the Computer Modern math fonts are Type 1 already.
\renewcommand{\rmdefault}{lmr}
\renewcommand{\sfdefault}{lmss}
\renewcommand{\ttdefault}{lmtt}
\usepackage{xcolor}
\definecolor{red}{HTML}{C62828}% the red box and the red δ: the figure's red (_figure.GRADIENT_COLOUR)
\usepackage{tikz}% the network's figure on page 1
@CJK_PACKAGE@\setlength{\parindent}{0pt}
\setlength{\parskip}{3pt}
\setlength{\abovedisplayskip}{4pt}
\setlength{\belowdisplayskip}{4pt}
\setlength{\jot}{2pt}
\makeatletter
\renewcommand\section{\@startsection{section}{1}{0pt}{0ex}{1ex}{\normalfont\Large\bfseries}}% the title, at the top
\renewcommand\subsection{\@startsection{subsection}{2}{0pt}{1.5ex plus .5ex}{0.7ex}{\normalfont\large\bfseries}}
\renewcommand\subsubsection{\@startsection{subsubsection}{3}{0pt}{1.2ex plus .4ex}{0.5ex}{\bfseries}}
\makeatother
\renewcommand{\mathbb}[1]{\mathrm{#1\mkern-4.5mu#1}}% only the indicator 1[.] is double-struck here
\begin{document}
\small
@CJK_BEGIN@\section*{@TITLE@}
"""

_TEXT_TO_LATEX = {
    "_": r"\_",
    "%": r"\%",
    "&": r"\&",
    "#": r"\#",
    "^": r"\^{}",
    "{": r"\{",
    "}": r"\}",
    "½": r"$\frac{1}{2}$",
    "Σ": r"$\Sigma$",
    "ŷ": r"$\hat{y}$",
    "−": r"$-$",
    "²": r"$^2$",
    "∂": r"$\partial$",
    "δ": r"$\delta$",
    "⊙": r"$\odot$",
    "𝟏": r"$\mathbf{1}$",
    "|": r"$|$",
    "…": r"\ldots{}",
    # a letter of mathematics in a sentence (the word tables write layer 𝑙 in Unicode's mathematical italic):
    # math italic, as the formulas set it, so that an upright l never reads as the digit 1
    **{
        ch: f"${unicodedata.normalize('NFKC', ch)}$"
        for ch in map(chr, range(0x1D434, 0x1D468))  # italic A-Z, a-z (the italic h is U+210E, not used)
        if unicodedata.name(ch, "").startswith("MATHEMATICAL ITALIC")
    },
    "≈": r"$\approx$",
    # the model pages' words (symbolic/_model_pages.py) name the normalisation's quantities in Greek
    "γ": r"$\gamma$",
    "β": r"$\beta$",
    "μ": r"$\mu$",
    "σ": r"$\sigma$",
    "ε": r"$\varepsilon$",
    "ĝ": r"$\hat{g}$",
    "→": r"$\to$",
    "ᵀ": r"$^{\top}$",
    "ᵢ": r"\textsubscript{\emph{i}}",  # γᵢ in a sentence: a subscript, not an escaped underscore
}
_ACCENTED = re.compile("(\\w)([\u0302\u0303])")  # x̂, x̃: a letter and a combining accent, set as \hat{x}, \tilde{x}
_ACCENTS = {"\x00": "hat", "\x01": "tilde"}  # the marks the accents become until the text is escaped


# a number in scientific notation in words (PyTorch's 1.1537e-04): one box, so that LaTeX never breaks the line
# at its hyphen and leaves "1.1537e-" on one line and "04" on the next
_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?e[-+]\d+")


def _escape(text: str) -> str:
    text = _ACCENTED.sub(lambda match: ("\x00" if match[2] == "\u0302" else "\x01") + match[1], text)
    pieces = _SCIENTIFIC.split(text)
    numbers = [rf"\mbox{{{number}}}" for number in _SCIENTIFIC.findall(text)]
    escaped = [
        re.sub(
            "([\x00\x01])(.)",
            lambda m: f"$\\{_ACCENTS[m[1]]}{{{m[2]}}}$",
            "".join(_TEXT_TO_LATEX.get(ch, ch) for ch in piece),
        )
        for piece in pieces
    ]
    return "".join(part for pair in zip(escaped, [*numbers, ""]) for part in pair)


def _latex_prose(block: Prose) -> str:
    return "".join(f"${p.latex}$" if isinstance(p, Math) else _escape(p) for p in block.parts)


def _latex_notation(block: Notation) -> str:
    header = " & ".join(rf"\textbf{{{_escape(h)}}}" for h in block.header)
    rows = " \\\\\n".join(
        f"${m.latex}$ & {f'${shape.latex}$' if shape else ''} & {_escape(meaning)}" for m, shape, meaning in block.rows
    )
    return (
        "\\begin{center}\n\\begin{tabular}{clp{0.6\\textwidth}}\n\\hline\n"
        + header
        + " \\\\\n\\hline\n"
        + rows
        + " \\\\\n\\hline\n\\end{tabular}\n\\end{center}"
    )


def _latex_figure(derivation: Derivation, values: Mapping[str, object] | None, lang: str) -> str:
    """The network's figure and its caption, for page 1 of the document (a fragment leaves it out, so that it
    compiles without TikZ)."""
    figure = network_figure(derivation, values, lang)
    caption = f"\\footnotesize {_escape(figure.caption)}"
    # TeX measures the picture (box 0): a narrow one gets its caption beside it (page 1 has little height to spare),
    # a wide one (the layer graph) its caption below and, when wider than the line, is scaled down to the line;
    # neither is a float, which could carry the figure off page 1.
    beside = (
        "\\parbox{\\wd0}{\\usebox0}\\hfill" + f"\\parbox{{\\dimexpr\\linewidth-\\wd0-1.5em}}{{\\raggedright{caption}}}"
    )
    below = (
        "{\\centering\\ifdim\\wd0>\\linewidth\\resizebox{\\linewidth}{!}{\\usebox0}\\else\\usebox0\\fi\\\\[2pt]"
        + f"\\parbox{{0.9\\linewidth}}{{\\centering{caption}}}\\par}}"
    )
    return (
        f"\\par\\noindent\\sbox0{{%\n{figure_tikz(figure)}}}%\n"
        + f"\\ifdim\\wd0<0.8\\linewidth\n{beside}\n\\else\n{below}\n\\fi\n\\par\\smallskip\n\n"
    )


@page_writer("latex")
def render_latex(
    derivation: Derivation, document: bool = False, values: Mapping[str, object] | None = None, lang: str = "en"
) -> str:
    body = latex_body(explain(derivation, values, lang))
    if not document:
        return body
    return latex_document(body, lang, words(lang)["title"], _latex_figure(derivation, values, lang))


def _latex_picture(block: Picture) -> str:
    """A layer's graph, centred, its caption under it; kept on one page with its caption (a minipage)."""
    return (
        "\\par\\smallskip\\noindent\\begin{minipage}{\\linewidth}\\centering\n"
        + block.tikz
        + f"\\\\[2pt]\\parbox{{0.9\\linewidth}}{{\\centering\\footnotesize {_escape(block.caption)}}}"
        + "\\end{minipage}\\par\\smallskip"
    )


def latex_body(blocks: Sequence[Block]) -> str:
    """The blocks as LaTeX, without the document around them (what ``render_latex`` returns as a fragment)."""
    parts = []
    for block in _runs(blocks):
        if isinstance(block, Picture):
            parts.append(_latex_picture(block))
        elif isinstance(block, Heading):
            parts.append(f"\\{'sub' * (block.level - 1)}section*{{{_escape(block.text)}}}")
        elif isinstance(block, Prose):
            parts.append(_latex_prose(block))
        elif isinstance(block, list):
            display = "\\begin{align*}\n" + _aligned(block) + "\n\\end{align*}"
            if parts and parts[-1].rstrip().endswith((":", "：")):
                # the sentence that introduces it and the display are one paragraph: TeX breaks no page just
                # before a display (\predisplaypenalty), so "…:" stays on the page of what it announces
                parts[-1] += "\n" + display
            else:
                parts.append(display)
        elif isinstance(block, Frame):  # a framed box a line wide, kept on one page (a minipage)
            parts.append(
                "\\par\\smallskip\\noindent\\fbox{\\begin{minipage}{\\dimexpr\\linewidth-2\\fboxsep-2\\fboxrule}"
                + f"\n\\textbf{{{_escape(block.title)}}}\\par"
            )
        elif isinstance(block, FrameEnd):
            parts.append("\\end{minipage}}\\par\\smallskip")
        else:
            parts.append(_latex_notation(block))
    return "\n\n".join(parts) + "\n"


def latex_document(body: str, lang: str, title: str, opening: str = "") -> str:
    """A whole LaTeX article: the preamble (CJK for Chinese), the title, ``opening`` (page 1's figure), ``body``."""
    chinese = lang == "zh"
    preamble = (
        _PREAMBLE.replace("@CJK_PACKAGE@", "\\usepackage{CJKutf8}\n" if chinese else "")
        .replace("@CJK_BEGIN@", "\\begin{CJK}{UTF8}{gbsn}\n" if chinese else "")
        .replace("@TITLE@", _escape(title))
    )
    return preamble + opening + body + ("\\end{CJK}\n" if chinese else "") + "\\end{document}\n"


@page_writer("pdf")
def render_pdf(
    derivation: Derivation, output: str | Path, values: Mapping[str, object] | None = None, lang: str = "en"
) -> str:
    """The derivation as a PDF file (pdflatex; CJKutf8 for Chinese); returns pdflatex's log."""
    check_output_type(output)  # before the LaTeX is rendered: None or a number is a mistake in the call
    return build_pdf(render_latex(derivation, document=True, values=values, lang=lang), output)


# --- Markdown and notebook math ---------------------------------------------------------------------------


def _display(run: Sequence[Chain]) -> str:
    return "\\begin{aligned}\n" + _aligned(run) + "\n\\end{aligned}"


@page_writer("markdown")
def render_markdown(
    derivation: Derivation, values: Mapping[str, object] | None = None, lang: str = "en"
) -> MarkdownText:
    figure = network_figure(derivation, values, lang)
    opening = figure_svg(figure) + f"\n\n*{figure.caption}*"  # inline SVG: notebooks and web pages draw it
    return markdown_page(explain(derivation, values, lang), words(lang)["title"], opening)


def markdown_page(blocks: Sequence[Block], title: str, opening: str = "") -> MarkdownText:
    """The blocks as one Markdown page under ``title``, ``opening`` (page 1's figure) first."""
    parts = [f"# {title}"] + ([opening] if opening else [])
    for block in _runs(blocks):
        if isinstance(block, Picture):  # inline SVG, as the network's figure
            parts.append(block.svg + f"\n\n*{block.caption}*")
        elif isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Prose):
            parts.append("".join(f"${p.latex}$" if isinstance(p, Math) else p for p in block.parts))
        elif isinstance(block, list):
            parts.append(f"$$\n{_display(block)}\n$$")
        elif isinstance(block, Frame):  # a quoted block: Markdown has no frame, a quote sets it apart
            framed, parts = parts, [f"**{block.title}**"]
        elif isinstance(block, FrameEnd):
            quoted = "\n>\n".join("\n".join(f"> {line}" if line else ">" for line in p.split("\n")) for p in parts)
            parts = [*framed, quoted]
        else:
            table = "\n".join(
                f"| ${m.latex}$ | {f'${shape.latex}$' if shape else ''} | {meaning} |"
                for m, shape, meaning in block.rows
            )
            parts.append("| " + " | ".join(block.header) + " |\n|:-:|---|---|\n" + table)
    return MarkdownText("\n\n".join(parts) + "\n")


@page_writer("math")
def render_math(derivation: Derivation, values: Mapping[str, object] | None = None) -> str:
    """Display math only (what a notebook's MathJax renders for ``_repr_latex_``): the equations in order."""
    runs = [block for block in _runs(explain(derivation, values)) if isinstance(block, list)]
    return "\n".join(f"$${_display(run)}$$" for run in runs) + "\n"


# --- text ----------------------------------------------------------------------------------------------------


def display_width(text: str) -> int:
    """Terminal columns: a wide (CJK) character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int, align: str = "<") -> str:
    """``text`` padded with spaces to ``width`` terminal columns (``"<"`` left, ``">"`` right): ``str.ljust``
    and format specs count characters, which misaligns a column of CJK words."""
    if align not in ("<", ">"):
        from ._errors import InputError

        raise InputError(f"align must be '<' (left) or '>' (right); got {align!r}")
    spaces = " " * max(0, width - display_width(text))
    return text + spaces if align == "<" else spaces + text


FRAMED_WIDTH = 96  # a sentence in a text box is wrapped to this many columns (an equation is kept whole)


def _framed(lines: list[str]) -> list[str]:
    """Lines in a box drawn with box-drawing characters (every terminal font has them); sentences wrapped."""
    wrapped: list[str] = []
    for line in lines:
        if line.startswith("  ") or display_width(line) <= FRAMED_WIDTH:
            wrapped.append(line)
            continue
        while display_width(line) > FRAMED_WIDTH:  # by columns, not characters: a CJK character takes two
            cut = max(k for k in range(1, len(line) + 1) if display_width(line[:k]) <= FRAMED_WIDTH)
            space = line.rfind(" ", 0, cut + 1)
            cut = space if space > FRAMED_WIDTH // 2 else cut
            wrapped.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        wrapped.append(line)
    lines = wrapped
    width = max(display_width(line) for line in lines)
    return (
        ["┌" + "─" * (width + 2) + "┐"]
        + [f"│ {pad(line, width)} │" for line in lines]
        + ["└" + "─" * (width + 2) + "┘"]
    )


@page_writer("text")
def render_text(derivation: Derivation, values: Mapping[str, object] | None = None, lang: str = "en") -> str:
    return text_page(explain(derivation, values, lang))


def text_page(blocks: Sequence[Block]) -> str:
    """The blocks as terminal text."""
    lines: list[str] = []
    framed = 0  # where the framed block starts
    for block in blocks:
        if isinstance(block, Picture):  # a drawing the terminal cannot show: its paths in words, its caption
            lines += [f"  [{block.text}]", f"  {block.caption}"]
            continue
        if isinstance(block, Frame):
            lines.append("")
            framed = len(lines)
            lines.append(block.title)
            continue
        if isinstance(block, FrameEnd):
            lines[framed:] = _framed(lines[framed:])
            continue
        if isinstance(block, Heading):  # a part underlined with =, a section inside it with -
            lines += ["", block.text, ("=" if block.level == 2 else "-") * display_width(block.text)]
        elif isinstance(block, Prose):
            lines.append("".join(p.text if isinstance(p, Math) else p for p in block.parts))
        elif isinstance(block, Chain):
            first, *rest = block.terms
            if _width(block) <= WIDE:
                lines.append(f"  {first.text} = " + " = ".join(t.text for t in rest))
            else:
                lines.append(f"  {first.text} = {rest[0].text}")
                lines += [f"  {' ' * len(first.text)} = {t.text}" for t in rest[1:]]
            if block.shapes is not None:
                lines[-1] += f"    {block.shapes.text}"
        else:
            width = max(len(m.text) for m, _, _ in block.rows)
            shapes = max(len(shape.text) if shape else 0 for _, shape, _ in block.rows)
            lines += [
                f"  {m.text.ljust(width)}  {(shape.text if shape else '').ljust(shapes)}  {meaning}"
                for m, shape, meaning in block.rows
            ]
    return "\n".join(lines).lstrip("\n") + "\n"
