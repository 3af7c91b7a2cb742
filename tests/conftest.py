"""Shared fixtures and the hypothesis profiles (CI: more examples, derandomised; or HYPOTHESIS_PROFILE)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from numeric import CompiledGradients
from symbolic import pdflatex_path

settings.register_profile("default", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(  # HYPOTHESIS_PROFILE=thorough pytest: a longer hunt before a release
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default"))


@pytest.fixture(scope="session")
def pdflatex() -> str:
    """The pdflatex executable; under CI its absence is a failure, elsewhere a skip."""
    path = pdflatex_path()
    if path is None:
        message = "pdflatex is not installed (CI installs TeX Live: see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")  # a factory without state: tests and module-wide fixtures may share it
def doubled_gradients():
    """Make a deliberately wrong compiled function (every gradient doubled), to show checks can fail."""

    def make(compiled: CompiledGradients) -> CompiledGradients:
        gradients_only, with_loss = compiled._gradients_only, compiled._with_loss  # builds it

        def wrong_gradients(*args):
            return [2 * g for g in gradients_only(*args)]

        def wrong_with_loss(*args):
            loss, *gradients = with_loss(*args)
            return [loss, *(2 * g for g in gradients)]

        return CompiledGradients(compiled.derivation, compiled.form, wrong_gradients, lambda: wrong_with_loss)

    return make
