"""backend="c": the whole gradient program as one generated C function, against torch autograd.

Skipped (not failed) where no C compiler exists, except the fallback test, which simulates that machine.
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from test_general import networks
from test_saturation import GAPS, PAIRINGS, X, Y, _weights, reference

from numeric import CompiledGradients, autograd_loss_and_gradients, compile_gradients, random_values
from numeric._c import NoCompilerWarning
from numeric._c._build import find_compiler, load
from numeric._c._kernel import PRELUDE
from symbolic import InputError, Network, derive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_compiler = pytest.mark.skipif(find_compiler() is None, reason="no C compiler (CC, cc, gcc, clang) here")


@pytest.fixture(autouse=True, scope="module")
def _cache_in_a_temporary_folder(tmp_path_factory):
    """Kernels go to a folder of the test run's, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHAINRULE_CACHE_DIR", str(tmp_path_factory.mktemp("chainrule-cache")))
        yield


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.abs().max().item()
    return (ours.double() - reference).abs().max().item() / (scale if scale > 0 else 1.0)


def _cancellation(network: Network, values, params, reference) -> dict[str, float]:
    """How much each parameter's sum over the batch cancels: the largest Σ_t |g_t| (the samples' own gradients,
    autograd in float64) over the largest |Σ_t g_t|. A float32 sum keeps about 2⁻²⁴ of its terms' size, so its
    relative error grows by this factor whatever the order of the additions (torch's happens to lose less,
    or more, than the kernel's: at -2.6e-8 from two samples of ±6.1e-5 autograd's float32 erred by 4.5e-5,
    the kernel's by 6.9e-4, both within 2.5 roundings of the terms)."""
    batch = values["x"].shape[1]
    scale = 1 / batch if network.reduction == "mean" else 1.0  # one sample alone is its own mean
    terms = {name: torch.zeros_like(gradient) for name, gradient in reference.items() if name != "x"}
    for t in range(batch):
        _, single = autograd_loss_and_gradients(network, values["x"][:, t : t + 1], values["y"][:, t : t + 1], params)
        for name in terms:
            terms[name] += single[name].abs() * scale
    return {name: float(terms[name].max()) / max(float(reference[name].abs().max()), 1e-300) for name in terms}


@functools.cache
def _compiled(network: Network, wrt: tuple[str, ...], chunk) -> CompiledGradients:
    return compile_gradients(derive(network, wrt=wrt), backend="c", chunk=chunk)


@needs_compiler
@given(
    network=networks(),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 9),
    chunk=st.sampled_from(["auto", None, 1, 2, 4]),
    input_gradient=st.booleans(),
)
@example(  # W1's sum over the batch cancels to 4e-4 of its terms (_cancellation)
    network=Network((1, 1, 1, 1, 2), ("sigmoid", "sigmoid", "sigmoid", "softmax"), "cross_entropy"),
    seed=0,
    batch=2,
    chunk="auto",
    input_gradient=False,
)
def test_c_gradients_and_loss_equal_autograd(network, seed, batch, chunk, input_gradient):
    """Every activation, loss, bias and reduction; tiles of 1, 2 or 4 samples (the last one shorter), or the
    whole batch; ∂L/∂x when derived. float64 to 1e-10 of autograd in float64; float32 (the same kernel's
    other function) as close to it as autograd in float32 is, within 4× or 1e-4 (a gradient that cancels to
    1e-4 of its terms keeps about 3 digits in float32, autograd's too)."""
    wrt = ("x",) if input_gradient else ()
    compiled = _compiled(network, wrt, chunk)
    assert compiled.backend == "c"
    values = random_values(network, batch, seed)
    params = {name: values[name] for name in network.parameter_shapes}
    loss, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params, wrt)
    singles = {name: tensor.float() for name, tensor in values.items()}
    loss32, reference32 = autograd_loss_and_gradients(
        network, singles["x"], singles["y"], {name: singles[name] for name in params}, wrt
    )
    cancels = _cancellation(network, values, params, reference)
    for dtype in (torch.float64, torch.float32):
        x, y = values["x"].to(dtype), values["y"].to(dtype)
        typed = {name: tensor.to(dtype) for name, tensor in params.items()}
        ours = compiled(x, y, typed)
        our_loss, with_loss = compiled.value_and_grad(x, y, typed)

        def tolerance(name: str, dtype=dtype) -> float:
            if dtype == torch.float64:
                return 1e-10
            theirs = loss32 if name == "loss" else reference32[name]
            own = 8 * 2.0**-24 * cancels.get(name, 1.0)  # a few roundings of float32, times the sum's cancellation
            return max(1e-4, own, 4 * _relative_error(theirs, loss if name == "loss" else reference[name]))

        assert our_loss.dtype == dtype and our_loss.shape == ()
        assert _relative_error(our_loss, loss) <= tolerance("loss"), dtype
        assert list(ours) == list(reference)
        for name in reference:
            assert ours[name].shape == reference[name].shape and ours[name].dtype == dtype
            assert _relative_error(ours[name], reference[name]) <= tolerance(name), (dtype, name)
            assert torch.equal(with_loss[name], ours[name]), name  # the loss's lines change no gradient


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gap", GAPS)
@pytest.mark.parametrize("activation, loss", PAIRINGS)
def test_c_gradients_exact_at_saturation(activation, loss, gap, dtype):
    """Logits up to 10⁴ apart, against test_saturation's mpmath reference (50 digits)."""
    function = _compiled(Network([1, 3], activation, loss), (), "auto")
    x, y = torch.tensor(X, dtype=dtype), torch.tensor(Y, dtype=dtype)
    ours = function(x, y, {"W1": torch.tensor(_weights(gap), dtype=dtype)})["W1"].double().flatten()
    exact = torch.tensor(reference(activation, loss, "sum", gap), dtype=torch.float64)
    assert torch.isfinite(ours).all(), (ours, exact)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(ours, exact, rtol=tolerance, atol=tolerance * float(exact.abs().max()))


@needs_compiler
def test_softplus_is_exact_where_its_exponential_overflows():
    """softplus(z) = log1p(e^−|z|) + max(z, 0): at z = ±800 (e^800 overflows float64) the loss and gradient are
    autograd's (whose softplus is exactly log(1 + e^z) with the threshold removed), not inf or NaN."""
    network = Network([1, 1, 1], ["softplus", "identity"], "half_sse", bias=True)
    compiled = _compiled(network, (), "auto")
    x, y = torch.tensor([[800.0, -800.0, 0.5]], dtype=torch.float64), torch.tensor([[1.0, 2.0, 3.0]])
    params = {"W1": torch.ones(1, 1), "b1": torch.zeros(1, 1), "W2": torch.ones(1, 1), "b2": torch.zeros(1, 1)}
    params = {name: tensor.double() for name, tensor in params.items()}
    loss, reference = autograd_loss_and_gradients(network, x, y.double(), params)
    our_loss, ours = compiled.value_and_grad(x, y.double(), params)
    assert _relative_error(our_loss, loss) <= 1e-14
    for name in reference:
        assert _relative_error(ours[name], reference[name]) <= 1e-14, name


@needs_compiler
def test_the_kernels_float_exponential_is_within_two_ulp_of_the_exact_one():
    """chainrule_expf (the float kernel's inline e^x) on 400 001 floats from -110 to 95 and the edges, against
    e^x in float64 rounded once to float (torch): within 2 ulp where that is a normal float, within the
    smallest subnormal below, inf where it overflows, 0 where it underflows, NaN for NaN."""
    source = PRELUDE + textwrap.dedent(
        """
        void chainrule_test_expf(int64_t n, const float *restrict x, float *restrict out) {
            for (int64_t i = 0; i < n; ++i) out[i] = chainrule_expf(x[i]);
        }
        """
    )
    function = load(source, find_compiler()).chainrule_test_expf
    function.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p]
    edges = [float("inf"), -float("inf"), float("nan"), 0.0, -0.0, 1e-30, 88.72283, 88.7229, 89.0, 89.5]
    edges += [-87.33654, -103.97, -103.98, -104.0, -104.5]  # the last normal result, the last nonzero one, past it
    x = torch.cat([torch.linspace(-110, 95, 400_001), torch.tensor(edges)])
    x = x.to(torch.float32).contiguous()
    ours = torch.empty_like(x)
    function(x.numel(), x.data_ptr(), ours.data_ptr())
    exact = torch.exp(x.double()).float()  # correctly rounded float e^x (inf where it overflows)
    assert torch.equal(torch.isnan(ours), torch.isnan(exact))
    assert torch.equal(torch.isinf(ours), torch.isinf(exact))
    finite = torch.isfinite(exact)
    allowed = torch.maximum(exact.double().abs() * 2.0**-22, torch.tensor(2.0**-149, dtype=torch.float64))  # 2 ulp
    error = (ours.double() - exact.double()).abs()
    assert (error[finite] <= allowed[finite]).all(), x[finite][(error[finite] > allowed[finite])][:5]
    assert (ours[x < -104] == 0).all() and (ours[x > 89] == float("inf")).all()


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rows_longer_than_a_block_of_columns_are_summed_block_by_block(dtype):
    """Layers of 70 and 40 units: products summed 64 (float) or 32 (double) columns at a time, then the rest
    (ROW_BYTES), in the forward, backward and gradient products alike; autograd's gradients in float64."""
    network = Network([70, 40, 3], ["tanh", "softmax"], "cross_entropy", bias=True)
    values = random_values(network, 7, 0)
    params = {name: values[name] for name in network.parameter_shapes}
    _, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params, ("x",))
    compiled = _compiled(network, ("x",), 3)
    ours = compiled(values["x"].to(dtype), values["y"].to(dtype), {name: t.to(dtype) for name, t in params.items()})
    for name in reference:
        assert _relative_error(ours[name], reference[name]) <= (1e-10 if dtype == torch.float64 else 1e-5), name


@needs_compiler
def test_inputs_laid_out_otherwise_give_the_same_gradients():
    """A transposed view (not contiguous) is copied first; a contiguous slice with a storage offset is read
    where it lies. Both give autograd's gradients."""
    network = Network([3, 4, 2], ["tanh", "sigmoid"], "bce", bias=True)
    values = random_values(network, 5, 3)
    params = {name: values[name] for name in network.parameter_shapes}
    _, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params)
    compiled = _compiled(network, (), "auto")
    transposed = values["x"].T.contiguous().T
    padded = torch.cat([torch.zeros(2, 5, dtype=torch.float64), values["x"]])[2:]  # offset 10, contiguous
    assert not transposed.is_contiguous() and padded.is_contiguous() and padded.storage_offset() == 10
    for x in (transposed, padded):
        ours = compiled(x, values["y"], params)
        for name in reference:
            assert _relative_error(ours[name], reference[name]) <= 1e-12, name


@needs_compiler
def test_the_source_is_c_printed_from_the_program():
    """f.source is the C: one function per floating type, every line of the matrix program named in it."""
    derivation = derive(Network([2, 3, 2], ["gelu", "softmax"], "cross_entropy", bias=True), wrt=("x",))
    source = compile_gradients(derivation, backend="c").source
    assert "int chainrule_gradients_f32(" in source and "int chainrule_gradients_f64(" in source
    assert "erff(" in source and "erf(" in source  # gelu' through SymPy's C99 printer, in each type
    for step in derivation.matrix_program.steps:
        assert f"/* {step.target} = " in source, step.target


@needs_compiler
def test_bad_inputs_are_refused_in_one_line():
    compiled = _compiled(Network([2, 2], "sigmoid", "half_sse"), (), "auto")
    x, y, w = torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 2)
    with pytest.raises(InputError, match="expected"):
        compiled(x[:1], y, {"W1": w})
    with pytest.raises(InputError, match="same dtype"):
        compiled(x.double(), y, {"W1": w})
    with pytest.raises(InputError, match="backend='c'"):
        compile_gradients(derive(Network([2, 2], "sigmoid", "half_sse")), "elementwise", backend="c")


_PROCESS = textwrap.dedent(
    """
    import torch
    from numeric import compile_gradients, random_values
    from numeric._c import _build
    from symbolic import Network, derive

    network = Network([3, 5, 2], ["silu", "softmax"], "cross_entropy", bias=True, reduction="mean")
    f = compile_gradients(derive(network), backend="c")
    values = random_values(network, 4, 0)
    gradients = f(values["x"], values["y"], {name: values[name] for name in network.parameter_shapes})
    print(_build.compilations, float(gradients["W1"].sum()))
    """
)


@needs_compiler
def test_a_second_process_loads_the_cached_kernel(tmp_path):
    """The first process compiles the kernel (1 compilation), a second one, with another hash seed, finds it
    on disk (0): the source is the same text in every process, and the library is named by its hash."""
    environment = {**os.environ, "CHAINRULE_CACHE_DIR": str(tmp_path), "PYTHONPATH": ROOT}
    runs = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", _PROCESS],
            env={**environment, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        runs.append(done.stdout.split())
    assert [run[0] for run in runs] == ["1", "0"]
    assert runs[0][1] == runs[1][1]
    assert len(list((tmp_path / "c").glob("*.so"))) == 1


def test_without_a_compiler_it_says_so_and_runs_the_torch_backend(monkeypatch):
    """CC naming no program stands for a machine without a C compiler."""
    monkeypatch.setenv("CC", "/nonexistent/chainrule-test-cc")
    network = Network([2, 3, 2], ["relu", "identity"], "softmax_cross_entropy", bias=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_gradients(derive(network), backend="c")
    (warning,) = caught
    assert warning.category is NoCompilerWarning and "no C compiler" in str(warning.message)
    assert "\n" not in str(warning.message)  # one line
    assert compiled.backend is None and type(compiled) is CompiledGradients
    values = random_values(network, 3, 0)
    params = {name: values[name] for name in network.parameter_shapes}
    _, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params)
    ours = compiled(values["x"], values["y"], params)
    for name in reference:
        assert _relative_error(ours[name], reference[name]) <= 1e-10, name
