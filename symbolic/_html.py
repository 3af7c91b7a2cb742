"""The explanation as one self-contained web page: KaTeX, shipped inside the package, inlined into the page.

Why KaTeX and not MathML: every formula already exists as LaTeX (``Math.latex``, the strings the PDF and
Markdown print), so the page typesets exactly what the PDF typesets, with the same aligned runs; a MathML
printer would be a second printer of every custom tree (∂, δ, ⊙, 𝟙[·], Σ over indices) to keep in step
with ``_printers``, and browsers render MathML less evenly than KaTeX's own fonts. The price is size: the
page carries katex.min.js and KaTeX's fonts (woff2 only, as data: URIs), about 0.7 MB before the content.

Nothing is loaded when the page is opened: the script, the styles and the fonts are inline, and the page's
Content-Security-Policy says so to the browser (``default-src 'none'``; the two scripts are allowed by their
SHA-256, so no other script can run, whatever text reached the page). Each formula sits in an element
holding its LaTeX in ``data-tex`` and its plain-text form (``Math.text``) as content: without JavaScript
(an untrusted notebook) the page still reads, in the terminal's notation. Every piece of text, and every
LaTeX string, goes through ``html.escape``; KaTeX then typesets the LaTeX into DOM nodes (``trust: false``:
no \\href, \\url, \\includegraphics or \\html... commands), so a user's LaTeX can't become markup.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from importlib import resources

from ._blocks import Chain, Frame, FrameEnd, Heading, Math, Notation, Picture, Prose
from ._derivation import Derivation, page_writer
from ._errors import InputError, InputTypeError
from ._figure import figure_svg, network_figure

# The runs of equations and each equation's rows (one row, or one per side when long) are the PDF's.
from ._formats import _aligned_rows, _runs
from ._render import explain
from ._words import words

KATEX_VERSION = "0.19.1"  # symbolic/assets/katex: `npm pack katex@0.19.1`, dist/ files and the LICENSE

_ASSETS = resources.files(__package__) / "assets" / "katex"

# KaTeX's stylesheet names each font three ways (woff2, woff, ttf); the page keeps woff2 only, inlined.
_FONT_SOURCE = re.compile(r'src:url\(fonts/(?P<name>[\w-]+)\.woff2\) format\("woff2"\)[^;}]*')


@functools.cache
def katex_css() -> str:
    """KaTeX's stylesheet with every font as a woff2 data: URI (so the page loads no font file)."""
    css = (_ASSETS / "katex.min.css").read_text(encoding="utf-8")

    def inline(match: re.Match) -> str:
        font = (_ASSETS / "fonts" / f"{match['name']}.woff2").read_bytes()
        return f'src:url(data:font/woff2;base64,{base64.b64encode(font).decode("ascii")}) format("woff2")'

    css = _FONT_SOURCE.sub(inline, css)
    left = [url for url in re.findall(r"url\(([^)]*)\)", css) if not url.startswith("data:")]
    if left or "</style" in css.lower():  # a KaTeX update that changed the stylesheet's form: fail loudly
        raise RuntimeError(f"the vendored KaTeX stylesheet would load files or end the style early: {left[:3]}")
    return css


@functools.cache
def katex_script() -> str:
    """katex.min.js, made to define ``window.katex`` wherever it runs.

    Its UMD header registers with AMD's ``define`` when a page has one (the classic notebook's require.js),
    which would leave no ``katex`` global; shadowing ``define``, ``module`` and ``exports`` with undefined
    parameters sends it to its last branch, ``self.katex = ...``.
    """
    source = (_ASSETS / "katex.min.js").read_text(encoding="utf-8")
    lowered = source.lower()
    if "</script" in lowered or "<!--" in lowered:  # either would end or confuse the inline script
        raise RuntimeError("the vendored katex.min.js cannot be inlined in a <script> element")
    return f"(function(define,module,exports){{{source}\n}}).call(self);"


# One render per formula: display runs in display mode; the \mathbb macro is the PDF's (only the indicator
# 𝟙[·] is double-struck, and KaTeX's AMS font has no double-struck 1). A formula KaTeX cannot set keeps its
# plain-text form and is marked katex-error, as KaTeX marks a parse error with throwOnError false.
RENDER_SCRIPT = """(function () {
  document.querySelectorAll(".chainrule [data-tex]:not(.cr-rendered)").forEach(function (element) {
    var options = {
      displayMode: element.classList.contains("cr-display"),
      throwOnError: false,
      trust: false,
      strict: "ignore",
      macros: {"\\\\mathbb": "\\\\mathrm{#1\\\\mkern-4.5mu#1}"}
    };
    try {
      katex.render(element.getAttribute("data-tex"), element, options);
    } catch (error) {
      element.classList.add("katex-error");
      element.title = String(error);
    }
    element.classList.add("cr-rendered");
  });
})();"""

STYLE = """
.chainrule { max-width: 50rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; color: #1d1d1f; background: #fff;
  font: 17px/1.6 "Charter", "Georgia", "Noto Serif", "DejaVu Serif", serif; }
.chainrule:lang(zh) { font-family: "Noto Serif CJK SC", "Source Han Serif SC", "Songti SC", "SimSun",
  "Noto Sans CJK SC", "WenQuanYi Micro Hei", "Microsoft YaHei", serif; }
.chainrule h1 { font-size: 1.75rem; line-height: 1.25; margin: 0 0 1rem; }
.chainrule h3 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
.chainrule h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; padding-bottom: .2rem; border-bottom: 1px solid #d8d8d8; }
.chainrule p { margin: .6rem 0; }
.chainrule .cr-display { margin: .7rem 0; padding: .15rem 0; overflow-x: auto; overflow-y: hidden; }
.chainrule .cr-display .katex-display { margin: 0; }
.chainrule table.cr-notation { border-collapse: collapse; margin: .8rem auto; }
.chainrule table.cr-notation th, .chainrule table.cr-notation td { padding: .3rem .8rem; vertical-align: top;
  text-align: left; border-bottom: 1px solid #e3e3e3; }
.chainrule table.cr-notation thead th { border-bottom: 2px solid #999; }
.chainrule table.cr-notation td:first-child, .chainrule table.cr-notation th:first-child { text-align: center;
  white-space: nowrap; }
.chainrule figure.cr-figure { margin: 1rem 0 1.5rem; text-align: center; }
.chainrule figure.cr-figure svg { max-width: 100%; height: auto; }
.chainrule section.cr-frame { border: 2px solid #444; border-radius: 4px; padding: .2rem 1rem; margin: 1.2rem 0; }
.chainrule .cr-frame-title { font-weight: bold; }
.chainrule .katex-error { color: #b00020; white-space: normal; overflow-wrap: anywhere; }
"""


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy() -> str:
    """The page's policy: nothing from anywhere, except its own two scripts, inline styles and data: fonts."""
    scripts = " ".join(_sha256(script) for script in (katex_script(), RENDER_SCRIPT))
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; font-src data:; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


# --- the blocks --------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _math(tex: str, lines: Sequence[str], display: bool = False) -> str:
    """A formula: its LaTeX for KaTeX in ``data-tex``, its plain-text lines as the content until then."""
    tag, kind = ("div", "cr-display") if display else ("span", "cr-math")
    fallback = "<br>".join(_escape(line) for line in lines)
    return f'<{tag} class="{kind}" data-tex="{_escape(tex)}">{fallback}</{tag}>'


def _chain_text(chain: Chain) -> str:
    return " = ".join(term.text for term in chain.terms)


def _aligned(run: Sequence[Chain]) -> str:
    """A run of equations aligned at their equals signs, one equation (or one side) a row.

    The PDF sets two short equations to a row to keep its pages short; a web page scrolls down for free
    but not sideways, and a second column starts after the widest first one (a matrix of numbers), past
    the right edge of the column.
    """
    rows = [row for chain in run for row in _aligned_rows(chain)]
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _block(block: Heading | Prose | Notation | Frame | FrameEnd | Picture | list[Chain]) -> str:
    if isinstance(block, Picture):  # a layer's graph (the model pages): inline SVG, as the network's figure
        return _figure(block.svg, block.caption)
    if isinstance(block, Frame):  # the summary's box: a framed <section> holding the blocks up to FrameEnd
        return f'<section class="cr-frame">\n<p class="cr-frame-title">{_escape(block.title)}</p>'
    if isinstance(block, FrameEnd):
        return "</section>"
    if isinstance(block, Heading):
        return f"<h{block.level}>{_escape(block.text)}</h{block.level}>"
    if isinstance(block, Prose):
        parts = (_math(p.latex, [p.text]) if isinstance(p, Math) else _escape(p) for p in block.parts)
        return f"<p>{''.join(parts)}</p>"
    if isinstance(block, list):  # a run of equations: one aligned display, as in the PDF
        return _math(_aligned(block), [_chain_text(chain) for chain in block], display=True)
    rows = "\n".join(
        f"<tr><td>{_math(symbol.latex, [symbol.text])}</td><td>{_math(shape.latex, [shape.text]) if shape else ''}</td>"
        f"<td>{_escape(meaning)}</td></tr>"
        for symbol, shape, meaning in block.rows
    )
    header = "".join(f"<th>{_escape(text)}</th>" for text in block.header)
    return f'<table class="cr-notation">\n<thead><tr>{header}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>'


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


NETWORK_FIGURE = "network"  # render_html's default: the network's own figure, as the PDF and Markdown draw it


def _figure(svg: str | None, caption: str = "") -> str:
    """The network's figure (``_figure.figure_svg``'s SVG text), inline; nothing without one."""
    if svg is None:
        return ""
    if not isinstance(svg, str):
        raise InputTypeError(f"figure must be SVG text (a str) or None; got {type(svg).__name__}")
    svg = _XML_DECLARATION.sub("", svg).strip()
    if not (svg.startswith("<svg") and svg.endswith("</svg>")):
        raise InputError(f"figure must be one <svg>...</svg> element; got {svg[:40]!r}...")
    if "<script" in svg.lower():  # the page's policy would block it anyway: say so rather than fail silently
        raise InputError("figure must not contain a <script>: the page runs only its own scripts")
    shown = f"<figcaption>{_escape(caption)}</figcaption>" if caption else ""
    return f'<figure class="cr-figure">{svg}{shown}</figure>'


def _content(blocks: Sequence, lang: str, figure: str | None, caption: str = "", title: str | None = None) -> str:
    parts = [f"<h1>{_escape(title or words(lang)['title'])}</h1>", _figure(figure, caption)]
    parts += [_block(block) for block in _runs(blocks)]
    return "\n".join(part for part in parts if part)


@page_writer("html")
def render_html(
    derivation: Derivation,
    values: Mapping[str, object] | None = None,
    lang: str = "en",
    *,
    figure: str | None = NETWORK_FIGURE,
    document: bool = True,
) -> str:
    """The derivation as one self-contained HTML page (``document=True``), or as a fragment for a notebook.

    ``figure``: by default the network's figure (``symbolic._figure``, the PDF's and Markdown's), with its
    caption; or SVG text of your own, set inline under the title; ``None``: no figure. The
    page loads nothing from the network or the disk when opened: KaTeX, its fonts and the styles are
    inside it. The fragment (``_repr_html_``) carries the same styles and scripts, scoped to its own
    ``<div class="chainrule">``.
    """
    w = words(lang)  # checks lang before any work
    caption = ""
    if isinstance(figure, str) and figure == NETWORK_FIGURE:
        drawn = network_figure(derivation, values, lang)
        figure, caption = figure_svg(drawn), drawn.caption
    content = _content(explain(derivation, values, lang), lang, figure, caption)
    return html_document(content, lang, w["title"], document)


def html_document(content: str, lang: str, title: str, document: bool = True) -> str:
    """``content`` (``_content``'s) with KaTeX and the styles: a whole page, or a notebook's fragment."""
    styles = f"<style>{katex_css()}</style>\n<style>{STYLE}</style>"
    scripts = f"<script>{katex_script()}</script>\n<script>{RENDER_SCRIPT}</script>"
    if not document:
        return f'<div class="chainrule" lang="{lang}">\n{styles}\n{content}\n{scripts}\n</div>\n'
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_escape(content_security_policy())}">\n'
        f"<title>{_escape(title)}</title>\n{styles}\n</head>\n<body>\n"
        f'<main class="chainrule">\n{content}\n</main>\n{scripts}\n</body>\n</html>\n'
    )
