"""derive and Derivation: the pipeline's central object.

``derive`` does the matrix-level derivation (what ``compile_gradients`` prints) at once; the element-wise
derivation (one symbol per unit: ``symbols``, ``layers``, ``program``) is built on first use, and the
closed form (everything substituted back into x, y and the parameters) on demand, refused above a size
budget rather than left to hang.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mpmath
import sympy
from sympy import Matrix, Symbol

from ._elementwise import ElementwiseDerivation, Entries, LayerDerivation, derive_elementwise, tree_size
from ._errors import (
    ExpressionTooLarge,
    InputError,
    InputTypeError,
    NetworkError,
    NetworkTypeError,
    require_exactly,
)
from ._exact import exact_function, run_exact
from ._matrix import MatrixProgram, derive_matrix_program
from ._network import Network
from ._words import Note

_EXACT_UP_TO = 64  # a softmax layer up to this width is sized from its simplified δ, a wider one estimated

DEFAULT_CLOSED_FORM_BUDGET = 200_000
"""Largest closed form (in expression-tree nodes, summed over a parameter's entries) built by default."""


# The page writers, one per format, registered by the modules that write them (_formats, _html) when the package
# is imported. They read the derivation (through _render), so the derivation cannot import them without an
# import circle; it asks this table instead, which ``symbolic/__init__`` fills before anything can be derived.
_WRITERS: dict[str, Callable[..., str]] = {}


def page_writer(format_name: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register the decorated function as the writer of ``Derivation``'s ``format_name`` page."""

    def register(function: Callable[..., str]) -> Callable[..., str]:
        _WRITERS[format_name] = function
        return function

    return register


@dataclass(frozen=True, eq=False)
class Derivation:
    """The result of :func:`derive`: the structured program, and the closed form on demand.

    ``symbols`` maps "x", "y", "W1", "b1", ... to matrices of SymPy symbols; ``layers`` holds the named
    intermediates and their definitions; ``program`` is the straight-line element-wise program;
    ``matrix_program`` the same at matrix level; ``loss`` and ``gradients`` are the closed forms.
    """

    network: Network
    matrix_program: MatrixProgram
    closed_form_budget: int = DEFAULT_CLOSED_FORM_BUDGET
    wrt: tuple[str, ...] = ()  # gradients besides the parameters': ("x",) adds ∂L/∂x

    # -- the element-wise derivation, built on first use ---------------------------------------------

    @functools.cached_property
    def _elementwise(self) -> ElementwiseDerivation:
        return derive_elementwise(self.network)

    @property
    def symbols(self) -> Mapping[str, Matrix]:
        """``"x"``, ``"y"``, ``"W1"``, ``"b1"``, ... -> matrices of the symbols that stand for them."""
        return self._elementwise.symbols

    @property
    def layers(self) -> tuple[LayerDerivation, ...]:
        """Per layer: the named z, a, δ and their definitions."""
        return self._elementwise.layers

    @property
    def loss_definition(self) -> sympy.Expr:
        """The per-sample loss ℓ in the outputs a_L and the target y."""
        return self._elementwise.loss_definition

    @property
    def gradient_definitions(self) -> Mapping[str, Matrix]:
        """∂L/∂θ in the named δ and a (δ_l a_{l-1}ᵀ and δ_l)."""
        return self._elementwise.gradient_definitions

    @property
    def latex_names(self) -> Mapping[Symbol, str]:
        return self._elementwise.latex_names

    # -- the program ---------------------------------------------------------------------------------

    @functools.cached_property
    def program(self) -> tuple[tuple[Symbol, sympy.Expr], ...]:
        """``(symbol, definition)`` in evaluation order: z1, a1, ..., z_L, a_L, δ_L, ..., δ_1."""
        lines: list[tuple[Symbol, sympy.Expr]] = []
        for layer in self.layers:
            lines += zip(layer.z, layer.z_definition)
            lines += zip(layer.a, layer.a_definition)
        for layer in reversed(self.layers):
            lines += zip(layer.delta, layer.delta_definition)
        return tuple(lines)

    def operation_counts(self) -> dict[str, int]:
        """Arithmetic operations (``sympy.count_ops``) of the forward pass and of the gradient program.

        ``forward``: every z, a and the loss; ``gradient``: every δ and every gradient entry, given the
        forward values. The chain rule over named intermediates keeps their ratio small at any size.
        """
        forward = sum(sympy.count_ops(d) for layer in self.layers for d in (*layer.z_definition, *layer.a_definition))
        forward += sympy.count_ops(self.loss_definition)
        gradient = sum(sympy.count_ops(d) for layer in self.layers for d in layer.delta_definition)
        gradient += sum(sympy.count_ops(entry) for matrix in self.gradient_definitions.values() for entry in matrix)
        return {"forward": forward, "gradient": gradient}

    @property
    def parameters(self) -> tuple[str, ...]:
        return tuple(self.network.parameter_shapes)

    # -- closed forms --------------------------------------------------------------------------------

    @functools.cached_property
    def _closed_sizes(self) -> dict[str, int]:
        """Tree size any entry of each intermediate ("z1", "a1", "delta1", ...) would have once substituted back.

        Every unit of a dense layer has the same shape of definition, so one unit per layer answers for all
        of them; a sum over a layer wider than ``_EXACT_UP_TO`` is counted from its shape (n terms of one
        size) rather than built. The estimate costs the depth, not the widths, and substitutes nothing.
        """
        sizes: dict[str, int] = {}
        lookup = _kind_lookup(sizes)

        def kind_size(symbol: Symbol) -> int:
            return lookup(symbol) or 1

        for layer in self.layers:
            n_in, n = len(layer.inputs), len(layer.z)
            if n_in <= _EXACT_UP_TO:
                sizes[f"z{layer.index}"] = tree_size(layer.z_definition[0], lookup)
            else:  # Σ_j W_ij a_j (+ b_i): n_in products of a weight and an input
                bias = 1 if layer.bias is not None else 0
                sizes[f"z{layer.index}"] = 1 + n_in * (2 + kind_size(layer.inputs[0])) + bias
            if layer.activation.elementwise or n <= _EXACT_UP_TO:
                sizes[f"a{layer.index}"] = tree_size(layer.a_definition[0], lookup)
            else:  # e^{z_i} · (Σ_k e^{z_k})^{-1}
                exp_size = 1 + sizes[f"z{layer.index}"]
                sizes[f"a{layer.index}"] = 1 + exp_size + 2 + (1 + n * exp_size)
        above = None
        for layer in reversed(self.layers):
            n = len(layer.z)
            if above is not None and len(above.z) > _EXACT_UP_TO:  # (Σ_i W_ij δ_i) · f'(z_j)
                upstream = 1 + len(above.z) * (2 + sizes[f"delta{above.index}"])
                size = 1 + upstream + tree_size(layer.local_jacobian[0, 0], lookup)
            elif layer.activation.elementwise or n <= _EXACT_UP_TO:
                size = tree_size(layer.delta_definition[0], lookup)
            else:  # softmax: Σ_k over n symmetric terms; two of them (k = i, k ≠ i) stand for all, unsimplified
                terms = [layer.upstream[k] * layer.local_jacobian[k, 0] for k in (0, 1)]
                size = 1 + tree_size(terms[0], lookup) + (n - 1) * tree_size(terms[1], lookup)
            sizes[f"delta{layer.index}"] = size
            above = layer
        return sizes

    @functools.cached_property
    def _closed_values(self) -> dict[Symbol, sympy.Expr]:
        values: dict[Symbol, sympy.Expr] = {}
        for symbol, definition in self.program:
            values[symbol] = definition.xreplace(values)
        return values

    def closed_form_size(self, name: str) -> int:
        """Estimated tree size of the closed form of ∂L/∂``name`` (or of the loss, for ``"loss"``)."""
        lookup = _kind_lookup(self._closed_sizes)
        if name == "loss":
            terms = self._elementwise.loss_terms
            if terms is None or self.network.reduction == "mean":  # coupled, or scaled by 1/B: count it built
                return tree_size(self.loss_definition, lookup)
            return 1 + len(terms) * tree_size(terms[0], lookup)  # every unit's term has the same shape
        self._check_parameter(name)
        entries = self.gradient_definitions[name]
        return len(entries) * tree_size(entries[0], lookup)  # every entry has the same shape

    def substitute(self, expression: sympy.Expr) -> sympy.Expr:
        """Replace every named intermediate in ``expression`` by its closed form."""
        return expression.xreplace(self._closed_values)

    def closed_form(self, name: str, budget: int | None = None) -> Matrix | sympy.Expr:
        """The closed form of ∂L/∂``name`` (a Matrix shaped like the parameter) or of ``"loss"``.

        Raises ExpressionTooLarge when its estimated size exceeds ``budget`` (default: the derivation's
        ``closed_form_budget``) instead of building an expression too large to use.
        """
        budget = self.closed_form_budget if budget is None else budget
        size = self.closed_form_size(name)
        if size > budget:
            sentence = Note(
                "expression_too_large",
                {
                    "what": Note("the_loss") if name == "loss" else f"dL/d{name}",
                    "size": f"{size:,}",
                    "budget": f"{budget:,}",
                    "raised": str(size),
                    "name": repr(name),
                },
            )
            raise ExpressionTooLarge(sentence.text(), sentence)
        if name == "loss":
            return self.substitute(self.loss_definition)
        return self.gradient_definitions[name].xreplace(self._closed_values)

    @functools.cached_property
    def loss(self) -> sympy.Expr:
        """The per-sample loss in x, y and the parameters (the batch loss sums it over samples)."""
        return self.closed_form("loss")

    @functools.cached_property
    def gradients(self) -> dict[str, Matrix]:
        """Closed-form ∂L/∂θ for every parameter θ, each a Matrix shaped like θ."""
        return {name: self.closed_form(name) for name in self.parameters}

    # -- numbers ---------------------------------------------------------------------------------------

    def evaluate(self, values: Mapping[str, object], closed_form: bool = False, digits: int = 20) -> dict[str, object]:
        """Evaluate the loss and every gradient at ``values``, right to ``digits`` significant digits.

        ``values`` maps "x", "y" and each parameter to nested lists (x and y may hold a batch, one sample
        per column; the loss and gradients are summed over it, or averaged with ``reduction="mean"``).
        Returns ``{"loss": float, name: rows}``. By default it runs the straight-line program, which works
        at any size; ``closed_form=True`` evaluates the closed forms instead (small networks; subject to the
        size budget). Either runs with mpmath at a precision that grows until the digits hold (``_exact``):
        at saturation too, where 1 − σ(z) cancels.
        """
        function = self._exact_closed_form if closed_form else self._exact_program
        shapes = [(1, 1), *(self.network.parameter_shapes[name] for name in self.parameters)]
        count = sum(rows * cols for rows, cols in shapes)

        def total(outputs: list[list]) -> list:  # the loss and gradient entries, summed over the samples
            return [mpmath.fsum(sample[index] for sample in outputs) for index in range(count)]

        numbers = iter(run_exact(function, self._samples(values), total, digits))
        result: dict[str, object] = {"loss": next(numbers)}
        for name, (rows, cols) in zip(self.parameters, shapes[1:]):
            result[name] = [[next(numbers) for _ in range(cols)] for _ in range(rows)]
        return result

    def intermediates(self, values: Mapping[str, object], digits: int = 20) -> dict[str, list[list[float]]]:
        """Every named intermediate at ``values``: ``{"z1": rows, "a1": rows, ..., "delta1": rows}``.

        One column per sample, in the network's order (z1, a1, z2, a2, ..., then delta_L ... delta1), each
        right to ``digits`` significant digits (``_exact``).
        """
        named = self._named_intermediates
        skip = 1 + sum(rows * cols for rows, cols in self.network.parameter_shapes.values())

        def columns(outputs: list[list]) -> list:  # sample by sample, the intermediates only
            return [value for sample in outputs for value in sample[skip:]]

        samples = self._samples(values)
        numbers = run_exact(self._exact_program, samples, columns, digits)
        width = len(numbers) // len(samples)
        result: dict[str, list[list[float]]] = {}
        offset = 0
        for name, symbols in named:
            result[name] = [
                [numbers[column * width + offset + unit] for column in range(len(samples))]
                for unit in range(len(symbols))
            ]
            offset += len(symbols)
        return result

    @property
    def _named_intermediates(self) -> list[tuple[str, Entries]]:
        named = [
            (f"{kind}{layer.index}", symbols)
            for layer in self.layers
            for kind, symbols in (("z", layer.z), ("a", layer.a))
        ]
        return named + [(f"delta{layer.index}", layer.delta) for layer in reversed(self.layers)]

    @property
    def _arguments(self) -> list[Symbol]:
        """Every input symbol, in the order ``_samples`` gives their numbers: x, y, then each parameter."""
        return [symbol for matrix in self.symbols.values() for symbol in matrix]

    @functools.cached_property
    def _exact_program(self):
        """The program in mpmath: the loss, every gradient entry, then every intermediate (``_exact``)."""
        outputs = [self.loss_definition, *(e for name in self.parameters for e in self.gradient_definitions[name])]
        outputs += [symbol for _, symbols in self._named_intermediates for symbol in symbols]
        return exact_function(self._arguments, self.program, outputs)

    @functools.cached_property
    def _exact_closed_form(self):
        """The closed forms in mpmath: the loss, then every gradient entry."""
        outputs = [self.loss, *(entry for name in self.parameters for entry in self.gradients[name])]
        return exact_function(self._arguments, (), outputs)

    def _samples(self, values: Mapping[str, object]) -> list[list[float]]:
        """For each sample (column): the numbers of ``_arguments``, x and y from that column."""
        numbers = self._numeric_inputs(values)
        samples = []
        for column in range(len(numbers["x"][0])):
            sample = []
            for name, matrix in self.symbols.items():
                for i in range(matrix.rows):
                    for j in range(matrix.cols):
                        sample.append(numbers[name][i][column if name in ("x", "y") else j])
            samples.append(sample)
        return samples

    def _numeric_inputs(self, values: Mapping[str, object]) -> dict[str, list[list[float]]]:
        expected = ("x", "y", *self.parameters)
        require_exactly("values", values, expected)
        shapes = dict(self.network.parameter_shapes)
        batch = None
        numbers: dict[str, list[list[float]]] = {}
        for name in expected:
            try:
                rows = [[float(v) for v in row] for row in values[name]]
            except (TypeError, ValueError) as error:
                raise InputTypeError(f"values[{name!r}] must be a nested list of numbers (rows); {error}") from None
            columns = {len(row) for row in rows}
            if len(columns) != 1:
                raise InputError(f"values[{name!r}] has rows of different lengths {sorted(columns)}")
            shape = (len(rows), columns.pop())
            if name in ("x", "y"):
                want = self.network.sizes[0] if name == "x" else self.network.sizes[-1]
                if shape[0] != want or (batch is not None and shape[1] != batch):
                    raise InputError(
                        f"values[{name!r}] has shape {list(shape)}; expected [{want}, B] (one sample per column, "
                        "the same B for x and y)"
                    )
                batch = shape[1]
            elif shape != shapes[name]:
                raise InputError(f"values[{name!r}] has shape {list(shape)}; expected {list(shapes[name])}")
            numbers[name] = rows
        return numbers

    # -- explanations (written by _formats and _html, which register themselves: see ``page_writer``) -----

    def latex(self, document: bool = False, values: Mapping[str, object] | None = None, lang: str = "en") -> str:
        """The derivation as LaTeX: a fragment, or a standalone document that pdflatex compiles.

        ``lang`` is ``"en"`` or ``"zh"`` (Chinese: the document uses CJKutf8).
        """
        return _WRITERS["latex"](self, document=document, values=values, lang=lang)

    def markdown(self, values: Mapping[str, object] | None = None, lang: str = "en") -> str:
        """The derivation as Markdown with ``$$`` display math (GitHub, Jupyter).

        A ``str`` that a notebook also renders when it is a cell's last value.
        """
        return _WRITERS["markdown"](self, values=values, lang=lang)

    def text(self, values: Mapping[str, object] | None = None, lang: str = "en") -> str:
        """The derivation as plain text for a terminal."""
        return _WRITERS["text"](self, values=values, lang=lang)

    def pdf(self, output, values: Mapping[str, object] | None = None, lang: str = "en") -> str:
        """Write the derivation as a PDF file (pdflatex); returns pdflatex's log."""
        return _WRITERS["pdf"](self, output, values=values, lang=lang)

    def _repr_latex_(self) -> str:
        """Display math only: notebooks render text/latex with MathJax, which typesets no sections."""
        return _WRITERS["math"](self)

    def _repr_markdown_(self) -> str:
        return str(self.markdown())

    def _check_parameter(self, name: str) -> None:
        if name not in self.gradient_definitions:
            raise NetworkError(f"unknown parameter {name!r}; this network has {', '.join(self.parameters)}")

    def html(
        self, values: Mapping[str, object] | None = None, lang: str = "en", *, figure: str | None = "network"
    ) -> str:
        """The derivation as one self-contained web page (KaTeX inside it; nothing is loaded when opened).

        ``figure``: ``"network"`` (default) draws the network as the PDF does; SVG text of your own is set
        inline under the title instead; None leaves it out.
        """
        return _WRITERS["html"](self, values=values, lang=lang, figure=figure)

    def _repr_html_(self) -> str:
        """A notebook's rich display: the page as a fragment (its styles scoped, KaTeX inline)."""
        return _WRITERS["html"](self, document=False)


def _kind_lookup(sizes: Mapping[str, int]):
    """symbol ↦ the closed size of its kind: ``z2[7]`` counts as any entry of z2; inputs are not in ``sizes``."""
    return lambda symbol: sizes.get(symbol.name.split("[")[0])


def _entries(matrix: Matrix):
    for i in range(matrix.rows):
        for j in range(matrix.cols):
            yield (i, j), matrix[i, j]


WRT = ("x",)  # what ``derive(..., wrt=...)`` may add to the parameters


def derive(
    network: Network, closed_form_budget: int = DEFAULT_CLOSED_FORM_BUDGET, *, wrt: tuple[str, ...] = ()
) -> Derivation:
    """Derive ∂L/∂θ for every parameter θ of ``network`` by the chain rule over named intermediates.

    ``wrt=("x",)`` also derives ∂L/∂x = W1ᵀ δ1, the gradient with respect to the input, one column per
    sample (the matrix program and ``compile_gradients`` give it under the name ``"x"``).
    """
    if not isinstance(network, Network):
        raise NetworkTypeError(f"derive takes a Network; got {type(network).__name__} ({network!r:.80})")
    if isinstance(closed_form_budget, bool) or not isinstance(closed_form_budget, int) or closed_form_budget < 0:
        raise NetworkError(f"closed_form_budget must be a non-negative integer; got {closed_form_budget!r}")

    if isinstance(wrt, str) or not isinstance(wrt, (tuple, list)) or any(name not in WRT for name in wrt):
        raise NetworkError(
            f"wrt must be a tuple of names from {', '.join(map(repr, WRT))} (every parameter's gradient is "
            f"always derived); got {wrt!r}"
        )
    wrt = tuple(dict.fromkeys(wrt))
    return Derivation(network, derive_matrix_program(network, wrt), closed_form_budget, wrt)
