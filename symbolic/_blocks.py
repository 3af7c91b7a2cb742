"""The explanation as data: the blocks a page is made of, which every format prints (``_formats``, ``_html``).

A block says what is shown, never how: a heading, a paragraph of words and math, a displayed chain of equal
sides (each side a SymPy tree printed in LaTeX and text, with the value it stands for, which the tests check),
the notation table, the frame of the summary. ``_render`` writes a derivation's explanation in these blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

# --- blocks --------------------------------------------------------------------------------------------


class Deferred:
    """A value computed when asked for: the checks need it, the printed page does not (wide layers stay cheap)."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def compute(self) -> object:
        return self.function(*self.arguments)


@dataclass(frozen=True)
class Math:
    """One side of an equation, or math in prose: a SymPy tree printed both ways, and what it stands for.

    ``value`` is None for pure notation (∂L/∂W as a name); otherwise an expression in the derivation's
    symbols, or a Matrix of them. In a Chain every two consecutive values must be equal.
    """

    tree: sympy.Basic
    latex: str
    text: str
    stands_for: object = field(default=None, compare=False, repr=False)  # the value, or a Deferred one

    @property
    def value(self) -> object:
        value = self.stands_for.compute() if isinstance(self.stands_for, Deferred) else self.stands_for
        return value.as_matrix() if hasattr(value, "as_matrix") else value  # lazily built entries: a Matrix


@dataclass(frozen=True)
class Heading:
    """A section's title: level 2 for the page's parts (the forward pass, the backward pass, ...), level 3 for a
    section inside one (a layer of the backward pass)."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Prose:
    parts: tuple[str | Math, ...]


@dataclass(frozen=True)
class Shapes:
    """The shapes of a matrix equation's factors, in the order they are written: (2×2)(2×B) ⊙ (2×B) → 2×B."""

    latex: str
    text: str


@dataclass(frozen=True)
class Chain:
    """``terms[0] = terms[1] = ...``, one displayed equation; ``reason`` says why the sides are equal;
    ``shapes``, set beside it, the shapes of the last side's factors."""

    terms: tuple[Math, ...]
    reason: str = "chain rule"
    shapes: Shapes | None = None


@dataclass(frozen=True)
class Frame:
    """The start of a framed block (the summary): its title; the blocks up to ``FrameEnd`` are inside."""

    title: str


@dataclass(frozen=True)
class FrameEnd:
    pass


@dataclass(frozen=True)
class Notation:
    """The symbols the page uses: each with its shape (None where it has none: a function, an operation) and its
    meaning."""

    header: tuple[str, str, str]
    rows: tuple[tuple[Math, Shapes | None, str], ...]


@dataclass(frozen=True)
class Picture:
    """A drawing between the blocks (a layer's computational graph, ``_model_figure``): TikZ for LaTeX, SVG for
    the web page and Markdown, one line of text for the terminal, and its caption."""

    tikz: str
    svg: str
    text: str
    caption: str


Block = Heading | Prose | Chain | Notation | Frame | FrameEnd | Picture
