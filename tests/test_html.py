"""The web page (``render_html``, ``Derivation.html``, ``_repr_html_``): well-formed, every block of the
explanation in order, nothing loaded from outside the file, user LaTeX kept out of the markup; then in a
real headless Chromium: every formula typeset by KaTeX without an error, no TeX left visible, no console
message (a blocked load or script would print one), and a screenshot with ink in the column only.

Under CI a missing Chromium fails these tests (``.ci/run`` installs it), as a missing pdflatex does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import select
import shutil
import struct
import subprocess
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import sympy

from symbolic import (
    TUTORIAL,
    TUTORIAL_VALUES,
    Activation,
    InputError,
    InputTypeError,
    Network,
    NetworkError,
    derive,
    render_html,
    sample_values,
)
from symbolic._blocks import Chain, Frame, FrameEnd, Heading, Math, Notation, Prose
from symbolic._render import explain

# --- a tree of the page, from the standard library's HTML tokenizer ---------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list = field(default_factory=list)

    def walk(self, skip=lambda node: False):
        """Every node below this one, in document order, leaving out the subtrees ``skip`` names."""
        for child in self.children:
            if isinstance(child, Node) and not skip(child):
                yield child
                yield from child.walk(skip)

    def text(self, skip=lambda node: False) -> str:
        return "".join(
            child if isinstance(child, str) else child.text(skip)
            for child in self.children
            if isinstance(child, str) or not skip(child)
        )

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


class Tree(HTMLParser):
    """The page as nested Nodes; ``problems`` lists every end tag that does not close the open element."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.root, self.problems, self.declarations = Node("#document", {}), [], []
        self.open = [self.root]
        self.feed(page)
        self.close()
        if len(self.open) > 1:
            self.problems.append(f"never closed: {[node.tag for node in self.open[1:]]}")

    def handle_decl(self, declaration):
        self.declarations.append(declaration)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag, attrs):  # <path/> in an SVG
        self.open[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.open[-1].tag != tag:
            self.problems.append(f"</{tag}> closes <{self.open[-1].tag}>")
            return
        self.open.pop()

    def handle_data(self, data):
        self.open[-1].children.append(data)


def elements(page: str, tag: str) -> list[Node]:
    return [node for node in Tree(page).root.walk() if node.tag == tag]


# --- the pages ------------------------------------------------------------------------------------------------

WIDE = Network([3, 4, 4, 2], ["tanh", "gelu", "sigmoid"], "half_sse", bias=True)
# Free LaTeX from a user: it ends a script, opens an element with a handler, a comment, quotes, an entity, and
# asks KaTeX for a link (which KaTeX makes only when trusted). It is valid LaTeX for KaTeX: it gets typeset.
EVIL_LATEX = (
    "\\operatorname{evil}\\href{https://example.invalid/}{h}</script><img src=x onerror=\"document.title='owned'\">"
    "<!-- ' \\&lt; -->"
)


# A notebook's page, as far as the rich display cares: require.js's AMD define (the classic notebook has one;
# a UMD script that sees it registers a module instead of setting a global), then the cell's output.
NOTEBOOK = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>notebook</title>
<script>window.define = function () { throw new Error("anonymous define()"); }; window.define.amd = {};</script>
</head><body><div class="output">@FRAGMENT@</div></body></html>
"""


@pytest.fixture(scope="module")
def tutorial():
    return derive(TUTORIAL)


@pytest.fixture(scope="module")
def evil():
    """Defence in depth: ``define`` refuses this LaTeX (symbolic/_definitions.py confines it to math), so the
    check is switched off here to see that the page still escapes whatever LaTeX reaches it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("symbolic._rules.check_latex", lambda latex, owner: latex)
        activation = Activation.define("evil", lambda z: z**3 + z, latex=EVIL_LATEX)
    return derive(Network([1, 1], [activation], "half_sse"))


@pytest.fixture(scope="module")
def pages(tutorial, evil):
    wide, wide_values = derive(WIDE), sample_values(WIDE, seed=0)
    return {
        "en": (tutorial.html(TUTORIAL_VALUES), explain(tutorial, TUTORIAL_VALUES)),
        "zh": (tutorial.html(TUTORIAL_VALUES, lang="zh"), explain(tutorial, TUTORIAL_VALUES, "zh")),
        "wide": (wide.html(wide_values), explain(wide, wide_values)),
        "evil": (evil.html(), explain(evil)),
        "notebook": (NOTEBOOK.replace("@FRAGMENT@", tutorial._repr_html_()), explain(tutorial)),
    }


# --- the page as text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["en", "zh", "wide", "evil"])
def test_the_page_is_well_formed_and_says_its_language(pages, name):
    page, _ = pages[name]
    tree = Tree(page)
    assert tree.problems == []
    assert [d.lower() for d in tree.declarations] == ["doctype html"]
    (root,) = [node for node in tree.root.children if isinstance(node, Node)]
    assert root.tag == "html" and root.attrs["lang"] == ("zh" if name == "zh" else "en")
    assert [node.tag for node in root.children if isinstance(node, Node)] == ["head", "body"]
    assert any(meta.attrs.get("charset", "").lower() == "utf-8" for meta in elements(page, "meta"))


def _joined(parts: list) -> list:
    """Adjacent pieces of text as one (a parser reads them as one), empty ones dropped."""
    joined: list = []
    for part in parts:
        if isinstance(part, str) and joined and isinstance(joined[-1], str):
            joined[-1] += part
        elif part != "":
            joined.append(part)
    return joined


def _items(page: str) -> list[tuple]:
    """The blocks of the page's column, read back: (kind, what the reader sees or the formula's TeX)."""
    (main,) = elements(page, "main")
    return _read_items(main.children)


def _read_items(children) -> list[tuple]:
    items = []
    for node in children:
        if not isinstance(node, Node) or node.tag in ("h1", "figure"):
            continue
        if node.tag == "section" and "cr-frame" in node.classes():  # the summary's box, and what it holds
            title, *inside = [child for child in node.children if isinstance(child, Node)]
            assert "cr-frame-title" in title.classes()
            items += [("frame", title.text()), *_read_items(inside), ("frame end",)]
        elif node.tag in ("h2", "h3"):
            items.append(("heading", node.text(), int(node.tag[1])))
        elif node.tag == "p":
            parts = [("math", c.attrs["data-tex"], c.text()) if isinstance(c, Node) else c for c in node.children]
            items.append(("prose", _joined(parts)))
        elif node.tag == "div" and "cr-display" in node.classes():
            items.append(("display", node.attrs["data-tex"], node.text()))
        elif node.tag == "table":
            cells = [
                [cell for cell in row.walk() if cell.tag in ("th", "td")] for row in node.walk() if row.tag == "tr"
            ]
            header, *rows = cells
            items.append(
                (
                    "notation",
                    tuple(c.text() for c in header),
                    [
                        (
                            s.children[0].attrs["data-tex"],
                            shape.children[0].attrs["data-tex"] if shape.children else None,
                            m.text(),
                        )
                        for s, shape, m in rows
                    ],
                )
            )
        else:
            items.append(("unexpected", node.tag))
    return items


@pytest.mark.parametrize("name", ["en", "zh", "wide", "evil"])
def test_the_page_holds_every_block_of_the_explanation_in_order(pages, name):
    page, blocks = pages[name]
    items = _items(page)
    expected = []  # from explain's blocks, consecutive equations gathered here, not by the page's code
    for block in blocks:
        if isinstance(block, Chain) and expected and isinstance(expected[-1], list):
            expected[-1].append(block)
        else:
            expected.append([block] if isinstance(block, Chain) else block)
    assert len(items) == len(expected)
    for item, block in zip(items, expected):
        if isinstance(block, Frame):
            assert item == ("frame", block.title)
        elif isinstance(block, FrameEnd):
            assert item == ("frame end",)
        elif isinstance(block, Heading):
            assert item == ("heading", block.text, block.level)
        elif isinstance(block, Prose):
            assert item == (
                "prose",
                _joined([("math", p.latex, p.text) if isinstance(p, Math) else p for p in block.parts]),
            )
        elif isinstance(block, Notation):
            rows = [(m.latex, shape.latex if shape else None, meaning) for m, shape, meaning in block.rows]
            assert item == ("notation", block.header, rows)
        else:  # a run of equations: every side's TeX, in order, in one display; its text until KaTeX sets it
            kind, tex, text = item
            assert kind == "display"
            position = 0
            for chain in block:
                for term in chain.terms:
                    position = tex.index(term.latex, position) + len(term.latex)
                assert " = ".join(term.text for term in chain.terms) in text
            assert tex.count("\\\\") >= len(block) - 1  # one row at least for each equation


def test_the_heading_and_the_title_are_the_language_s(pages):
    for name, title in (("en", "Backpropagation by the chain rule"), ("zh", "用链式法则推导反向传播")):
        page, _ = pages[name]
        assert [node.text() for node in elements(page, "title")] == [title]
        assert [node.text() for node in elements(page, "h1")] == [title]


# The only URLs in katex.min.js: XML namespaces for the nodes it creates (never fetched).
NAMESPACES = {"http://www.w3.org/1998/Math/MathML", "http://www.w3.org/2000/svg"}
URL_ATTRIBUTES = {"src", "href", "xlink:href", "srcset", "action", "formaction", "poster", "data", "background"}


@pytest.mark.parametrize("name", ["en", "zh"])
def test_the_page_loads_nothing(pages, name):
    page, _ = pages[name]
    tree = Tree(page)
    nodes = list(tree.root.walk())
    assert not {"link", "iframe", "object", "embed", "img", "base", "frame", "audio", "video"} & {n.tag for n in nodes}
    for node in nodes:
        for attribute, value in node.attrs.items():
            if attribute in URL_ATTRIBUTES:
                assert (value or "").startswith(("data:", "#")), (node.tag, attribute, value)
    assert not any(n.tag == "meta" and (n.attrs.get("http-equiv") or "").lower() == "refresh" for n in nodes)
    css = [n.text() for n in nodes if n.tag == "style"] + [n.attrs["style"] or "" for n in nodes if "style" in n.attrs]
    for sheet in css:
        assert "@import" not in sheet
        urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", sheet)
        assert all(url.startswith("data:") for url in urls), [u for u in urls if not u.startswith("data:")][:3]
    scripts = "".join(n.text() for n in nodes if n.tag == "script")
    assert set(re.findall(r"https?://[^\s\"'<>)]*", scripts)) <= NAMESPACES
    outside_scripts = tree.root.text(skip=lambda n: n.tag == "script") + " ".join(
        str(v) for n in nodes for a, v in n.attrs.items() if not (a.startswith("xmlns") and v in NAMESPACES)
    )
    assert "http://" not in outside_scripts and "https://" not in outside_scripts
    # the fonts travel inside the stylesheet: the 20 woff2 faces of KaTeX
    assert len(re.findall(r"url\(data:font/woff2;base64,", "".join(css))) == 20


def _policy(page: str) -> dict[str, list[str]]:
    (meta,) = [
        m for m in elements(page, "meta") if (m.attrs.get("http-equiv") or "").lower() == "content-security-policy"
    ]
    return {
        directive.split()[0]: directive.split()[1:]
        for directive in meta.attrs["content"].split(";")
        if directive.strip()
    }


def test_the_policy_allows_exactly_the_page_s_own_scripts(pages):
    page, _ = pages["en"]
    policy = _policy(page)
    assert policy["default-src"] == ["'none'"]
    scripts = [node.text() for node in elements(page, "script")]
    assert len(scripts) == 2
    hashes = ["'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in scripts]
    assert sorted(policy["script-src"]) == sorted(hashes)


def test_user_latex_reaches_the_page_only_as_an_attribute_value(pages):
    page, blocks = pages["evil"]
    tree = Tree(page)
    assert tree.problems == []
    nodes = list(tree.root.walk())
    assert not any(node.tag == "img" for node in nodes)
    assert not any(attribute.startswith("on") for node in nodes for attribute in node.attrs)
    assert len([node for node in nodes if node.tag == "script"]) == 2  # the page's own, whose hashes the CSP lists
    assert _policy(page)["script-src"] == _policy(pages["en"][0])["script-src"]
    # the LaTeX comes back whole from the attribute it was escaped into: nothing cut, nothing turned into markup
    shown = [node.attrs["data-tex"] for node in nodes if "data-tex" in node.attrs]
    assert any(EVIL_LATEX in tex for tex in shown)
    uses = [m.latex for b in blocks for m in _maths(b) if EVIL_LATEX in m.latex]
    assert uses and all(any(latex in tex for tex in shown) for latex in uses)


def _maths(block) -> list[Math]:
    if isinstance(block, Prose):
        return [p for p in block.parts if isinstance(p, Math)]
    if isinstance(block, Chain):
        return list(block.terms)
    if isinstance(block, Notation):
        return [m for m, _, _ in block.rows]
    return []


HOSTILE = "<b>bold</b> & <script>alert(1)</script> \"quoted\" 'single' &amp;"


def test_every_piece_of_text_is_escaped(tutorial, monkeypatch):
    """Text from anywhere (a heading, prose, the notation's header and meanings, a formula's plain-text form)
    comes back from the page as the same text, and as no element."""
    import symbolic._html

    formula = Math(sympy.Symbol("x"), "x", HOSTILE)
    blocks = [
        Heading(HOSTILE),
        Prose((HOSTILE, formula, HOSTILE)),
        Notation((HOSTILE, HOSTILE, HOSTILE), ((formula, None, HOSTILE),)),
        Chain((formula, formula)),
    ]
    monkeypatch.setattr(symbolic._html, "explain", lambda *arguments: blocks)
    page = tutorial.html(figure=None)
    tree = Tree(page)
    assert tree.problems == []
    (main,) = elements(page, "main")
    assert {node.tag for node in main.walk()} == set("h1 h2 p span table thead tbody tr th td div".split())
    assert _items(page) == [
        ("heading", HOSTILE, 2),
        ("prose", [HOSTILE, ("math", "x", HOSTILE), HOSTILE]),
        ("notation", (HOSTILE, HOSTILE, HOSTILE), [("x", None, HOSTILE)]),
        ("display", "\\begin{aligned}\nx &= x\n\\end{aligned}", f"{HOSTILE} = {HOSTILE}"),
    ]


def test_an_activation_name_cannot_carry_markup():
    with pytest.raises(NetworkError, match="identifier"):
        Activation.define("evil</script>", lambda z: z**3 + z)


SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><circle cx="10" cy="10" r="8"/></svg>'


def test_the_figure_goes_inline_under_the_title(tutorial):
    page = tutorial.html(figure='<?xml version="1.0"?>\n' + SVG)
    (main,) = elements(page, "main")
    tags = [node.tag for node in main.children if isinstance(node, Node)]
    assert tags[:2] == ["h1", "figure"]
    (svg,) = elements(page, "svg")
    assert svg.attrs["width"] == "40" and [n.tag for n in svg.walk()] == ["circle"]
    assert "<?xml" not in page
    assert elements(tutorial.html(figure=None), "figure") == []


def test_by_default_the_page_draws_the_network_as_the_pdf_does(tutorial, tmp_path):
    """The default figure is the network's own (one circle per unit, the input and L), with its caption; the
    CLI's --format html writes that page."""
    from numeric.cli import main
    from symbolic._figure import figure_svg, network_figure

    drawn = network_figure(tutorial, TUTORIAL_VALUES)
    page = tutorial.html(TUTORIAL_VALUES)
    (figure,) = elements(page, "figure")
    circles = [node for node in figure.walk() if node.tag == "circle"]
    assert len(circles) == sum(TUTORIAL.sizes) + 1  # x, every unit, L
    assert figure_svg(drawn).split("?>")[-1].strip()[:60] in page
    assert escape(drawn.caption) in page
    target = tmp_path / "page.html"
    assert main(["derive", "--format", "html", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == page


@pytest.mark.parametrize(
    "figure, error",
    [
        (b"<svg></svg>", InputTypeError),
        ("<div>not a figure</div>", InputError),
        ('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', InputError),
        ('<svg><SCRIPT href="x.js"/></svg>', InputError),
    ],
)
def test_a_figure_that_is_no_svg_is_refused(tutorial, figure, error):
    with pytest.raises(error):
        tutorial.html(figure=figure)


def test_an_unknown_language_is_an_input_error(tutorial):
    with pytest.raises(InputError, match="lang"):
        tutorial.html(lang="fr")


def test_derivation_html_is_render_html(tutorial):
    assert tutorial.html(TUTORIAL_VALUES, lang="zh") == render_html(tutorial, TUTORIAL_VALUES, "zh")


def test_the_notebook_display_is_a_fragment_with_its_own_styles_and_scripts(tutorial):
    fragment = tutorial._repr_html_()
    tree = Tree(fragment)
    assert tree.problems == [] and tree.declarations == []
    (root,) = [node for node in tree.root.children if isinstance(node, Node)]
    assert root.tag == "div" and root.attrs == {"class": "chainrule", "lang": "en"}
    assert {"html", "head", "body", "meta"}.isdisjoint(node.tag for node in root.walk())
    assert [node.tag for node in root.walk()].count("script") == 2
    page = tutorial.html()  # the same content as the page's column, formula for formula
    assert [n.attrs["data-tex"] for n in Tree(fragment).root.walk() if "data-tex" in n.attrs] == [
        n.attrs["data-tex"] for n in Tree(page).root.walk() if "data-tex" in n.attrs
    ]
    # the styles are scoped to the fragment: a notebook's own page keeps its look
    for style in (node for node in root.walk() if node.tag == "style"):
        selectors = re.findall(r"(?:^|})\s*([^{}@]+?)\s*{", re.sub(r"@font-face\s*{[^}]*}", "", style.text()))
        scoped = [
            s.startswith((".chainrule", ".katex")) or s == "body"
            for sel in selectors
            for s in map(str.strip, sel.split(","))
        ]
        assert all(scoped)  # "body": KaTeX resets its equation counters there, nothing visible


# --- in a real browser ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium; under CI its absence is a failure, elsewhere a skip."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "chromium is not installed (CI installs it: see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


SCREEN = (1000, 1300)


@dataclass(frozen=True)
class Browsed:
    dom: str
    console: list[str]  # console calls, uncaught exceptions and the browser's log (a CSP violation, a failed load)
    screenshot: bytes


class Browser:
    """One headless Chromium, driven over the DevTools protocol on a pipe (its file descriptors 3 and 4):
    one browser for every page, since starting Chromium is what costs (a second or more each time)."""

    PATIENCE = 60  # seconds without a message before the browser counts as stuck

    def __init__(self, path: str, profile: Path):
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        def pipes_as_3_and_4():
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
        arguments += ["--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}"]
        with warnings.catch_warnings():  # Python ≥ 3.12 warns of fork() in a threaded process (torch's threads);
            warnings.simplefilter("ignore", DeprecationWarning)  # the child only moves two descriptors, then execs
            self.process = subprocess.Popen(
                [path, *arguments, "--remote-debugging-pipe", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=pipes_as_3_and_4,
                pass_fds=(3, 4),
            )
        os.close(commands_read)
        os.close(replies_write)
        self._buffer, self._last, self.events = b"", 0, []

    def _message(self) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self._replies], [], [], self.PATIENCE)[0]:  # never hang the test run
                raise RuntimeError(f"chromium said nothing for {self.PATIENCE} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its end of the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._last += 1
        message = {"id": self._last, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._message()
            if reply.get("id") == self._last:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def _wait(self, method: str, session: str) -> None:
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._message())

    def open(self, url: str, width: int, height: int) -> Browsed:
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for enable in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.call(enable, session)
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", session, **metrics)
        self.call("Page.navigate", session, url=url)
        self._wait("Page.loadEventFired", session)
        dom = self.call(  # once the fonts are in: KaTeX's are data: URIs, decoded after the load event
            "Runtime.evaluate",
            session,
            expression="document.fonts.ready.then(() => document.documentElement.outerHTML)",
            awaitPromise=True,
        )["result"]["value"]
        png = base64.b64decode(self.call("Page.captureScreenshot", session, format="png")["data"])
        kinds = ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded")
        console = [
            json.dumps(e["params"])[:500] for e in self.events if e.get("sessionId") == session and e["method"] in kinds
        ]
        self.call("Target.closeTarget", targetId=target)
        return Browsed(dom, console, png)

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self._commands)
            os.close(self._replies)


@pytest.fixture(scope="module")
def browsed(chromium, pages) -> dict[str, Browsed]:
    """Each page opened in headless Chromium: the DOM once its scripts ran, what the console and the browser's
    log said, and a screenshot of the first screen."""
    folder = Path(tempfile.mkdtemp(prefix="chainrule-html-"))
    browser = Browser(chromium, folder / "profile")
    try:
        results = {}
        for name, (page, _) in pages.items():
            (folder / f"{name}.html").write_text(page, encoding="utf-8")
            results[name] = browser.open((folder / f"{name}.html").as_uri(), *SCREEN)
        return results
    finally:
        browser.close()
        shutil.rmtree(folder, ignore_errors=True)


def _hidden(node: Node) -> bool:
    """What a reader does not see: scripts, styles, the head, and KaTeX's MathML copy (for screen readers)."""
    return node.tag in ("script", "style", "head", "title") or "katex-mathml" in node.classes()


@pytest.mark.parametrize("name", ["en", "zh", "wide", "notebook"])
def test_chromium_typesets_every_formula(browsed, pages, name):
    result = browsed[name]
    assert result.console == []  # a blocked load, a blocked script or a KaTeX warning would be here
    nodes = list(Tree(result.dom).root.walk())
    formulas = [node for node in nodes if "data-tex" in node.attrs]
    assert len(formulas) == len([n for n in Tree(pages[name][0]).root.walk() if "data-tex" in n.attrs]) > 10
    for formula in formulas:  # KaTeX's output in place of the plain text, and nothing else
        typeset = [node for node in formula.walk() if "katex" in node.classes()]
        assert len(typeset) == 1, formula.attrs["data-tex"]
        (child,) = formula.children  # an equation run in display mode, math in a sentence or a table inline
        if "cr-display" in formula.classes():
            assert "katex-display" in child.classes() and typeset[0] in child.children
        else:
            assert child is typeset[0]
    assert not any("katex-error" in node.classes() for node in nodes)
    visible = Tree(result.dom).root.text(skip=_hidden)
    assert "\\" not in visible and "$" not in visible


def test_user_latex_does_not_become_markup_in_chromium(browsed):
    result = browsed["evil"]
    nodes = list(Tree(result.dom).root.walk())
    assert not any(node.tag in ("img", "a") for node in nodes)  # no element from the text, no link from KaTeX
    assert [node.text() for node in nodes if node.tag == "title"] == ["Backpropagation by the chain rule"]
    assert len([node for node in nodes if node.tag == "script"]) == 2
    assert not [line for line in result.console if "Content Security Policy" in line]
    assert any("katex" in node.classes() for node in nodes)  # the scripts ran: KaTeX set the formulas it could


def png_pixels(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit RGB(A), non-interlaced PNG as [rows, columns, channels]: zlib, and PNG's five
    row filters undone (rows filtered None, Sub or Up at once with NumPy; Average and Paeth byte by byte)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, compressed = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
        elif kind == b"IDAT":
            compressed.append(body)
    channels = 3 if colour == 2 else 4
    stride = width * channels
    raw = zlib.decompress(b"".join(compressed))
    rows = np.zeros((height, stride), dtype=np.int64)
    previous = np.zeros(stride, dtype=np.int64)
    for r in range(height):
        kind = raw[r * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=r * (stride + 1) + 1).astype(np.int64)
        if kind == 0:
            current = line
        elif kind == 1:
            current = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) % 256
        elif kind == 2:
            current = (line + previous) % 256
        else:
            out, up, x = [0] * stride, previous.tolist(), line.tolist()
            for i in range(stride):
                a = out[i - channels] if i >= channels else 0
                b = up[i]
                if kind == 3:
                    out[i] = (x[i] + (a + b) // 2) & 255
                else:
                    c = up[i - channels] if i >= channels else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    out[i] = (x[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            current = np.array(out, dtype=np.int64)
        rows[r] = current
        previous = current
    return rows.reshape(height, width, channels)


def test_png_pixels_reads_every_row_filter():
    """The decoder against pixels it did not write: a random image, each row stored under each filter."""
    generator = np.random.default_rng(7)
    width, height, channels = 16, 40, 3  # few distinct values, as on a page: the predictors often tie
    image = generator.choice(np.array([0, 1, 2, 3, 4, 5, 255]), (height, width, channels))
    flat = image.reshape(height, -1)
    raw = b""
    for r in range(height):
        kind, x = r % 5, flat[r]
        up = flat[r - 1] if r else np.zeros_like(x)
        left = np.concatenate([np.zeros(channels, dtype=x.dtype), x[:-channels]])
        up_left = np.concatenate([np.zeros(channels, dtype=x.dtype), up[:-channels]])
        if kind == 4:
            p = left + up - up_left
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        else:
            predictor = [np.zeros_like(x), left, up, (left + up) // 2][kind]
        raw += bytes([kind]) + ((x - predictor) % 256).astype(np.uint8).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    assert np.array_equal(png_pixels(png), image)


@pytest.mark.parametrize("name", ["en", "zh"])
def test_the_screenshot_has_ink_in_the_column_and_white_margins(browsed, name):
    pixels = png_pixels(browsed[name].screenshot)[..., :3]
    assert pixels.shape[:2] == (SCREEN[1], SCREEN[0])
    ink = (pixels < 200).any(axis=2)  # dark enough to be text or a rule, not anti-aliasing haze
    assert ink.mean() > 0.01  # not blank: a page of text inks a few percent of the screen
    columns = np.flatnonzero(ink.any(axis=0))
    # a centred column of at most 50rem (800 px) plus padding: the margins either side stay white
    assert columns.min() > 50 and columns.max() < SCREEN[0] - 50
    assert abs((columns.min() + columns.max()) / 2 - SCREEN[0] / 2) < 60
