"""A small reader for the LaTeX the derivation prints, written independently of the printers.

It reads one printed side (or a relation) back into SymPy: names through the symbols the checked tree
and the derivation use, ∂ fractions as partial-derivative nodes, 𝟙[·] and the unit step as Piecewise,
Σ written out over its range, matrices with ᵀ, ⊙, 𝟏. It knows only the notation chainrule prints and
fails loudly on anything else, so an unexpected printed form fails the test rather than passing it by.
"""

from __future__ import annotations

import re

import sympy
from sympy import HadamardProduct, Transpose

TOKEN = re.compile(
    r"\\left[(\[]|\\right[)\]]|\\begin\{bmatrix\}|\\end\{bmatrix\}|\\begin\{cases\}|\\end\{cases\}|\\[,:;!]|"
    r"\\[a-zA-Z]+|\\\\|\d+\.\d+|\d+|[a-zA-Z]|[{}^_()+\-=<>,'&\[\]]|\S"
)


SPACES = {r"\,", r"\:", r"\;", r"\!"}


class Unreadable(ValueError):
    pass


class PartialOf(sympy.Expr):
    """∂of/∂wrt as read: compared with the checked tree's own ∂ nodes by their arguments."""


def indicator(relation) -> sympy.Expr:
    relation = relation.doit() if isinstance(relation, sympy.Rel) else relation  # k = 2 read as Eq(2, 1)
    if relation in (sympy.true, sympy.false):
        return sympy.S.One if relation == sympy.true else sympy.S.Zero
    return sympy.Piecewise((1, relation), (0, True))


class Reader:
    """Reads a printed side; ``names`` maps printed names (W2[1,1], a2, delta2, z) to what they stand for."""

    def __init__(self, latex: str, names: dict[str, object], functions: dict[str, object]):
        # colour and the red box are emphasis, not mathematics: {\color{red}\boxed{\color{black}X}} reads as {{X}}
        # (tests/test_box.py checks where they are)
        latex = re.sub(r"\\color\{\w+\}|\\boxed", "", latex)
        self.tokens = [t for t in TOKEN.findall(latex) if t not in SPACES]
        self.position = 0
        self.names, self.functions = names, functions
        self.bound: dict[str, sympy.Symbol] = {}

    def inner(self, latex: str) -> Reader:
        """A reader for a nested group, seeing the same bound summation indices."""
        reader = Reader(latex, self.names, self.functions)
        reader.bound = dict(self.bound)
        return reader

    # -- tokens
    def peek(self, offset: int = 0) -> str | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unreadable(f"expected {expected!r}, found {token!r} at {self.position} in {' '.join(self.tokens)}")
        self.position += 1
        return token

    def group_text(self) -> str:
        """The raw tokens of a {...} group, joined."""
        self.take("{")
        depth, parts = 1, []
        while True:
            token = self.take()
            depth += {"{": 1, "}": -1}.get(token, 0)
            if depth == 0:
                return " ".join(parts)
            parts.append(token)

    # -- grammar
    def read(self):
        result = self.relation()
        if self.peek() is not None:
            raise Unreadable(f"unread tokens {self.tokens[self.position :]}")
        return result

    def relation(self):
        left = self.listing()
        token = self.peek()
        if token in ("=", ">", "<", r"\geq", r"\leq"):
            self.take()
            right = self.listing()
            build = {"=": sympy.Eq, ">": sympy.Gt, "<": sympy.Lt, r"\geq": sympy.Ge, r"\leq": sympy.Le}[token]
            if isinstance(left, sympy.MatrixExpr) or isinstance(right, sympy.MatrixExpr):
                return ("=", left, right)
            return build(left, right, evaluate=False) if token == "=" else build(left, right)
        return left

    def listing(self):
        """``3, \\ldots, 1`` (a range of layers) as a tuple; a single expression as itself."""
        items = [self.expression()]
        while self.peek() == ",":
            self.take(",")
            items.append(self.expression())
        return items[0] if len(items) == 1 else sympy.Tuple(*items)

    def expression(self):
        sign = 1
        if self.peek() in ("-", "+"):
            sign = -1 if self.take() == "-" else 1
        total = self.term() if sign == 1 else -self.term()
        while self.peek() in ("+", "-"):
            operator = self.take()
            term = self.term()
            total = total + term if operator == "+" else total - term
        return total

    STARTS = re.compile(
        r"^(\\left\(|\\frac|\\sum|\\mathbb|\\mathbf|\\sigma|\\tanh|\\log|\\operatorname|\\delta|\\ell|"
        r"\\hat|\\begin\{bmatrix\}|\d|[a-zA-Z{])"
    )

    def term(self):
        product = self.power()
        while True:
            token = self.peek()
            if token in (r"\cdot", r"\times"):
                self.take()
                product = _times(product, self.power())
            elif token == r"\odot":
                self.take()
                product = HadamardProduct(product, self.power())
            elif token is not None and self.STARTS.match(token) and token not in ("&",):
                product = _times(product, self.power())
            else:
                return product

    def power(self):
        base = self.atom()
        while self.peek() == "^":
            self.take()
            exponent = self.group_text()
            if exponent.strip() == r"\top":
                base = Transpose(base)
            else:
                base = base ** self.inner(exponent).read()
        return base

    def atom(self):
        token = self.peek()
        if token == "{":
            self.take()
            inner = self.relation()
            self.take("}")
            return inner
        if token == r"\left(":
            self.take()
            inner = self.expression()
            self.take(r"\right)")
            return inner
        if token == r"\frac":
            self.take()
            numerator, denominator = self.group_text(), self.group_text()
            if numerator.startswith(r"\partial"):
                of = self.inner(numerator[len(r"\partial") :]).read()
                wrt = self.inner(denominator[len(r"\partial") :]).read()
                return PartialOf(of, wrt)
            return self.inner(numerator).read() / self.inner(denominator).read()
        if token == r"\sum":
            return self.sum()
        if token == r"\mathbb":
            self.take()
            if self.group_text().strip() != "1":
                raise Unreadable("only the indicator 𝟙 is double-struck")
            self.take(r"\left[")
            relation = self.relation()
            self.take(r"\right]")
            return indicator(relation)
        if token == r"\mathbf":
            self.take()
            if self.group_text().strip() != "1":
                raise Unreadable("only the ones vector 𝟏 is bold")
            return self.names["ones"]
        if token == r"\begin{bmatrix}":
            return self.bmatrix()
        if token == r"\begin{cases}":
            return self.cases()
        if token == r"\sqrt":
            self.take()
            return sympy.sqrt(self.inner(self.group_text()).read())
        if token == r"\pi":
            self.take()
            return sympy.pi
        if token is not None and re.fullmatch(r"\d+(\.\d+)?", token):
            self.take()
            return sympy.Float(token) if "." in token else sympy.Integer(token)
        if token == "e" and self.peek(1) == "^":
            self.take()
            self.take("^")
            return sympy.exp(self.inner(self.group_text()).read())
        return self.name_or_call()

    def sum(self):
        self.take(r"\sum")
        self.take("_")
        lower = self.group_text().replace(" ", "")
        variable_name, start = lower.split("=")
        self.take("^")
        end = int(self.group_text())
        start_token = self.position
        variable = sympy.Symbol(variable_name, integer=True, positive=True)
        self.bound[variable_name] = variable
        self.term()  # read the body once, to find where it ends
        del self.bound[variable_name]
        body_tokens = self.tokens[start_token : self.position]
        terms = []
        for value in range(int(start), end + 1):
            inner = self.inner("")
            inner.tokens = body_tokens
            inner.bound[variable_name] = sympy.Integer(value)
            terms.append(inner.term())
        return sympy.Add(*terms)

    def cases(self):
        """value & condition rows: a Piecewise."""
        self.take(r"\begin{cases}")
        branches = []
        while True:
            value = self.expression()
            self.take("&")
            branches.append((value, self.relation()))
            if self.peek() == r"\end{cases}":
                self.take()
                return sympy.Piecewise(*branches)
            self.take("\\\\")

    def bmatrix(self):
        self.take(r"\begin{bmatrix}")
        rows, row = [], [self.expression()]
        while self.peek() != r"\end{bmatrix}":
            separator = self.take()
            if separator == "&":
                row.append(self.expression())
            elif separator == "\\\\":
                rows.append(row)
                row = [self.expression()]
            else:
                raise Unreadable(f"unexpected {separator!r} in a matrix")
        self.take(r"\end{bmatrix}")
        rows.append(row)
        return sympy.ImmutableMatrix(rows)

    def name_or_call(self):
        token = self.take()
        if token == r"\operatorname":
            token = self.group_text().replace(" ", "")
        elif token == r"\hat":
            token = "hat " + self.group_text().strip()
        prime = False
        if token in self.functions:
            if self.peek() == "_":  # f_l
                self.take("_")
                token = f"{token}_{self.group_text()}"
            if self.peek() == "'":
                self.take()
                prime = True
            exponent = None
            if self.peek() == "^":  # tanh^{2}(z): SymPy writes a function's power before its argument
                self.take("^")
                exponent = self.inner(self.group_text()).read()
            called = self.call(token, prime)
            return called if exponent is None else called**exponent
        if token == "f" and self.peek() == "_":
            self.take("_")
            token = f"f_{self.group_text() if self.peek() == '{' else self.take()}"
            if self.peek() == "'":
                self.take()
                prime = True
            if self.peek() != r"\left(":  # the name alone, in a sentence
                return self.names[token]
            return self.call(token, prime)
        layer = index = None
        if self.peek() == "^" and self.peek(1) == "{" and self.peek(2) == "(":
            self.take("^")
            layer = self.group_text().replace(" ", "").strip("()")
        if self.peek() == "_":
            self.take("_")
            index = (self.group_text() if self.peek() == "{" else self.take()).replace(" ", "")
        return self.resolve(token, layer, index)

    def call(self, name: str, prime: bool):
        brace = self.peek() == "{"
        if brace:
            self.take("{")
        self.take(r"\left(")
        arguments = [self.expression()]
        while self.peek() == ",":
            self.take(",")
            arguments.append(self.expression())
        self.take(r"\right)")
        if brace:
            self.take("}")
        return self.functions[name](prime, *arguments)

    def resolve(self, letter: str, layer: str | None, index: str | None):
        letter = {r"\delta": "delta"}.get(letter, letter)
        base = f"{letter}{layer or ''}"
        if index is None:
            if base in self.bound:
                return self.bound[base]
            if base in self.names:
                return self.names[base]
            raise Unreadable(f"unknown name {base!r}")
        parts = index.split(",") if "," in index else list(index)
        values = [self.bound.get(p, sympy.Integer(p) if p.isdigit() else None) for p in parts]
        if any(v is None for v in values):
            values = [sympy.Symbol(p, integer=True, positive=True) if v is None else v for p, v in zip(parts, values)]
        if all(v.is_Integer for v in values):
            key = f"{base}[{','.join(str(v) for v in values)}]"
            if key in self.names:
                return self.names[key]
            raise Unreadable(f"unknown entry {key!r}")
        return sympy.IndexedBase(sympy.Symbol(base))[tuple(values)]


def _times(left, right):
    if isinstance(left, sympy.MatrixExpr | sympy.MatrixBase) and isinstance(right, sympy.MatrixExpr | sympy.MatrixBase):
        return sympy.MatMul(left, right)
    return left * right
