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

from numeric import (
    REFERENCE_LOSSES,
    CompiledGradients,
    autograd_loss_and_gradients,
    compile_gradients,
    random_values,
    to_torch,
)
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


# --- wide layers: GEMM calls (a BLAS's, or the kernel's own packed GEMM) ----------------------------------------

_WIDE_NETWORKS = {
    # W1 97 × 300: the sum runs over two KC passes (256 + 44), 97 columns end inside a vector panel; W2 70 × 97
    # wide too, W3 3 × 70 narrow (_sum_of_rows) beside them; mean, bias, ∂L/∂x (read back from a tile)
    "300-97-70-3": Network(
        [300, 97, 70, 3], ["tanh", "sigmoid", "softmax"], "cross_entropy", bias=True, reduction="mean"
    ),
    # 1030 units: more columns than one packed block of B (NC = 1024), forward and backward
    "5-1030-7": Network([5, 1030, 7], ["softplus", "identity"], "softmax_cross_entropy"),
}


def _smooth_values(network: Network, batch: int, seed: int) -> dict[str, torch.Tensor]:
    """Gaussian values in float64: random_values' two-decimal grid makes a relu's z exactly 0 now and then, where
    the sums' order decides its derivative (a GEMM's order is not autograd's)."""
    generator = torch.Generator().manual_seed(seed)
    values = {"x": torch.randn(network.sizes[0], batch, generator=generator, dtype=torch.float64)}
    values["y"] = torch.softmax(torch.randn(network.sizes[-1], batch, generator=generator, dtype=torch.float64), 0)
    for name, shape in network.parameter_shapes.items():
        values[name] = torch.randn(*shape, generator=generator, dtype=torch.float64) / shape[-1] ** 0.5
    return values


@needs_compiler
@pytest.mark.parametrize("own_gemm", [False, True], ids=["blas", "own GEMM"])
@pytest.mark.parametrize("chunk, batch", [(10, 103), (None, 103), ("auto", 1)])
@pytest.mark.parametrize("label", list(_WIDE_NETWORKS))
def test_wide_layers_equal_autograd(label, chunk, batch, own_gemm):
    """Wide products as GEMM calls, across the blocks' edges: tiles of 10 samples (the last of 3) or one tile of
    103 (more than one packed block of A, MC = 96) or one sample; through the BLAS found here and through the
    kernel's own GEMM. float64 to 1e-10 of autograd, float32 as close as autograd's own float32 is (within 4×)."""
    network = _WIDE_NETWORKS[label]
    wrt = ("x",) if network.bias else ()
    compiled = compile_gradients(derive(network, wrt=wrt), backend="c", chunk=chunk)
    assert compiled.kernel.wide and "chainrule_gemm_f32(blas" in compiled.source
    if own_gemm:
        compiled.blas = dict.fromkeys(compiled.blas)
    elif not any(compiled.blas.values()):
        pytest.skip("no BLAS found here")
    values = _smooth_values(network, batch, 0)
    params = {name: values[name] for name in network.parameter_shapes}
    loss, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params, wrt)
    singles = {name: tensor.float() for name, tensor in values.items()}
    loss32, reference32 = autograd_loss_and_gradients(
        network, singles["x"], singles["y"], {name: singles[name] for name in params}, wrt
    )
    for dtype in (torch.float64, torch.float32):
        typed = {name: tensor.to(dtype) for name, tensor in values.items()}
        our_loss, ours = compiled.value_and_grad(typed["x"], typed["y"], {name: typed[name] for name in params})
        for name, theirs, exact in [("loss", loss32, loss), *((n, reference32[n], reference[n]) for n in reference)]:
            mine = our_loss if name == "loss" else ours[name]
            assert mine.dtype == dtype and mine.shape == exact.shape, name
            allowed = 1e-10 if dtype == torch.float64 else max(1e-5, 4 * _relative_error(theirs, exact))
            assert _relative_error(mine, exact) <= allowed, (dtype, name)


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_kernels_own_gemm_is_a_matrix_product(dtype):
    """chainrule_gemm (no BLAS passed): C = β C + op(A) op(B) against torch.mm, for every transposition, β = 0
    (C is not read: it holds NaN), 1 and 0.5, sizes off every block (MR = 6, two vectors, KC = 256, MC = 96),
    operands with a leading dimension wider than their rows."""
    from numeric._c import _gemm

    real, suffix = ("float", "f32") if dtype == torch.float32 else ("double", "f64")
    source = (
        PRELUDE
        + _gemm.PRELUDE
        + _gemm.source(real, suffix)
        + textwrap.dedent(
            f"""
        void chainrule_test_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const {real} *A, int64_t lda,
                                 const {real} *B, int64_t ldb, {real} beta, {real} *C, int64_t ldc, {real} *pack) {{
            chainrule_gemm_{suffix}(NULL, ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc, pack);
        }}
        """
        )
    )
    function = load(source, find_compiler()).chainrule_test_gemm
    scalar = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
    integer, pointer = ctypes.c_int64, ctypes.c_void_p
    function.argtypes = [ctypes.c_int, ctypes.c_int, integer, integer, integer, pointer, integer, pointer, integer]
    function.argtypes += [scalar, pointer, integer, pointer]
    pack = torch.empty(_gemm.pack_reals(), dtype=dtype)
    generator = torch.Generator().manual_seed(0)
    for m, n, k in [(1, 1, 1), (7, 33, 5), (97, 35, 300), (13, 1030, 3)]:
        for ta, tb, beta in [(0, 0, 0.0), (0, 1, 1.0), (1, 0, 0.5), (1, 1, 0.0), (1, 1, 1.0)]:
            a = torch.randn(*((k, m + 3) if ta else (m, k + 3)), generator=generator, dtype=torch.float64)
            b = torch.randn(*((n, k + 2) if tb else (k, n + 2)), generator=generator, dtype=torch.float64)
            c = torch.randn(m, n + 1, generator=generator, dtype=torch.float64)
            op_a = a[:, :m].T if ta else a[:, :k]
            op_b = b[:, :k].T if tb else b[:, :n]
            expected = op_a @ op_b + (beta * c[:, :n] if beta else 0)
            ours = c.to(dtype) if beta else torch.full_like(c, float("nan"), dtype=dtype)
            a_, b_ = a.to(dtype), b.to(dtype)
            operands = (a_.data_ptr(), a.shape[1], b_.data_ptr(), b.shape[1])
            function(ta, tb, m, n, k, *operands, beta, ours.data_ptr(), n + 1, pack.data_ptr())
            tolerance = 1e-5 if dtype == torch.float32 else 1e-13
            assert _relative_error(ours[:, :n], expected) <= tolerance, (m, n, k, ta, tb, beta)
            assert torch.equal(ours[:, n], c[:, n].to(dtype)) or not beta, "a column past n was written"


@needs_compiler
def test_without_a_blas_it_says_so_once_and_runs_its_own_gemm(monkeypatch):
    """No sgemm_/dgemm_ anywhere: one line, once, and the wide products run on the kernel's own GEMM; and
    CHAINRULE_C_BLAS=0 asks for that GEMM without a warning."""
    from numeric._c import _blas

    network = _WIDE_NETWORKS["5-1030-7"]
    values = _smooth_values(network, 9, 1)
    params = {name: values[name] for name in network.parameter_shapes}
    _, reference = autograd_loss_and_gradients(network, values["x"], values["y"], params)
    monkeypatch.setattr(_blas, "_found", lambda: None)
    _blas._warn_once.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_gradients(derive(network), backend="c")
        compile_gradients(derive(network), backend="c")
    (warning,) = caught
    assert warning.category is _blas.NoBlasWarning and "\n" not in str(warning.message)
    assert compiled.blas == {"float32": None, "float64": None}
    ours = compiled(values["x"], values["y"], params)
    for name in reference:
        assert _relative_error(ours[name], reference[name]) <= 1e-10, name
    monkeypatch.undo()
    monkeypatch.setenv("CHAINRULE_C_BLAS", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compile_gradients(derive(network), backend="c").blas == {"float32": None, "float64": None}


@needs_compiler
def test_a_call_allocates_its_results_alone():
    """The work area is kept from call to call (per thread, per dtype) and grows only when a larger tile needs
    it: the second call of the same size uses the first call's area."""
    network = _WIDE_NETWORKS["300-97-70-3"]
    compiled = compile_gradients(derive(network), backend="c", chunk=40)  # 96 KiB of work area: kept
    values = _smooth_values(network, 40, 2)
    params = {name: values[name] for name in network.parameter_shapes}
    first = compiled(values["x"], values["y"], params)
    area = compiled._work.areas[torch.float64]
    second = compiled(values["x"], values["y"], params)
    assert compiled._work.areas[torch.float64] is area
    for name in first:
        assert torch.equal(first[name], second[name]), name  # nothing left over from the first call changes it


def _autograd_saved_bytes(network: Network, values: dict[str, torch.Tensor]) -> int:
    """Bytes of the tensors torch autograd saves for its backward pass of ``network`` (nn.Linear and activation
    modules, as bench.py runs it), counted by ``saved_tensors_hooks``: each storage once, the inputs' and the
    weights' not (they exist before the call)."""
    params = {name: values[name] for name in network.parameter_shapes}
    model = to_torch(network, params)
    x_rows, y_rows = values["x"].T.contiguous(), values["y"].T.contiguous()
    existing = {t.untyped_storage().data_ptr() for t in (x_rows, y_rows, *model.parameters())}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in existing:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = REFERENCE_LOSSES[network.loss](model(x_rows), y_rows)
    torch.autograd.grad(loss, list(model.parameters()))
    return sum(saved.values())


@needs_compiler
@pytest.mark.parametrize("batch", [8, 64, 500])
@pytest.mark.parametrize("label", list(_WIDE_NETWORKS))
def test_the_kept_work_area_is_within_what_autograd_saves(label, batch):
    """chunk="auto" sizes its tile so that the work area it keeps between calls is no larger than the tensors
    autograd saves for the same network and batch: a call plus what it keeps holds no more than autograd. A small
    area is not kept at all."""
    network = _WIDE_NETWORKS[label]
    values = _smooth_values(network, batch, 3)
    params = {name: values[name] for name in network.parameter_shapes}
    compiled = compile_gradients(derive(network), backend="c")
    ours = compiled(values["x"], values["y"], params)
    kept = sum(area.numel() * area.element_size() for area in compiled._work.areas.values())
    assert kept <= _autograd_saved_bytes(network, values)
    assert kept > 0 or batch < 500  # under KEEP_BYTES (64 KiB) an area is allocated by each call instead
    reference = autograd_loss_and_gradients(network, values["x"], values["y"], params)[1]
    for name in ours:  # and the smaller tile changes nothing in the gradients
        assert _relative_error(ours[name], reference[name]) <= 1e-10, name
