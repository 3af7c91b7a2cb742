"""verify at real size: every entry against autograd, finite differences sampled, the skipped closed form said."""

from __future__ import annotations

import pytest
import torch

import numeric._verify
from numeric import CompiledGradients, check_with_gradcheck, compile_gradients, random_values, verify
from numeric._finite_differences import Probe, sampled_finite_differences
from numeric._torch_models import autograd_loss_and_gradients
from numeric._verify import finite_differences
from numeric.cli import main
from symbolic import InputError, Network, ResourceError, derive

MNIST = Network([784, 128, 10], activations=["relu", "softmax"], loss="cross_entropy", bias=True)


def _one_entry_off(compiled: CompiledGradients, name: str, amount: float) -> CompiledGradients:
    """A compiled function whose gradient of ``name`` is wrong in one entry only."""
    position = compiled.names.index(name)
    gradients_only, with_loss = compiled._gradients_only, compiled._with_loss

    def shift(gradients):
        gradients = list(gradients)
        wrong = gradients[position].clone()
        wrong.view(-1)[wrong.numel() // 2] += amount
        gradients[position] = wrong
        return gradients

    def wrong_with_loss(*args):
        loss, *gradients = with_loss(*args)
        return [loss, *shift(gradients)]

    shifted = lambda *a: shift(gradients_only(*a))  # noqa: E731
    return CompiledGradients(compiled.derivation, compiled.form, shifted, lambda: wrong_with_loss)


def test_mnist_sized_network_is_verified_with_sampled_finite_differences():
    report = verify(derive(MNIST))
    assert report.ok and report.gradcheck is True
    # every entry is compared with autograd: the comparison holds the whole gradients
    for name, (rows, cols) in MNIST.parameter_shapes.items():
        assert report.compiled[name].shape == report.autograd[name].shape == (rows, cols)
    assert report.closed_form is None and "over the limit" in report.closed_form_note
    assert "sampled" in report.gradcheck_detail and "sampled" in str(report)
    assert "closed form (exact): skipped" in str(report)


def test_sampled_gradcheck_catches_one_wrong_entry():
    network = Network([30, 20, 5], activations="tanh", loss="mse", bias=True)
    compiled = compile_gradients(derive(network))
    values = random_values(network, 3, 0)
    assert check_with_gradcheck(compiled, values, "sample")
    for name in compiled.names:
        assert not check_with_gradcheck(_one_entry_off(compiled, name, 0.5), values, "sample"), name


@pytest.mark.parametrize("mode", ["full", "sample"])
def test_each_gradcheck_mode_catches_doubled_gradients(mode, doubled_gradients):
    network = Network([3, 4, 2], activations="sigmoid", loss="half_sse", bias=True)
    broken = doubled_gradients(compile_gradients(derive(network)))
    report = verify(derive(network), gradcheck=mode, compiled=broken)
    assert report.gradcheck is False and not report.ok


def test_gradcheck_modes_and_their_report():
    small = derive(Network([2, 3, 1], activations="tanh", loss="sse"))
    assert "every entry" in verify(small).gradcheck_detail  # auto: full on a small network
    assert "every entry" in verify(small, gradcheck="full").gradcheck_detail
    off = verify(small, gradcheck="off")
    assert off.gradcheck is None and off.gradcheck_detail == "" and "gradcheck" not in str(off)
    assert verify(small, gradcheck=False).gradcheck is None  # the old boolean spelling still works
    with pytest.raises(InputError, match=r"unknown gradcheck mode 'sometimes'.*full, sample, off"):
        verify(small, gradcheck="sometimes")


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys):
    derivation = derive(Network([2, 3, 1], activations="tanh", loss="sse"))
    verify(derivation)  # under pytest stdout is not a terminal: no bar
    assert capsys.readouterr().err == ""
    verify(derivation, progress=True)
    shown = capsys.readouterr().err
    assert "finite differences" in shown and "verify: closed form (SymPy)" in shown


def test_cli_gradcheck_option(capsys):
    assert main(["verify", "--sizes", "3,2", "--gradcheck", "sample"]) == 0
    assert "sampled: per parameter one random direction" in capsys.readouterr().out
    assert main(["verify", "--sizes", "3,2", "--gradcheck", "off"]) == 0
    assert "gradcheck" not in capsys.readouterr().out


def test_closed_form_check_runs_on_small_networks_and_is_not_skipped():
    report = verify(derive(Network([2, 2, 1], activations="sigmoid", loss="half_sse")), batch=2)
    assert report.closed_form is not None and report.closed_form_note == ""


def test_sample_mode_draws_with_the_seed(monkeypatch):
    """The probes (their entries and random directions, seen through ⟨g, v⟩) follow the seed alone."""
    drawn = []
    real = numeric._verify.sampled_finite_differences

    def spy(*args, **kwargs):
        results = real(*args, **kwargs)
        drawn.append([(r.probe, r.analytical) for r in results])
        return results

    monkeypatch.setattr(numeric._verify, "sampled_finite_differences", spy)
    network = Network([20, 10, 3], activations="tanh", loss="sse")
    values = random_values(network, 2, 0)
    compiled = compile_gradients(derive(network))
    for seed in (1, 1, 2):
        assert check_with_gradcheck(compiled, values, "sample", seed=seed)
    assert drawn[0] == drawn[1] and drawn[0] != drawn[2]


def test_auto_mode_switches_at_the_documented_limit_and_the_readme_says_so():
    from pathlib import Path

    from numeric._verify import FULL_GRADCHECK_LIMIT, SAMPLED_ENTRIES

    at_limit = Network([FULL_GRADCHECK_LIMIT, 1], "identity", "sse")
    above = Network([FULL_GRADCHECK_LIMIT + 1, 1], "identity", "sse")
    assert "every entry" in verify(derive(at_limit), gradcheck="auto").gradcheck_detail
    assert "sampled" in verify(derive(above), gradcheck="auto").gradcheck_detail
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"full up to {FULL_GRADCHECK_LIMIT:,} parameters" in readme
    assert (
        f"{SAMPLED_ENTRIES}\n  random entries per parameter" in readme or f"{SAMPLED_ENTRIES} random entries" in readme
    )


def test_progress_bar_shows_on_a_terminal(monkeypatch, capsys):
    monkeypatch.setattr(numeric._verify.sys.stdout, "isatty", lambda: True)
    verify(derive(Network([2, 3, 1], activations="tanh", loss="sse")))
    assert "finite differences" in capsys.readouterr().err


# --- size: finite differences linear in depth, memory refused up front --------------------------------------

DEEP = Network([3] * 201, "tanh", "half_sse")  # 200 layers


@pytest.fixture(scope="module")
def deep():
    """A 200-layer network, compiled, at values whose gradients reach the first layer (W ≈ I, not vanishing)."""
    compiled = compile_gradients(derive(DEEP))
    values = random_values(DEEP, 2, 0)
    for name in DEEP.parameter_shapes:
        values[name] = torch.eye(3, dtype=torch.float64) + 0.1 * values[name]
    return compiled, values


def _one_gradient_doubled(compiled: CompiledGradients, name: str) -> CompiledGradients:
    position = compiled.names.index(name)
    gradients_only, with_loss = compiled._gradients_only, compiled._with_loss

    def double(gradients):
        gradients = list(gradients)
        gradients[position] = 2 * gradients[position]
        return gradients

    return CompiledGradients(
        compiled.derivation,
        compiled.form,
        lambda *a: double(gradients_only(*a)),
        lambda: lambda *a: [(out := with_loss(*a))[0], *double(out[1:])],
    )


def test_sampled_finite_differences_catch_a_wrong_first_layer_of_200_in_one_pass(deep, monkeypatch):
    import numeric._finite_differences as fd

    compiled, values = deep
    passes = []
    real = fd._activation_module
    monkeypatch.setattr(fd, "_activation_module", lambda rule: passes.append(rule) or real(rule))
    assert all(finite_differences(compiled, values, "sample").values())
    assert len(passes) == DEEP.depth  # one batched forward: each layer once, not once per parameter
    results = finite_differences(_one_gradient_doubled(compiled, "W1"), values, "sample")
    assert results["W1"] is False and all(results[name] for name in results if name != "W1")


def test_a_random_direction_is_a_unit_vector():
    from numeric._finite_differences import _direction

    direction = _direction(torch.empty(300, 200, dtype=torch.float64), torch.Generator().manual_seed(4))
    assert torch.linalg.vector_norm(direction).item() == pytest.approx(1.0, rel=1e-12)
    assert direction.dtype == torch.float64 and (direction != 0).all()


def test_each_probe_is_the_central_difference_of_the_reference_loss():
    """The copies riding along one pass give what moving one entry and rerunning autograd's forward gives
    (entries of x, of a bias and of weights in the first, a middle and the last layer)."""
    network = Network([3, 4, 4, 2], ["tanh", "sigmoid", "softplus"], "mse", bias=True)
    values = random_values(network, 3, 1)
    params = {name: values[name] for name in network.parameter_shapes}
    reference = autograd_loss_and_gradients(network, values["x"], values["y"], params, ("x",))[1]
    probes = [Probe("x", 4), Probe("b2", 3), Probe("W1", 5), Probe("W2", 13), Probe("W3", 6), Probe("W3", 0)]
    generator = torch.Generator().manual_seed(0)
    results = sampled_finite_differences(
        network, values["x"], values["y"], params, reference, probes, generator, lambda loss: 1e-7
    )
    step = 1e-6
    assert sorted(map(repr, (r.probe for r in results))) == sorted(map(repr, probes))  # in the pass's order
    for result in results:
        probe = result.probe
        moved = {name: value.clone() for name, value in values.items()}
        losses = []
        for sign in (1, -1):
            moved[probe.name].view(-1)[probe.entry] = values[probe.name].view(-1)[probe.entry] + sign * step
            rest = {name: moved[name] for name in network.parameter_shapes}
            losses.append(autograd_loss_and_gradients(network, moved["x"], moved["y"], rest)[0].item())
        assert result.numerical == pytest.approx((losses[0] - losses[1]) / (2 * step), rel=1e-6, abs=1e-8)
        assert result.analytical == reference[probe.name].view(-1)[probe.entry].item()
        assert result.ok, probe


def test_verify_refuses_a_run_that_cannot_fit_in_one_line(monkeypatch):
    import symbolic._memory
    from numeric._checks import verify_memory

    drawn = []
    monkeypatch.setattr(numeric._verify, "sample_arrays", lambda *a, **k: drawn.append(a))
    monkeypatch.setattr(symbolic._memory, "available_memory", lambda: 50 * 2**20)  # 50 MiB
    network = Network([2000, 2000, 10], ["relu", "softmax"], "cross_entropy")  # 4M weights: 32 MB a copy
    with pytest.raises(ResourceError) as caught:
        verify(derive(network), batch=4)
    message = str(caught.value)
    parts = verify_memory(network, 4, torch.float64, "sample")
    needed = sum(parts.values())
    assert "\n" not in message and all(name in message for name in parts) and caught.value.needed == needed
    assert "0.05 GiB of memory is available" in message and drawn == []
    assert needed > 4 * 8 * network.parameter_count  # values, compiled, autograd's copy and its .grad at least


def test_the_memory_estimate_covers_what_verify_holds():
    """Each part of the estimate covers what it names, measured on the tensors themselves: the values, the
    compiled gradients the report keeps, autograd's module (weights and their .grad); the total is not a
    bound on the whole process, which torch's allocator and the import add to."""
    from numeric._checks import verify_memory
    from numeric._torch_models import to_torch

    network = Network([300, 200, 10], ["tanh", "softmax"], "cross_entropy", bias=True)
    values = random_values(network, 16, 0)
    report = verify(derive(network), values)
    parts = verify_memory(network, 16, torch.float64, "sample")
    module = to_torch(network, {name: values[name] for name in network.parameter_shapes})
    assert parts["values"] >= sum(t.nbytes for t in values.values())
    assert parts["compiled"] >= sum(t.nbytes for t in report.compiled.values())
    assert parts["autograd"] >= 2 * sum(p.nbytes for p in module.parameters())  # the weights and their .grad
    assert parts["finite differences"] >= sum(t.nbytes for t in report.compiled.values())  # the gradients checked
    assert sum(parts.values()) <= 12 * sum(t.nbytes for t in values.values())


def test_the_cli_refuses_a_network_that_cannot_fit_before_drawing(capsys):
    code = main(["verify", "--sizes", "100000,100000,100000"])  # 2e10 weights: 160 GB
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and err.startswith("chainrule: error: ")
    assert "needs about" in err and "available" in err


def test_the_cli_exits_3_for_the_environment_when_memory_is_short(capsys):
    from numeric.cli import EXIT_ENVIRONMENT

    assert main(["verify", "--sizes", "100000,100000,100000"]) == EXIT_ENVIRONMENT


def test_the_cli_refuses_a_run_that_cannot_fit_before_drawing_its_values(monkeypatch, capsys):
    """50000-50000-10: the draw alone fits (18.6 GiB of 22), the whole run (~112 GiB) does not: the refusal must
    come before the draw fills the memory, with the run's estimate, not after."""
    import numeric
    import symbolic._memory

    def drawn(*args, **kwargs):
        raise AssertionError("values were drawn before the run's memory was estimated")

    monkeypatch.setattr(numeric, "random_values", drawn)
    monkeypatch.setattr(symbolic._memory, "available_memory", lambda: 22 * 2**30)  # this machine's, wherever it runs
    from numeric.cli import EXIT_ENVIRONMENT

    assert main(["verify", "--sizes", "50000,50000,10"]) == EXIT_ENVIRONMENT
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("chainrule: error: verify of 50000-50000-10") and "finite differences" in line
