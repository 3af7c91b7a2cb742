"""PyTorch's conventions: reduction="mean", losses on logits, loss modules, rows as samples, .grad's layout."""

from __future__ import annotations

import warnings

import pytest
import sympy
import torch
from torch import nn

from numeric import compile_gradients, from_torch, gradients, random_values, verify
from symbolic import InputError, Network, NetworkError, UnsupportedModule, derive, logsumexp

B = 5


def _classifier(outputs: int, final: nn.Module | None = None) -> nn.Sequential:
    torch.manual_seed(outputs)
    layers = [nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, outputs)]
    return nn.Sequential(*layers, *([final] if final is not None else [])).double()


def _cases():
    """(id, model, loss module, targets) for every loss module and reduction, with one output and several."""
    generator = torch.Generator().manual_seed(1)
    cases = []
    for reduction in ("sum", "mean"):
        for outputs in (1, 3):
            regression = torch.randn(B, outputs, generator=generator, dtype=torch.float64)
            probabilities = torch.rand(B, outputs, generator=generator, dtype=torch.float64)
            cases += [
                (f"mse-{outputs}-{reduction}", _classifier(outputs), nn.MSELoss(reduction=reduction), regression),
                (
                    f"bce-{outputs}-{reduction}",
                    _classifier(outputs, nn.Sigmoid()),
                    nn.BCELoss(reduction=reduction),
                    probabilities,
                ),
                (
                    f"bce_logits-{outputs}-{reduction}",
                    _classifier(outputs),
                    nn.BCEWithLogitsLoss(reduction=reduction),
                    probabilities,
                ),
            ]
        indices = torch.randint(0, 4, (B,), generator=generator)
        distribution = torch.softmax(torch.randn(B, 4, generator=generator, dtype=torch.float64), 1)
        ce = nn.CrossEntropyLoss(reduction=reduction)
        unnormalised = torch.rand(B, 4, generator=generator, dtype=torch.float64)  # torch allows these too
        cases += [
            (f"ce-indices-{reduction}", _classifier(4), ce, indices),
            (f"ce-probabilities-{reduction}", _classifier(4), ce, distribution),
            (f"ce-unnormalised-{reduction}", _classifier(4), ce, unnormalised),
        ]
    return cases


CASES = _cases()


@pytest.mark.parametrize("model, loss_fn, targets", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gradients_equal_what_backward_leaves_in_grad(model, loss_fn, targets):
    inputs = torch.randn(B, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ours = gradients(model, loss_fn, inputs, targets)
    model.zero_grad()
    loss_fn(model(inputs), targets).backward()
    expected = {name: p.grad for name, p in model.named_parameters()}
    assert list(ours) == list(expected)  # named_parameters()'s names, in its order
    for name, grad in expected.items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-10, atol=1e-12, msg=name)


def test_mean_reduction_divides_the_sum_by_the_batch():
    summed = Network([3, 4, 2], ["tanh", "identity"], "mse", bias=True)
    mean = Network([3, 4, 2], ["tanh", "identity"], "mse", bias=True, reduction="mean")
    values = random_values(summed, 6, 0)
    params = {name: values[name] for name in summed.parameter_shapes}
    sum_grads = compile_gradients(derive(summed))(values["x"], values["y"], params)
    mean_grads = compile_gradients(derive(mean))(values["x"], values["y"], params)
    for name in params:
        torch.testing.assert_close(mean_grads[name] * 6, sum_grads[name], rtol=1e-12, atol=1e-14)
    assert verify(derive(mean), values).ok


@pytest.mark.parametrize("form", ["text", "markdown", "latex"])
def test_derivation_shows_the_one_over_b(form):
    mean = derive(Network([2, 2], "identity", "mse", reduction="mean"))
    summed = derive(Network([2, 2], "identity", "mse"))
    mark = {"text": "/B", "markdown": r"\frac{", "latex": r"\frac{"}[form]
    one_over_b = {"text": "/B", "markdown": "{B}", "latex": "{B}"}[form]
    text, plain = getattr(mean, form)(), getattr(summed, form)()
    assert mark in text and one_over_b in text
    assert one_over_b not in plain
    assert "mean" in text and "divided by the batch size B" in text


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "bce_with_logits"])
def test_losses_on_logits_stay_finite_for_huge_logits(loss, dtype):
    network = Network([2, 3], "identity", loss, bias=True)
    x = torch.tensor([[1.0, -1.0], [0.5, 2.0]], dtype=dtype)
    params = {"W1": torch.tensor([[400.0, 0.0], [0.0, -400.0], [1.0, 1.0]], dtype=dtype), "b1": torch.zeros(3, 1)}
    params["b1"] = params["b1"].to(dtype)
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=dtype)
    loss_value, ours = compile_gradients(derive(network)).value_and_grad(x, y, params)
    assert torch.isfinite(loss_value) and all(torch.isfinite(g).all() for g in ours.values())
    reference = verify(derive(network), {"x": x, "y": y, **params}, dtype=torch.float64, gradcheck="off")
    for name in params:
        torch.testing.assert_close(ours[name].double(), reference.autograd[name], rtol=1e-4, atol=1e-4)


def test_logsumexp_derivative_is_sympy_diff_of_its_definition():
    z = sympy.symbols("z1:4", real=True)
    defined = sympy.log(sum(sympy.exp(zi) for zi in z))
    for zi in z:
        ours = sympy.diff(logsumexp(*z), zi).rewrite(sympy.log)
        assert sympy.simplify(ours - sympy.diff(defined, zi)) == 0


def test_softmax_without_dim_is_read_as_pytorch_reads_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3), nn.Softmax()).double()
    network, _ = from_torch(model, loss="cross_entropy")
    assert network.activations[-1] == "softmax"
    inputs = torch.randn(5, 3, dtype=torch.float64)
    targets = torch.softmax(torch.randn(5, 3, dtype=torch.float64), 1)
    ours = gradients(model, "cross_entropy", inputs, targets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "Implicit dimension choice for softmax ..."
        model.zero_grad()
        (-(targets * torch.log(model(inputs))).sum()).backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(ours[name], parameter.grad, rtol=1e-10, atol=1e-12)


def test_from_torch_reads_each_loss_module_and_its_reduction():
    model = _classifier(3)
    assert from_torch(model, nn.MSELoss())[0].loss == "mse"
    assert from_torch(model, nn.MSELoss(reduction="sum"))[0].loss == "sse"
    assert from_torch(model, nn.CrossEntropyLoss())[0].reduction == "mean"
    assert from_torch(model, nn.CrossEntropyLoss(reduction="sum"))[0].reduction == "sum"
    assert from_torch(model, "mse", reduction="mean")[0].reduction == "mean"


@pytest.mark.parametrize(
    "loss, match",
    [
        (nn.L1Loss(), r"L1Loss\(\) is not supported; supported: nn.MSELoss"),
        (nn.MSELoss(reduction="none"), "reduction='none'; supported: 'sum', 'mean'"),
        (nn.CrossEntropyLoss(label_smoothing=0.1), "label_smoothing is not supported"),
        (nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)), "pos_weight is not supported"),
        (nn.CrossEntropyLoss(weight=torch.ones(3)), "weight is not supported"),
    ],
)
def test_unsupported_loss_modules_are_named(loss, match):
    with pytest.raises(UnsupportedModule, match=match):
        from_torch(_classifier(3), loss)


def test_losses_on_logits_need_an_identity_output():
    with pytest.raises(NetworkError, match=r"softmax_cross_entropy.*identity"):
        Network([2, 3], "softmax", "softmax_cross_entropy")
    with pytest.raises(NetworkError, match="single output unit"):
        Network([2, 1], "identity", "softmax_cross_entropy")
    with pytest.raises(NetworkError, match="unknown reduction 'avg'; allowed: sum, mean"):
        Network([2, 1], "identity", "mse", reduction="avg")


@pytest.mark.parametrize(
    "targets, match",
    [
        (torch.tensor([0, 1, 4, 0, 1]), r"class-index targets must lie in 0..3; got 0..4"),
        (torch.tensor([0, 1]), r"class-index targets have shape \[2\]; expected \[5\]"),
        (torch.zeros(5, 3, dtype=torch.float64), r"targets has shape \[5, 3\]; expected \[5, 4\] or class indices"),
    ],
)
def test_bad_targets_are_named(targets, match):
    inputs = torch.zeros(5, 4, dtype=torch.float64)
    with pytest.raises(InputError, match=match):
        gradients(_classifier(4), nn.CrossEntropyLoss(), inputs, targets)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "bce_with_logits", "mean_bce_with_logits"])
def test_derivations_on_logits_typeset_with_pdflatex(loss, pdflatex, tmp_path):
    from symbolic import build_pdf

    derivation = derive(Network([3, 4, 3], ["tanh", "identity"], loss, bias=True, reduction="mean"))
    build_pdf(derivation.latex(document=True), tmp_path / "d.pdf")
    assert (tmp_path / "d.pdf").stat().st_size > 0


def test_cli_reduction_option(capsys):
    from numeric.cli import main

    assert main(["verify", "--sizes", "3,2", "--activation", "identity", "--loss", "mse", "--reduction", "mean"]) == 0
    assert "mean over the batch" in capsys.readouterr().out
    assert main(["derive", "--sizes", "3,2", "--loss", "softmax_cross_entropy", "--activation", "identity"]) == 0
    assert "logsumexp" in capsys.readouterr().out
