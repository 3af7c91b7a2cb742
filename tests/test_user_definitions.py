"""A user's definitions (issue 16): names that cannot collide, refusals at ``define`` with the reason,
Max/Min compiled, LaTeX confined to math, torch loss options refused by name, softplus exact for every z.

References are written here, independently of chainrule: each activation again as a torch function whose
derivative autograd takes, mpmath at 50 digits for softplus, pdflatex and pdftotext for the PDF.
"""

from __future__ import annotations

import inspect
import shutil
import subprocess

import mpmath
import pytest
import sympy
import torch
from torch import nn

import symbolic._functions as chainrule_functions
import symbolic._printers as chainrule_printers
import symbolic._rules as rules
from numeric import autograd_loss_and_gradients, compile_gradients, from_torch, gradients, random_values
from numeric._torch_models import _LOSS_MODULES, _READ_ELSEWHERE
from symbolic import Activation, Loss, Network, NetworkError, UnsupportedModule, derive

# --- names ------------------------------------------------------------------------------------------------

ISSUE_NAMES = ["step", "transpose", "max_mask", "matmul", "Add", "batch_sum", "Pow", "Piecewise", "Symbol"]
CHAINRULE_NAMES = sorted(
    name
    for module in (chainrule_functions, chainrule_printers)  # the functions, and the notation of the reports
    for name, value in vars(module).items()
    if isinstance(value, type) and issubclass(value, sympy.Basic) and name not in rules.ACTIVATIONS
)
SYMPY_NAMES = ["Function", "DefinedFunctionBase", "exp", "Max", "Min", "Heaviside", "Lambda", "Mul", "Integer"]


def _manual_gradients(torch_activation, x, y, params):
    """½ Σ (W2 f(W1 x) − y)² by hand, its gradients by autograd: no chainrule code on this path."""
    w1 = params["W1"].clone().requires_grad_(True)
    w2 = params["W2"].clone().requires_grad_(True)
    loss = ((w2 @ torch_activation(w1 @ x) - y) ** 2).sum() / 2
    loss.backward()
    return {"W1": w1.grad, "W2": w2.grad}


def _assert_compiles_to(activation: Activation, torch_activation, seed: int = 0, forms=("matrix", "elementwise")):
    network = Network([2, 3, 1], [activation, "identity"], "half_sse")
    values = random_values(network, 5, seed)
    params = {name: values[name] for name in network.parameter_shapes}
    reference = _manual_gradients(torch_activation, values["x"], values["y"], params)
    derivation = derive(network)
    for form in forms:
        ours = compile_gradients(derivation, form)(values["x"], values["y"], params)
        for name in params:
            torch.testing.assert_close(ours[name], reference[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted({*ISSUE_NAMES, *CHAINRULE_NAMES, *SYMPY_NAMES}))
def test_a_name_of_chainrule_or_sympy_is_refused_with_the_reason(name):
    with pytest.raises(NetworkError, match=f"name '{name}' is (chainrule's|SymPy's) own name"):
        Activation.define(name, lambda z: z**2 + z)
    with pytest.raises(NetworkError, match=f"name '{name}' is (chainrule's|SymPy's) own name"):
        Loss.define(name, lambda p, y: (p - y) ** 2)


@pytest.mark.parametrize("name", sorted(rules.ACTIVATIONS))
def test_a_builtin_activation_name_is_refused(name):
    with pytest.raises(NetworkError, match=f"'{name}' is a built-in activation"):
        Activation.define(name, lambda z: z**2 + z)


@pytest.mark.parametrize("name", ["step", "transpose", "max_mask", "matmul", "Add", "Pow", "Piecewise", "Symbol"])
def test_even_past_the_name_check_a_user_function_compiles_to_its_own_definition(name, monkeypatch):
    """The second line of defence: the SymPy class of a user function is namespaced, so no printer method
    of chainrule's (``_print_step``) or SymPy's (``_print_Pow``) is ever chosen by the user's name."""
    monkeypatch.setattr(rules, "check_name", lambda name, kind, builtins: name)
    activation = Activation.define(name, lambda z: z**2 + z)
    assert activation.name == name and str(activation.function(sympy.Symbol("z"))) == f"{name}(z)"
    _assert_compiles_to(activation, lambda t: t**2 + t, forms=("matrix",))


def test_a_user_activation_is_not_taken_for_a_builtin_fused_kernel(monkeypatch):
    monkeypatch.setattr(rules, "check_name", lambda name, kind, builtins: name)
    activation = Activation.define("sigmoid", lambda z: z**3 + z)  # the built-in's name, a different function
    _assert_compiles_to(activation, lambda t: t**3 + t, forms=("matrix",))


# --- what define refuses, and why ---------------------------------------------------------------------------

f = sympy.Function("f")


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: Activation.define("fl", lambda z: sympy.floor(z) + z), r"contains floor\(z\)"),
        (lambda: Activation.define("ce", lambda z: sympy.ceiling(z) * z), r"contains ceiling\(z\)"),
        (lambda: Activation.define("sg", lambda z: sympy.sign(z) * z), "DiracDelta"),
        (lambda: Activation.define("hv", lambda z: sympy.Heaviside(z) * z), r"contains Heaviside\(z\)"),
        (lambda: Activation.define("uf", lambda z: f(z)), r"contains f\(z\)"),
        (lambda: Activation.define("gm", lambda z: sympy.gamma(z + 4)), r"contains gamma\(z \+ 4\)"),
        (lambda: Activation.define("cz", lambda z: sympy.I * z), r"contains I"),
        (lambda: Activation.define("stp", lambda z: sympy.Piecewise((1, z > 0), (0, True))), "0 everywhere"),
        (lambda: Activation.define("sq", lambda z: sympy.sqrt(z)), "not a finite real number at z = -2.5"),
        (lambda: Loss.define("sq", lambda p, y: sympy.sqrt(p - y)), "not a finite real number at ŷ = 0.6"),
        (lambda: Loss.define("cplx", lambda p, y: (p - y) ** 2 + sympy.sqrt(y - 0.5)), "'cplx' is not a finite real"),
        (lambda: Loss.define("const", lambda p, y: sympy.Integer(3)), "does not depend on the prediction"),
        (lambda: Loss.define("only_y", lambda p, y: y**2), "does not depend on the prediction"),
        (lambda: Loss.define("fl", lambda p, y: sympy.floor(p - y)), r"contains floor"),
        (lambda: Loss.define("inv", lambda p, y: 1 / (p - 0.6) + y), "not a finite real number"),
    ],
)
def test_definitions_torch_cannot_compute_are_refused_at_define_with_the_reason(call, fragment):
    with pytest.raises(NetworkError, match=fragment):
        call()


HARD_TANH = Activation.define("hardtanh", lambda z: sympy.Max(-1, sympy.Min(1, z)), r"\operatorname{hardtanh}")


@pytest.mark.parametrize(
    "definition, torch_function",
    [
        (lambda z: sympy.Max(-1, sympy.Min(1, z)), lambda t: torch.clamp(t, -1, 1)),
        (lambda z: sympy.Max(z, 0), torch.relu),
        (lambda z: sympy.Min(z, z / 4), lambda t: torch.minimum(t, t / 4)),
        (lambda z: sympy.Max(z, 0) ** 2 + sympy.Abs(z), lambda t: torch.relu(t) ** 2 + t.abs()),
        (lambda z: sympy.Piecewise((z**2, z > 0.5), (-z, z < -0.5), (z / 2, True)), None),
    ],
)
def test_max_min_and_piecewise_activations_compile_to_their_definition(definition, torch_function):
    if torch_function is None:

        def torch_function(t):
            return torch.where(t > 0.5, t**2, torch.where(t < -0.5, -t, t / 2))

    activation = Activation.define(f"mm_{abs(hash(definition.__code__.co_code)) % 10**6}", definition)
    for seed in (0, 1, 2):
        _assert_compiles_to(activation, torch_function, seed)


# every function of the allow-list, compiled, against the same formula written in torch
ELEMENTARY = {
    "exp": (lambda z: sympy.exp(z / 2), lambda t: torch.exp(t / 2)),
    "log": (lambda z: sympy.log(1 + z**2), lambda t: torch.log(1 + t**2)),
    "sin": (sympy.sin, torch.sin),
    "cos": (sympy.cos, torch.cos),
    "tan": (lambda z: sympy.tan(z / 4), lambda t: torch.tan(t / 4)),
    "asin": (lambda z: sympy.asin(sympy.tanh(z)), lambda t: torch.asin(torch.tanh(t))),
    "acos": (lambda z: sympy.acos(sympy.tanh(z)), lambda t: torch.acos(torch.tanh(t))),
    "atan": (sympy.atan, torch.atan),
    "sinh": (sympy.sinh, torch.sinh),
    "cosh": (sympy.cosh, torch.cosh),
    "tanh": (lambda z: sympy.tanh(z) + z, lambda t: torch.tanh(t) + t),
    "asinh": (sympy.asinh, torch.asinh),
    "acosh": (lambda z: sympy.acosh(2 + z**2), lambda t: torch.acosh(2 + t**2)),
    "atanh": (lambda z: sympy.atanh(sympy.tanh(z) / 2), lambda t: torch.atanh(torch.tanh(t) / 2)),
    "erf": (sympy.erf, torch.erf),
    "Abs": (lambda z: sympy.Abs(z) + z / 3, lambda t: t.abs() + t / 3),
    "sqrt": (lambda z: sympy.sqrt(1 + z**2), lambda t: torch.sqrt(1 + t**2)),
    "power": (lambda z: (2 + sympy.tanh(z)) ** sympy.Rational(3, 2), lambda t: (2 + torch.tanh(t)) ** 1.5),
}


def test_the_table_covers_every_compilable_function():
    from symbolic._definitions import COMPILABLE_FUNCTIONS

    covered = set(ELEMENTARY) | {"Piecewise", "sign"}  # Piecewise above; sign is Abs' derivative
    assert {function.__name__ for function in COMPILABLE_FUNCTIONS} <= covered


@pytest.mark.parametrize("name", sorted(ELEMENTARY))
def test_each_compilable_function_compiles_to_torch(name):
    definition, torch_function = ELEMENTARY[name]
    _assert_compiles_to(Activation.define(f"el_{name.lower()}", definition), torch_function)


def test_a_hard_tanh_network_verifies():
    from numeric import verify

    hinge = Loss.define("hinge_v", lambda p, y: sympy.Max(0, 1 - p * y))
    report = verify(derive(Network([3, 4, 2], [HARD_TANH, "identity"], hinge, bias=True)), batch=4, seed=1)
    assert report.ok, str(report)


def test_a_hinge_loss_with_max_compiles_to_its_definition():
    hinge = Loss.define("hinge", lambda p, y: sympy.Max(0, 1 - p * y))
    network = Network([2, 3, 2], ["tanh", "identity"], hinge)
    values = random_values(network, 6, 3)
    params = {name: values[name] for name in network.parameter_shapes}
    w1, w2 = (params[n].clone().requires_grad_(True) for n in ("W1", "W2"))
    torch.clamp(1 - (w2 @ torch.tanh(w1 @ values["x"])) * values["y"], min=0).sum().backward()
    ours = compile_gradients(derive(network))(values["x"], values["y"], params)
    torch.testing.assert_close(ours["W1"], w1.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours["W2"], w2.grad, rtol=1e-12, atol=1e-12)


# --- LaTeX ------------------------------------------------------------------------------------------------

REFUSED_LATEX = [
    (r"\input{/etc/passwd}", r"\\input"),
    (r"\include{secret}", r"\\include"),
    (r"\openin5=secret", r"\\openin"),
    (r"\read5 to\x", r"\\read"),
    (r"\write18{ls}", r"\\write"),
    (r"\immediate\write18{ls}", r"\\immediate"),
    (r"\catcode`\^=0", r"\\catcode"),
    (r"\def\f{x}", r"\\def"),
    (r"\csname input\endcsname{secret}", r"\\csname"),
    (r"\usepackage{shellesc}", r"\\usepackage"),
    (r"\special{ps: x}", r"\\special"),
    (r"\openout1=x", r"\\openout"),
    (r"\let\f\input", r"\\let"),
    (r"\expandafter\f", r"\\expandafter"),
    (r"\scantokens{x}", r"\\scantokens"),
    (r"^^5cinput{secret}", r"\^\^"),
    (r"x$ \input{secret} $", r"'\$'"),
    (r"x % comment", "'%'"),
    (r"#1", "'#'"),
    (r"a & b", "'&'"),
    (r"x}\input{secret}{", r"\\input|closes a brace"),
    (r"x}", "closes a brace"),
    (r"\left( x", "unbalanced"),
    ("φ", "'φ'"),
]


@pytest.mark.parametrize("latex, fragment", REFUSED_LATEX)
def test_latex_that_is_not_math_is_refused_naming_the_part(latex, fragment):
    with pytest.raises(NetworkError, match=fragment):
        Activation.define("act", lambda z: z**3 + z, latex)
    with pytest.raises(NetworkError, match=fragment):
        Loss.define("lss", lambda p, y: (p - y) ** 4, latex)


def test_an_activation_built_directly_is_checked_too():
    with pytest.raises(NetworkError, match=r"\\input"):
        Activation("own", r"\input{secret}", HARD_TANH.function)


@pytest.mark.skipif(shutil.which("pdflatex") is None or shutil.which("pdftotext") is None, reason="no pdflatex")
def test_math_latex_reaches_the_pdf_and_a_file_never_does(tmp_path, monkeypatch):
    secret = tmp_path / "secret.tex"
    secret.write_text("SECRETCONTENT", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NetworkError):
        Activation.define("leak", lambda z: z**3 + z, rf"\input{{{secret}}}")
    with pytest.raises(NetworkError):
        Activation.define("leak", lambda z: z**3 + z, rf"^^5cinput{{{secret}}}")
    phi = Activation.define("phi_one", lambda z: z / (1 + sympy.Abs(z)), r"\phi_{1}")
    network = Network([2, 2, 1], [HARD_TANH, phi], "half_sse")
    output = tmp_path / "out.pdf"
    derive(network).pdf(output)
    text = subprocess.run(["pdftotext", str(output), "-"], capture_output=True, text=True, check=True).stdout
    # \phi is typeset as ϕ (U+03D5); hardtanh as an operator name, upright letters that pdftotext reads back
    assert "hardtanh" in text and "\u03d5" in text and "SECRETCONTENT" not in text


# --- torch loss options ---------------------------------------------------------------------------------


def _non_default(parameter: inspect.Parameter, width: int):
    """A value other than the default for one constructor argument of a torch loss module."""
    if parameter.name in ("weight", "pos_weight"):
        return torch.full((width,), 2.0)
    if isinstance(parameter.default, bool):
        return not parameter.default
    if isinstance(parameter.default, int):
        return 1
    if isinstance(parameter.default, float):
        return 0.25
    raise AssertionError(f"no test value for {parameter}")  # a new kind of option: decide how to treat it


OPTIONS = [
    (cls, name, parameter)
    for cls in _LOSS_MODULES
    for name, parameter in inspect.signature(cls.__init__).parameters.items()
    if name not in _READ_ELSEWHERE
]


@pytest.mark.parametrize("cls, name, parameter", OPTIONS, ids=[f"{c.__name__}-{n}" for c, n, _ in OPTIONS])
def test_every_non_default_option_of_a_loss_module_is_refused_by_name(cls, name, parameter):
    value = _non_default(parameter, 3)
    model = nn.Sequential(nn.Linear(2, 3))
    with pytest.raises(UnsupportedModule, match=f"{name}=.* {name} is not supported"):
        from_torch(model, cls(**{name: value}))


def test_cross_entropy_with_ignore_index_is_refused_not_wrong():
    model = nn.Sequential(nn.Linear(2, 3)).double()
    inputs, targets = torch.randn(4, 2, dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    with pytest.raises(UnsupportedModule, match="ignore_index=1"):
        gradients(model, nn.CrossEntropyLoss(ignore_index=1), inputs, targets)
    # the default ignore_index (-100) is no option: no class is ignored, and chainrule agrees with autograd
    ours = gradients(model, nn.CrossEntropyLoss(), inputs, targets)
    nn.CrossEntropyLoss()(model(inputs), targets).backward()
    torch.testing.assert_close(ours["0.weight"], model[0].weight.grad)


# --- softplus -------------------------------------------------------------------------------------------

mpmath.mp.dps = 50


def _softplus_reference(z: float) -> tuple[mpmath.mpf, mpmath.mpf]:
    """log(1 + e^z) and σ(z) at 50 digits."""
    z = mpmath.mpf(z)
    return mpmath.log1p(mpmath.exp(z)), 1 / (1 + mpmath.exp(-z))


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 4 * 2.0**-53), (torch.float32, 4 * 2.0**-24)])
def test_softplus_value_and_gradient_are_exact_far_above_torchs_threshold(dtype, rtol):
    """L = ½ softplus(w z)² at w = 1: L = ½ s², ∂L/∂w = s σ(z) z; compiled and the autograd reference."""
    points = (-30.0, 25.0, 30.0, 100.0, 1000.0)
    network = Network([1, 1], "softplus", "half_sse")
    compiled = compile_gradients(derive(network))
    params = {"W1": torch.ones(1, 1, dtype=dtype)}
    for point in points:
        x, y = torch.tensor([[point]], dtype=dtype), torch.zeros(1, 1, dtype=dtype)
        value, slope = _softplus_reference(point)
        expected_loss = float(value**2 / 2)
        expected_gradient = float(value * slope * mpmath.mpf(point))
        loss, ours = compiled.value_and_grad(x, y, params)
        reference_loss, reference = autograd_loss_and_gradients(network, x, y, params)
        for computed, expected in ((loss, expected_loss), (reference_loss, expected_loss)):
            assert float(computed) == pytest.approx(expected, rel=rtol, abs=1e-300), (point, "loss")
        for computed in (ours["W1"], reference["W1"]):
            assert float(computed) == pytest.approx(expected_gradient, rel=rtol, abs=1e-300), (point, "gradient")


def test_a_negated_user_function_prints_as_the_negation_of_its_whole_definition():
    """−cube(z) printed as −z³/3 + z (the definition spliced in without parentheses) gave wrong closed forms
    (log_cosh after cube: exact evaluation off by 70%); both printers must negate the whole definition."""
    import mpmath

    from numeric._printer import MatrixTorchPrinter
    from symbolic._exact import _ExactPrinter

    cube = Activation.define("cube_neg", lambda z: z**3 / 3 + z)
    z = sympy.Symbol("z", real=True)
    expression = 2 - cube.function(z)
    value = 0.7
    expected = 2 - (value**3 / 3 + value)
    torch_code = MatrixTorchPrinter().doprint(expression)
    assert eval(torch_code, {"torch": torch, "z": torch.tensor(value, dtype=torch.float64)}).item() == pytest.approx(
        expected, rel=1e-14
    )
    exact_code = _ExactPrinter({}).doprint(expression)
    assert float(eval(exact_code, {"mpmath": mpmath, "z": mpmath.mpf(value)})) == pytest.approx(expected, rel=1e-14)
