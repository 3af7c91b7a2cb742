"""Activations and losses as definitions: every derivative is SymPy's, users add their own, torch agrees.

References are independent of the derivation: ``sympy.diff`` of the definition expanded to elementary
functions, evaluated at 30 digits; torch autograd through torch's own modules; the layer facts against
their matrix forms on random numbers.
"""

from __future__ import annotations

import dataclasses

import pytest
import sympy
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from numeric import autograd_gradients, compile_gradients, from_torch, random_values, to_torch, verify
from symbolic import ACTIVATIONS, Activation, Loss, Network, NetworkError, NetworkTypeError, derive
from symbolic._functions import expand_definitions
from symbolic._index import layer_facts

z = sympy.Symbol("z", real=True)
ELEMENTWISE = [name for name, activation in ACTIVATIONS.items() if activation.elementwise]
POINTS = (-3.5, -0.75, -0.01, 0.3, 2.0, 5.0)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_local_derivative_is_the_derivative_of_the_definition(name):
    activation = ACTIVATIONS[name]
    elementary = expand_definitions(activation.definition(z))
    assert not any(
        isinstance(f, sympy.Function) and type(f).__module__.startswith("symbolic")
        for f in elementary.atoms(sympy.Function)
    )
    reference = sympy.diff(elementary, z)
    for point in POINTS:
        ours = expand_definitions(activation.local_derivative(z)).subs(z, sympy.Float(point, 30)).evalf(30)
        assert float(ours) == pytest.approx(float(reference.subs(z, sympy.Float(point, 30)).evalf(30)), rel=1e-25)


@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if ACTIVATIONS[n].torch_module])
def test_definition_and_derivative_match_the_torch_module(name):
    activation = ACTIVATIONS[name]
    module = getattr(nn, activation.torch_module)(**dict(activation.torch_arguments))
    t = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    module(t).sum().backward()
    for point, value, slope in zip(POINTS, module(t).tolist(), t.grad.tolist()):
        assert float(activation.function(sympy.Float(point)).evalf(30)) == pytest.approx(value, rel=1e-13, abs=1e-15)
        derivative = activation.local_derivative(z).subs(z, sympy.Float(point)).evalf(30)
        assert float(derivative) == pytest.approx(slope, rel=1e-13, abs=1e-15)


def test_derivative_written_through_the_output_exactly_where_one_exists():
    with_form = {name for name in ELEMENTWISE if ACTIVATIONS[name].through_output is not None}
    assert with_form == {"sigmoid", "tanh"}  # relu, softplus, silu, gelu, ... need z itself
    a = sympy.Symbol("a", real=True)
    for name in with_form:
        activation = ACTIVATIONS[name]
        through = activation.through_output(activation.function(z))
        assert (
            sympy.simplify(expand_definitions(through - sympy.diff(expand_definitions(activation.function(z)), z))) == 0
        )
        assert activation.through_output(a).free_symbols == {a}


def test_derivatives_stay_opaque_where_sympy_proves_a_defined_function():
    assert ACTIVATIONS["softplus"].local_derivative(z) == ACTIVATIONS["sigmoid"].function(z)
    assert str(ACTIVATIONS["relu"].local_derivative(z)) == "step(z)"
    assert not ACTIVATIONS["silu"].local_derivative(z).has(sympy.exp)  # σ(z) + z σ(z)(1 − σ(z))


def test_saturated_derivatives_stay_finite_in_float32():
    network = Network([1, 1], "silu", "half_sse")
    compiled = compile_gradients(derive(network))
    x = torch.tensor([[-100.0, 100.0]])
    params = {"W1": torch.ones(1, 1)}
    ours = compiled(x, torch.zeros(1, 2), params)["W1"]
    reference = autograd_gradients(network, x, torch.zeros(1, 2), params)["W1"]
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, reference)


# --- user definitions ---------------------------------------------------------------------------------

SWISH = Activation.define("swish", lambda z: z / (1 + sympy.exp(-z)))
CUBE = Activation.define("cube", sympy.Lambda(z, z**3 / 3 + z), through_output=None)
LOG_COSH = Loss.define("log_cosh", lambda p, y: sympy.log(sympy.cosh(p - y)))


def test_a_user_activation_and_loss_derive_render_compile_and_verify():
    network = Network([3, 4, 2], [SWISH, CUBE], LOG_COSH, bias=True)
    assert network.activations == ("swish", "cube") and network.loss == "log_cosh"
    derivation = derive(network)
    for text in (derivation.text(), derivation.latex(), derivation.markdown()):
        assert "swish" in text and "log" in text and "cosh" in text
    report = verify(derivation)
    assert report.ok, report
    values = random_values(network, 3, 5)
    params = {name: values[name] for name in network.parameter_shapes}
    reference = autograd_gradients(network, values["x"], values["y"], params)
    for form in ("matrix", "elementwise"):
        ours = compile_gradients(derivation, form)(values["x"], values["y"], params)
        for name in params:
            torch.testing.assert_close(ours[name], reference[name], rtol=1e-10, atol=1e-12)


def test_the_reference_of_a_user_definition_is_torch_autograd_of_the_definition():
    """The module to_torch makes of a user's activation computes the definition, and autograd through it (the
    reference verify compares with) gives the definition's derivative, written out here by hand."""
    module = to_torch(Network([1, 1], SWISH, "half_sse"))
    t = torch.linspace(-3, 3, 7, dtype=torch.float64, requires_grad=True)
    out = module[1](t)
    torch.testing.assert_close(out, t * torch.sigmoid(t))
    (derivative,) = torch.autograd.grad(out.sum(), t)
    s = torch.sigmoid(t.detach())
    torch.testing.assert_close(derivative, s + t.detach() * s * (1 - s))  # (z σ(z))' = σ + z σ (1 − σ)


def test_a_user_derivative_through_the_output_must_be_proved():
    exp_plus = Activation.define("exp_plus", lambda z: sympy.exp(z) - 1, through_output=lambda a: a + 1)
    assert exp_plus.through_output is not None
    with pytest.raises(NetworkError, match="not the derivative"):
        Activation.define("exp_wrong", lambda z: sympy.exp(z) - 1, through_output=lambda a: a)


@pytest.mark.parametrize(
    "call, error, fragment",
    [
        (lambda: Activation.define("sigmoid", lambda z: z), NetworkError, "built-in"),
        (lambda: Activation.define("two words", lambda z: z), NetworkError, "identifier"),
        (lambda: Activation.define("s", "z**2"), NetworkTypeError, "callable"),
        (lambda: Activation.define("s", lambda z: "z**2"), NetworkTypeError, "SymPy expression"),
        (lambda: Activation.define("s", lambda z: z * sympy.Symbol("w")), NetworkError, "other than"),
        (lambda: Activation.define("s", lambda z: sympy.log(z)), NetworkError, "not a finite real"),
        (lambda: Activation.define("s", lambda z: 1 / 0), NetworkError, "failed"),
        (lambda: Activation.define("s", lambda z: sympy.Integer(2)), NetworkError, "constant"),
        (lambda: Loss.define("l", lambda p: p), NetworkError, "failed"),
        (lambda: Network([2, 2], activations=[3]), NetworkTypeError, "Activation"),
        (lambda: Network([2, 2], loss=3), NetworkTypeError, "Loss"),
    ],
)
def test_bad_definitions_are_named(call, error, fragment):
    with pytest.raises(error, match=fragment):
        call()


# --- the new built-ins against torch --------------------------------------------------------------------

NEW = ["silu", "elu", "leaky_relu", "gelu"]


@settings(max_examples=25, deadline=None)
@given(
    hidden=st.lists(st.sampled_from(NEW), min_size=1, max_size=3),
    width=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_new_builtins_equal_autograd_in_random_architectures(hidden, width, seed):
    network = Network([3, *[width] * len(hidden), 2], [*hidden, "identity"], "half_sse", bias=True)
    values = random_values(network, 3, seed)
    params = {name: values[name] for name in network.parameter_shapes}
    reference = autograd_gradients(network, values["x"], values["y"], params)
    derivation = derive(network)
    for form in ("matrix", "elementwise"):
        ours = compile_gradients(derivation, form)(values["x"], values["y"], params)
        for name in params:
            torch.testing.assert_close(ours[name], reference[name], rtol=1e-10, atol=1e-12)


def test_from_torch_reads_the_new_modules_and_their_parameters():
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(3, 4),
        nn.SiLU(),
        nn.Linear(4, 4),
        nn.ELU(alpha=0.5),
        nn.Linear(4, 3),
        nn.LeakyReLU(0.2),
        nn.Linear(3, 3),
        nn.GELU(),
        nn.Linear(3, 2),
    ).double()
    network, params = from_torch(module, "half_sse")
    assert network.activations[0] == "silu" and network.activations[3] == "gelu"
    x = torch.randn(3, 5, dtype=torch.float64)
    y = torch.randn(2, 5, dtype=torch.float64)
    ours = compile_gradients(derive(network))(x, y, params)
    (0.5 * ((module(x.T) - y.T) ** 2).sum()).backward()
    linears = [m for m in module if isinstance(m, nn.Linear)]
    for layer, linear in enumerate(linears, start=1):
        torch.testing.assert_close(ours[f"W{layer}"], linear.weight.grad)
    rebuilt = to_torch(network, params)
    torch.testing.assert_close(rebuilt(x.T), module(x.T))
    # the same slope read twice is the same activation (one cached row), so the networks are equal
    again, _ = from_torch(nn.Sequential(nn.Linear(2, 2), nn.LeakyReLU(0.2)))
    assert again == Network([2, 2], network.activation_rules[2], bias=True)


def test_from_torch_rejects_the_tanh_approximation_of_gelu():
    from symbolic import UnsupportedModule

    with pytest.raises(UnsupportedModule, match="approximate"):
        from_torch(nn.Sequential(nn.Linear(2, 2), nn.GELU(approximate="tanh")))


# --- the layer map in index form --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(layer_facts()))
@pytest.mark.parametrize("sizes, seed", [((3, 2), 0), ((2, 4), 1), ((4, 4), 2)])
def test_each_index_fact_equals_its_matrix_form(name, sizes, seed):
    assert layer_facts()[name].check(sizes, seed)


def test_the_index_facts_are_what_diff_gives():
    from symbolic._index import W, a, delta, i, k, p, q

    facts = layer_facts()
    assert facts["dz_da"].index_form == W[i, k]
    assert facts["dL_dW"].index_form == delta[p] * a[q]
    assert facts["softmax_jacobian"].index_form.free_symbols >= {i, k}


def _mutants():
    from symbolic._index import W, W_next, a, delta, i, k, p, q

    return [
        ("dz_da", {W[i, k]: W[k, i]}),  # the indices swapped
        ("dL_dW", {delta[p]: delta[q], a[q]: a[p]}),  # a δᵀ instead of δ aᵀ
        ("delta", {W_next[i, k]: W_next[k, i]}),  # W instead of Wᵀ in the recursion
        ("softmax_jacobian", {a[i]: a[k]}),  # a_k (𝟙 − a_k)
    ]


@pytest.mark.parametrize("name, change", _mutants())
def test_a_wrong_index_form_fails_its_check(name, change):
    fact = layer_facts()[name]
    broken = dataclasses.replace(fact, taking=lambda: fact.index_form.xreplace(change))
    assert broken.index_form != fact.index_form
    assert not broken.check((3, 3))


@pytest.mark.parametrize("name", NEW)
def test_each_new_builtin_verifies_in_both_precisions(name):
    network = Network([3, 4, 2], [name, "sigmoid"], "bce", bias=True)
    for dtype in (torch.float32, torch.float64):
        report = verify(derive(network), dtype=dtype, batch=4, seed=2)
        assert report.ok, str(report)


def test_the_readme_lists_every_activation():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| `activations` |")]
    names = row.split(":", 1)[1].replace("(last layer only)", "").rstrip(" |").split(",")
    assert [name.strip(" `") for name in names] == list(ACTIVATIONS)


@pytest.mark.parametrize("dtype, gap", [(torch.float64, 37), (torch.float32, 17)])
def test_the_logit_gap_at_which_one_minus_softmax_rounds_to_zero(dtype, gap):
    """The README's numbers: from these gaps on, 1 − a is 0 for the largest softmax output."""
    for g, zero in ((gap - 1, False), (gap, True)):
        a = torch.softmax(torch.tensor([float(g), 0.0], dtype=dtype), dim=0)
        assert bool((1 - a[0]) == 0) == zero, (g, 1 - a[0])


_DEFINED: dict[tuple, Activation] = {}


def _random_activation(c0: int, c1: int, c2: int) -> Activation:
    """f(z) = c0 z + c1 tanh(z) + c2 z e^{−z²/2}: smooth, so autograd of the lambdified definition is exact."""
    key = (c0, c1, c2)
    if key not in _DEFINED:
        _DEFINED[key] = Activation.define(
            f"mix_{len(_DEFINED)}", lambda z: c0 * z + c1 * sympy.tanh(z) + c2 * z * sympy.exp(-(z**2) / 2)
        )
    return _DEFINED[key]


@settings(max_examples=15, deadline=None)
@given(
    coefficients=st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3)),
    power=st.integers(2, 4),
    seed=st.integers(0, 2**16),
)
def test_random_user_definitions_equal_autograd(coefficients, power, seed):
    assume(any(coefficients))  # a constant activation is refused (test_bad_definitions_are_named)
    activation = _random_activation(*coefficients)
    loss = Loss.define(f"power_{power}", lambda p, y: (p - y) ** power / power)
    network = Network([2, 3, 2], [activation, "identity"], loss, bias=True)
    values = random_values(network, 3, seed)
    params = {name: values[name] for name in network.parameter_shapes}
    reference = autograd_gradients(network, values["x"], values["y"], params)
    ours = compile_gradients(derive(network))(values["x"], values["y"], params)
    for name in params:
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-10, atol=1e-12)


def test_each_fused_kernel_takes_the_argument_the_derivative_is_written_in():
    """A kernel fed a = f(z) must belong to an activation whose derivative SymPy wrote through a, and back."""
    from numeric._printer import TORCH_BACKWARD

    for name, kernel in TORCH_BACKWARD.items():
        activation = ACTIVATIONS[name]
        assert kernel.reads in (("g", "a"), ("g", "z")), name  # the upstream g, and one of a and z, never both
        if activation.through_output is not None:
            assert "a" in kernel.reads, name  # keep a, free z: the derivative needs nothing else
        elif "a" in kernel.reads:
            # no a-form, yet the kernel reads a (relu): then f' at z must equal f' at f(z), point by point
            for point in (-2, -sympy.Rational(1, 2), sympy.Rational(1, 2), 2):
                at_z = activation.local_derivative(point)
                at_a = activation.local_derivative(activation.function(point))
                assert sympy.simplify(at_z - at_a) == 0, (name, point)
