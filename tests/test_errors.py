"""Bad input gets a ValueError/TypeError that names the bad value and what is allowed."""

from __future__ import annotations

import pytest
import torch

from numeric import as_tensors, autograd_gradients, compile_gradients, verify
from symbolic import (
    TUTORIAL,
    TUTORIAL_VALUES,
    ChainruleError,
    ExpressionTooLarge,
    Network,
    derive,
)

NETWORK_CASES = [
    # (arguments, exception, fragments the message must contain)
    (([3],), ValueError, ["two or more", "[3]"]),
    (([],), ValueError, ["two or more"]),
    (([3, 0, 2],), ValueError, ["sizes[1]", "positive"]),
    (([3, -1],), ValueError, ["sizes[1]", "-1"]),
    (([3, 2.5],), TypeError, ["sizes[1]", "2.5", "float"]),
    (([3, True],), TypeError, ["sizes[1]", "True"]),
    (("3,4",), TypeError, ["sizes", "'3,4'"]),
    ((3,), TypeError, ["sizes", "3"]),
    (([3, 4, 2], "sigmod"), ValueError, ["'sigmod'", "sigmoid, tanh, relu, softplus, identity, softmax"]),
    (([3, 4, 2], ["tanh"]), ValueError, ["1 entries", "2 layer", "one per layer"]),
    (([3, 4, 2], ["tanh", "relu", "relu"]), ValueError, ["3 entries"]),
    (([3, 4, 2], ["softmax", "sigmoid"]), ValueError, ["'softmax'", "last layer", "layer 1"]),
    (([3, 4, 2], [1, "tanh"]), TypeError, ["layer 1", "1"]),
    (([3, 2], "sigmoid", "l2"), ValueError, ["'l2'", "half_sse, sse, mse, bce, mean_bce, cross_entropy"]),
    (([3, 2], "tanh", "cross_entropy"), ValueError, ["cross_entropy", "softmax", "'tanh'"]),
    (([3, 2], "relu", "bce"), ValueError, ["bce", "sigmoid", "'relu'"]),
    (([3, 2], "sigmoid", "half_sse", "yes"), TypeError, ["bias", "'yes'"]),
    (([3, 1], "softmax", "bce"), ValueError, ["softmax over a single output unit", "sigmoid"]),
]


@pytest.mark.parametrize("arguments, exception, fragments", NETWORK_CASES, ids=lambda v: repr(v)[:40])
def test_bad_networks(arguments, exception, fragments):
    with pytest.raises(exception) as caught:
        Network(*arguments)
    assert isinstance(caught.value, ChainruleError)
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))


def _tutorial_tensors():
    t = as_tensors(TUTORIAL_VALUES, torch.float64)
    return t["x"], t["y"], {"W1": t["W1"], "W2": t["W2"]}


def _with(**changes):
    x, y, params = _tutorial_tensors()
    values = {"x": x, "y": y, "params": params}
    for key, value in changes.items():
        if key in ("x", "y"):
            values[key] = value
        else:
            values["params"] = value(params)
    return values


INPUT_CASES = [
    (
        _with(params=lambda p: {**p, "W2": torch.zeros(3, 2, dtype=torch.float64)}),
        ValueError,
        ["W2", "[3, 2]", "[2, 2]"],
    ),
    (_with(params=lambda p: {"W1": p["W1"]}), ValueError, ["missing: W2"]),
    (_with(params=lambda p: {**p, "W3": p["W1"]}), ValueError, ["unknown: W3"]),
    (_with(params=lambda p: {**p, "W1": [[1.0], [2.0]]}), TypeError, ["W1", "torch.Tensor", "list"]),
    (_with(x=[[1.0]]), TypeError, ["x", "torch.Tensor"]),
    (_with(x=torch.ones(2, 1, dtype=torch.float64)), ValueError, ["x", "[2, 1]", "[1, B]"]),
    (_with(y=torch.ones(2, 3, dtype=torch.float64)), ValueError, ["y", "[2, 3]", "[2, 1]"]),
    (_with(x=torch.ones(1, 1, dtype=torch.int64)), TypeError, ["x", "int64", "floating"]),
    (_with(params=lambda p: {**p, "W2": p["W2"].float()}), ValueError, ["W2", "float32", "same dtype"]),
    (_with(params=lambda p: ["W1", "W2"]), TypeError, ["params", "mapping"]),
]


@pytest.mark.parametrize("case, exception, fragments", INPUT_CASES, ids=lambda v: repr(v)[:40])
@pytest.mark.parametrize("function", ["compiled", "autograd"])
def test_bad_inputs(case, exception, fragments, function):
    compiled = compile_gradients(derive(TUTORIAL))
    call = compiled if function == "compiled" else lambda x, y, p: autograd_gradients(TUTORIAL, x, y, p)
    with pytest.raises(exception) as caught:
        call(case["x"], case["y"], case["params"])
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))


def test_bad_arguments_to_the_pipeline():
    with pytest.raises(TypeError, match="Network"):
        derive("1,2,2")
    with pytest.raises(ValueError, match="closed_form_budget"):
        derive(TUTORIAL, closed_form_budget=-1)
    with pytest.raises(TypeError, match="Derivation"):
        compile_gradients(TUTORIAL)
    with pytest.raises(ValueError, match=r"'fast'.*matrix, elementwise"):
        compile_gradients(derive(TUTORIAL), form="fast")
    with pytest.raises(TypeError, match="Derivation"):
        verify(TUTORIAL)
    with pytest.raises(ValueError, match="unknown parameter 'W3'"):
        derive(TUTORIAL).closed_form("W3")
    with pytest.raises(ValueError, match=r"values\['W2'\] has shape \[2, 1\]"):
        derive(TUTORIAL).evaluate({**TUTORIAL_VALUES, "W2": [[1.0], [2.0]]})


def test_closed_form_refuses_above_its_budget_and_says_how_to_raise_it():
    network = Network([3] * 8, "tanh")
    derivation = derive(network, closed_form_budget=10_000)
    with pytest.raises(ExpressionTooLarge) as caught:
        derivation.gradients  # noqa: B018
    message = str(caught.value)
    assert "dL/dW1" in message and "budget of 10,000" in message and "closed_form_budget=" in message
    size = derivation.closed_form_size("W7")
    assert derivation.closed_form("W7", budget=size).shape == (3, 3)  # a small one still works


# verify's own edges: each a clear InputError/InputTypeError naming the value, never SymPy's or torch's.
def _tutorial_values_with(**changes):
    return {**TUTORIAL_VALUES, **changes}


VERIFY_CASES = [
    # (keyword arguments of verify, exception, fragments the message must contain)
    ({"values": _tutorial_values_with(W1=[[float("nan")], [2.0]])}, ValueError, ["values['W1']", "nan", "[0, 0]"]),
    ({"values": _tutorial_values_with(x=[[float("inf")]])}, ValueError, ["values['x']", "inf", "finite"]),
    ({"values": {k: v for k, v in TUTORIAL_VALUES.items() if k != "W1"}}, ValueError, ["missing: W1"]),
    ({"values": _tutorial_values_with(W2="three")}, TypeError, ["values['W2']", "str"]),
    ({"values": _tutorial_values_with(W2=[[1 + 2j, 0], [0, 0]])}, TypeError, ["values['W2']", "complex"]),
    ({"device": "cuda:7"}, ValueError, ["cuda:7", "this machine has: cpu"]),
    ({"device": "banana"}, ValueError, ["banana", "this machine has"]),
    ({"device": "meta"}, ValueError, ["meta", "no values"]),
    ({"dtype": torch.float16}, TypeError, ["float16", "float32 or float64"]),
    ({"dtype": torch.bfloat16}, TypeError, ["bfloat16", "wrong sign"]),
    ({"dtype": torch.int64}, TypeError, ["int64", "floating"]),
    ({"rtol": "1e-3"}, TypeError, ["rtol", "'1e-3'"]),
    ({"rtol": -1}, ValueError, ["rtol", "positive"]),
    ({"rtol": float("nan")}, ValueError, ["rtol", "nan"]),
    ({"gradcheck": "no"}, ValueError, ["'no'", "full"]),
    ({"compiled": "x"}, TypeError, ["CompiledGradients", "str"]),
    ({"batch": 0}, ValueError, ["batch", "at most 10,000"]),
    ({"batch": 10**12}, ValueError, ["batch", "1000000000000"]),
    ({"batch": 1.5}, TypeError, ["batch", "1.5"]),
    ({"seed": "a"}, TypeError, ["seed", "'a'"]),
]


@pytest.mark.parametrize("kwargs, exception, fragments", VERIFY_CASES, ids=lambda v: repr(v)[:50])
def test_bad_arguments_to_verify(kwargs, exception, fragments):
    if "cuda" in str(kwargs.get("device")) and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(exception) as caught:
        verify(derive(TUTORIAL), **kwargs)
    assert isinstance(caught.value, ChainruleError)
    for fragment in fragments:
        assert fragment in str(caught.value), (fragment, str(caught.value))


def test_verify_refuses_the_compiled_gradients_of_another_network():
    other = compile_gradients(derive(Network([2, 2])))
    with pytest.raises(TypeError, match=r"of this network \(1-2-2.*those of 2-2"):
        verify(derive(TUTORIAL), compiled=other)


def test_batch_and_seed_replace_the_tutorials_own_sample():
    assert verify(derive(TUTORIAL)).batch == 1
    assert verify(derive(TUTORIAL), batch=8).batch == 8
    assert verify(derive(TUTORIAL), seed=3).batch == 4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused_because_it_gets_the_sign_wrong(dtype):
    compiled = compile_gradients(derive(TUTORIAL))
    t = as_tensors(TUTORIAL_VALUES, dtype)
    with pytest.raises(TypeError, match=f"x has dtype {dtype}.*wrong sign"):
        compiled(t["x"], t["y"], {"W1": t["W1"], "W2": t["W2"]})
    # the reason given is true: the same generated code, run in half precision, flips the sign of dL/dW1
    raw = compiled._gradients_only(t["x"], t["y"], t["W1"], t["W2"])[0]
    exact = derive(TUTORIAL).evaluate(TUTORIAL_VALUES)["W1"]
    assert exact[0][0] > 0 and raw[0, 0].item() < 0
