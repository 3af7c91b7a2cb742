"""verify at real size: every entry against autograd, finite differences sampled, the skipped closed form said."""

from __future__ import annotations

import pytest

import numeric._verify
from numeric import CompiledGradients, check_with_gradcheck, compile_gradients, random_values, verify
from numeric.cli import main
from symbolic import InputError, Network, derive

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

    return CompiledGradients(compiled.derivation, compiled.form, lambda *a: shift(gradients_only(*a)), wrong_with_loss)


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
