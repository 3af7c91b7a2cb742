"""pytest helpers: ``assert_backward_matches`` fails with chainrule's diagnosis of a hand-written backward."""

from __future__ import annotations

from ._check_backward import BackwardReport, check_backward

__all__ = ["assert_backward_matches"]


def assert_backward_matches(fn, network, *args, **kwargs) -> BackwardReport:
    """``check_backward(fn, network, ...)``, raising AssertionError with the report when it is not ok.

    Takes the same arguments as :func:`numeric.check_backward` (a Network, or a model with its loss,
    inputs and targets); returns the report when every gradient matches.
    """
    __tracebackhide__ = True  # pytest shows the report, not this frame
    report = check_backward(fn, network, *args, **kwargs)
    if not report.ok:
        raise AssertionError(f"hand-written backward pass is wrong\n{report}")
    return report
