"""The model pages (``symbolic/_model_pages.py``): every displayed equation checked, the numbers against torch.

Each Chain's sides stand for expressions in the facts' symbols (or numbers); ``sides_equal`` writes them out at the
sizes 2, 3, 5 and every index and shows the difference 0 (``_norm.vanishes``), the dense facts at symbolic sizes.
The numbers (μ, σ̂, x̂, ∂L/∂x of a normalisation layer; g, ∂L/∂x, the flipped-kernel sum and the max's routing of a
convolution or pooling layer, computed by SymPy) are compared with torch autograd in float64 on the same model built
from torch's functions. Planted mistakes (a sign in a path term, a residual without its skip, the n − 1 variance in
the worked numbers, the kernel not flipped, a max's g sent to another entry of its window, a Chinese word swapped)
must fail.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess

import pytest
import sympy
import torch
from torch import nn

from symbolic import _model_pages as pages
from symbolic._blocks import Chain, Picture
from symbolic._errors import ChainruleError, InputError, NetworkTypeError
from symbolic._model import (
    Act,
    AvgPool1d,
    BatchNorm,
    Conv,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    Linear,
    MaxPool1d,
    MaxPool2d,
    Model,
    Pool,
    Residual,
)
from symbolic._words import CHINESE, ENGLISH

BATCHNORM = Model((3,), (BatchNorm(), Linear(2), Act("sigmoid")), "half_sse", "sum")
RESIDUAL = Model(
    (4,),
    (Linear(4), Residual((LayerNorm(), Linear(4), Act("tanh"), Dropout(0.25))), Linear(2, bias=False)),
    "half_sse",
    "mean",
)
CNN = Model(
    (1, 5, 5),
    (Conv2d(2, 3, padding=1), Act("relu"), MaxPool2d(2), Flatten(), Linear(2)),
    "softmax_cross_entropy",
    "mean",
)
CNN_1D = Model((2, 6), (Conv1d(2, 3, stride=2), AvgPool1d(2), Flatten(), Linear(1)), "half_sse")
# one channel, a 2 × 2 kernel, windows of 2 × 2 moved by 1 (they overlap), and a length-7 input with stride 2
OVERLAP = Model((1, 4, 4), (Conv2d(2, 2), Act("tanh"), MaxPool2d(2, stride=1), Flatten(), Linear(2)), "half_sse")
STRIDED = Model((1, 7), (Conv1d(1, 3, stride=2), MaxPool1d(2, stride=1), Flatten(), Linear(1)), "half_sse", "mean")
MODELS = {"batchnorm": BATCHNORM, "residual": RESIDUAL, "cnn": CNN, "cnn1d": CNN_1D, "overlap": OVERLAP}
MODELS["strided"] = STRIDED
# the batch each model's numbers are worked on
BATCHES = {"batchnorm": 4, "residual": 3, "cnn": 2, "cnn1d": 2, "overlap": 1, "strided": 2}


@functools.cache
def _page(name: str, lang: str = "en", numbers: bool = True):
    model = MODELS[name]
    values = pages.example_values(model, BATCHES[name], seed=1) if numbers and BATCHES[name] else None
    return pages.explain_model(model, values, lang)


def _chains(name: str) -> list[Chain]:
    return [block for block in _page(name) if isinstance(block, Chain)]


CHAINS = [(name, number) for name in MODELS for number in range(len(_chains(name)))]


@pytest.mark.parametrize("name, number", CHAINS)
def test_each_side_of_every_equation_equals_the_next(name, number):
    chain = _chains(name)[number]
    for left, right in zip(chain.terms, chain.terms[1:]):
        assert left.stands_for is not None and right.stands_for is not None, (left.text, right.text)
        assert pages.sides_equal(left.stands_for, right.stands_for), f"{left.text} ≠ {right.text}"


def _chain_with(name: str, text: str) -> Chain:
    return next(chain for chain in _chains(name) if chain.terms[0].text.startswith(text))


def test_the_page_shows_the_three_paths_and_their_sum():
    text = pages.render_model(BATCHNORM, "text")
    for path in ("(∂L/∂x[j])_x̂", "(∂L/∂x[j])_μ", "(∂L/∂x[j])_σ²"):
        assert path in text
    assert "∂σ²/∂μ = 0" in text
    pictures = [block for block in _page("batchnorm") if isinstance(block, Picture)]
    assert len(pictures) == 1 and pictures[0].tikz.count(r"\draw") == 9


def test_a_sign_planted_in_a_path_term_fails():
    chain = _chain_with("batchnorm", "(∂L/∂x[j])_σ²")
    textbook = chain.terms[-1]
    wrong = dataclasses.replace(
        textbook.stands_for, expression=-textbook.stands_for.expression
    )  # the variance path's term with its sign flipped, as a page that wrote + would mean
    assert not pages.sides_equal(chain.terms[-2].stands_for, wrong)
    # and the displayed textbook form's own meaning, read from its tree, is what the check compares
    assert pages.sides_equal(
        chain.terms[-2].stands_for, pages.IndexValue(pages._meaning(textbook.tree, pages._norm.BATCH_NORM), *_at(chain))
    )


def _at(chain: Chain):
    value = chain.terms[-1].stands_for
    return value.size, value.index


def test_a_residual_page_without_its_skip_fails():
    chain = _chain_with("residual", "∂L/∂x[j]")
    definition = chain.terms[0].stands_for
    without_skip = pages.ConcreteValue(
        lambda size, index: pages.residual_sides(size, index)[1] - sympy.Symbol(f"g_{index}", real=True)
    )
    assert pages.sides_equal(definition, chain.terms[-1].stands_for)
    assert not pages.sides_equal(definition, without_skip)


def test_the_residual_sum_is_visible_in_the_backward_order():
    text = pages.render_model(RESIDUAL, "text")
    order = text[text.index("The backward pass through the model") :]
    assert "∂L/∂h⁽¹⁾ = ∂L/∂h⁽²⁾ + (∂L/∂h⁽¹⁾)_F" in order
    lines = [line for line in order.splitlines() if line.startswith("Layer ")]
    assert [line.split()[1] for line in lines] == ["3", "2.4", "2.3", "2.2", "2.1", "1"]


# --- numbers against torch autograd ----------------------------------------------------------------------


class _Net(nn.Module):
    def __init__(self, model: Model, values):
        super().__init__()
        self.model, self.values = model, values
        self.seen: dict[str, torch.Tensor] = {}

    def run(self, placed_list, h):
        for placed in placed_list:
            h.retain_grad()
            self.seen[f"in{placed.position}"] = h
            if isinstance(placed.layer, Residual):
                inner = [q for q in self.model.placed if q.inside[-1:] == (placed.position,)]
                h = h + self.run(inner, h)
            else:
                h = self.apply(placed, h)
            h.retain_grad()
            self.seen[f"out{placed.position}"] = h
        return h

    def apply(self, placed, h):
        layer = placed.layer
        if isinstance(layer, Linear):
            return nn.functional.linear(h, self.values[f"W{placed.number}"], self.values.get(f"b{placed.number}"))
        if isinstance(layer, Act):
            return getattr(torch, layer.name)(h)
        if isinstance(layer, (LayerNorm, BatchNorm)):
            gamma, beta = self.values[f"gamma{placed.number}"], self.values[f"beta{placed.number}"]
            if isinstance(layer, LayerNorm):
                return nn.functional.layer_norm(h, h.shape[1:], gamma, beta, eps=layer.eps)
            return nn.functional.batch_norm(h, None, None, gamma, beta, training=True, eps=layer.eps)
        if isinstance(layer, Flatten):
            return h.flatten(1)
        if isinstance(layer, Conv):
            convolve = nn.functional.conv1d if layer.dims == 1 else nn.functional.conv2d
            weight, bias = self.values[f"W{placed.number}"], self.values.get(f"b{placed.number}")
            return convolve(h, weight, bias, stride=layer.stride, padding=layer.padding)
        if isinstance(layer, Pool):
            pool = getattr(nn.functional, f"{layer.kind}_pool{layer.dims}d")
            return pool(h, layer.kernel, layer.stride)
        (mask,) = placed.masks
        return h * self.values[mask] / (1 - layer.p)

    def local_gradient(self, placed) -> torch.Tensor:
        """The layer's own ∂L/∂x: its backward fed the gradient of its output (a block's first layer's input also
        reaches the loss along the skip, which autograd's .grad of that tensor includes and the layer's page not)."""
        x = self.seen[f"in{placed.position}"].detach().requires_grad_()
        self.apply(placed, x).backward(self.seen[f"out{placed.position}"].grad)
        return x.grad


def _autograd(model: Model, values):
    tensors = {name: torch.tensor(value, dtype=torch.float64) for name, value in values.items()}
    x = tensors["x"].clone().requires_grad_()
    net = _Net(model, tensors)
    out = net.run([q for q in model.placed if not q.inside], x)
    if model.loss == "softmax_cross_entropy":
        loss = -(tensors["y"] * nn.functional.log_softmax(out, dim=1)).sum()
    else:
        loss = 0.5 * ((out - tensors["y"]) ** 2).sum()
    if model.reduction == "mean":
        loss = loss / x.shape[0]
    loss.backward()
    return net


def test_the_convolution_page_flips_the_kernel_and_routes_the_max():
    from symbolic._conv import conv_facts_for
    from symbolic._pool import max_pool_fact

    conv = _chain_with("cnn", "∂L/∂x[c,i_1,i_2]")
    assert "K_1 − 1 − k_1" in conv.terms[-1].text and "ĝ" in conv.terms[-1].text
    # the kernel not flipped (W[o, c, k] in the input gradient): the page's check fails on it
    unflipped = conv_facts_for(2, textbook_kernel=lambda axis: axis.offset)[0]
    assert not pages.sides_equal(
        conv.terms[0].stands_for, pages.FactValue(conv.terms[0].stands_for.fact, unflipped.textbook)
    )
    pool = next(
        c for c in _chains("cnn") if c.terms[0].text.startswith("∂L/∂x") and "𝟙[x[c,i_1,i_2] = y" in c.terms[-1].text
    )
    spread = max_pool_fact(2, routed=False)  # g spread over the whole window
    assert pages.sides_equal(pool.terms[0].stands_for, pool.terms[-1].stands_for)
    assert not pages.sides_equal(
        pool.terms[0].stands_for, pages.FactValue(pool.terms[0].stands_for.fact, spread.textbook)
    )
    pictures = [block for block in _page("cnn") if isinstance(block, Picture)]
    assert len(pictures) == 2


NORM_MODELS = [name for name in MODELS if any(isinstance(q.layer, (LayerNorm, BatchNorm)) for q in MODELS[name].placed)]
WINDOW_MODELS = [name for name in MODELS if any(isinstance(q.layer, (Conv, Pool)) for q in MODELS[name].placed)]


def _sample_channel(numbers, net, placed):
    """The sample the page works (the first whose g is not all 0), channel 0: torch's g, ∂L/∂x and the input."""
    sample = pages._first_sample(numbers.gradient(placed.position, "out"))
    upstream = net.seen[f"out{placed.position}"].grad[sample]
    local = net.local_gradient(placed)[sample, 0]
    return sample, upstream, local, net.seen[f"in{placed.position}"][sample].detach()


@pytest.mark.parametrize("name", WINDOW_MODELS)
def test_the_window_numbers_are_torchs(name):
    """g and ∂L/∂x of every convolution and pooling layer (forward-mode through SymPy's 40-digit forward pass),
    the conv's textbook sum (ĝ with the flipped kernel) at the worked entry and the pooling's routing rule, each
    against torch autograd in float64; the kernel not flipped and g sent to the wrong entry of its window fail."""
    model = MODELS[name]
    values = pages.example_values(model, BATCHES[name], seed=1)
    net, numbers = _autograd(model, values), pages.ModelNumbers(model, values)
    for placed in [q for q in model.placed if isinstance(q.layer, (Conv, Pool))]:
        layer, shape, out_shape = placed.layer, placed.shape_in, placed.shape_out
        sample, upstream, local, inputs = _sample_channel(numbers, net, placed)
        found_out = numbers.gradient(placed.position, "out")[sample]
        found_in = numbers.gradient(placed.position, "in")[sample]
        assert [float(v) for v in found_out] == pytest.approx(upstream.flatten().tolist(), rel=1e-10, abs=1e-13)
        assert [float(v) for v in found_in] == pytest.approx(
            net.local_gradient(placed)[sample].flatten().tolist(), rel=1e-10, abs=1e-13
        )
        if isinstance(layer, Conv):
            weight = numbers.parameters[f"W{placed.number}"]
            kernel_shape = (layer.out_channels, shape[0], *layer.kernel)
            spread = pages.conv_spread(layer, found_out, out_shape)
            wrong = 0
            for entry in pages._entries(shape[1:]):
                terms = pages.conv_products(layer, spread, weight, kernel_shape, 0, entry)
                assert float(sum(a * b for *_, a, b in terms)) == pytest.approx(
                    float(local[entry]), rel=1e-10, abs=1e-13
                )
                unflipped = pages.conv_products(layer, spread, weight, kernel_shape, 0, entry, flipped=False)
                wrong += float(sum(a * b for *_, a, b in unflipped)) != pytest.approx(float(local[entry]), abs=1e-6)
            assert wrong, "the kernel not flipped gives the same numbers: the check could not see it"
        else:
            flat = [sympy.Float(v, 40) for v in inputs.flatten().tolist()]
            routed = pages.pool_routed(layer, flat, found_out, shape, out_shape, 0)
            assert [float(v) for v in routed] == pytest.approx(local.flatten().tolist(), rel=1e-10, abs=1e-13)
            if layer.kind == "max":
                misrouted = pages.pool_routed(layer, flat, found_out, shape, out_shape, 0, shift=1)
                assert [float(v) for v in misrouted] != pytest.approx(local.flatten().tolist(), abs=1e-6)


def test_the_window_numbers_are_on_the_page():
    """The conv's worked entry (its few products), the max-pool's window, arg-max and two overlapping windows' g
    added, in the text page; a pool's worked sum equals torch's ∂L/∂x at that entry."""
    values = pages.example_values(OVERLAP, 1, seed=1)
    text = pages.render_model(OVERLAP, "text", values=values)
    numbers = text[text.index("In numbers") :]
    assert "ĝ[1] = " in numbers and "W[1,0] = " in numbers and "· W[" in numbers
    assert "y[0,0,0] = max(x[0,0,0], x[0,0,1], x[0,1,0], x[0,1,1])" in numbers
    overlap = next(
        c for c in _chains("overlap") if re.fullmatch(r"∂L/∂x\[0,\d,\d\]", c.terms[0].text) and "g[" in c.terms[1].text
    )
    net = _autograd(OVERLAP, values)
    entry = tuple(int(v) for v in re.findall(r"\d", overlap.terms[0].text)[1:])
    local = net.local_gradient(OVERLAP.placed[2])[0, 0]
    assert float(overlap.terms[1].stands_for) == pytest.approx(float(local[entry]), rel=1e-10)
    assert overlap.terms[1].text.count("g[") == 2


@pytest.mark.parametrize("name", NORM_MODELS)
def test_the_norm_numbers_are_torchs(name):
    model = MODELS[name]
    values = pages.example_values(model, BATCHES[name], seed=1)
    net = _autograd(model, values)
    numbers = pages.ModelNumbers(model, values)
    norms = [q for q in model.placed if isinstance(q.layer, (LayerNorm, BatchNorm))]
    assert norms
    for placed in norms:
        found = numbers.norm(placed.position)
        inputs, local = net.seen[f"in{placed.position}"], net.local_gradient(placed)
        # BatchNorm: feature 1 over the batch; LayerNorm: sample 1's features (the vector the page works on)
        xs, gradient = (inputs[:, 0], local[:, 0]) if isinstance(placed.layer, BatchNorm) else (inputs[0], local[0])
        xs = xs.detach()
        mean = xs.mean()
        root = torch.sqrt(xs.var(unbiased=False) + placed.layer.eps)
        expected = {
            "x": xs.tolist(),
            "mu": [float(mean)],
            "sigma_hat": [float(root)],
            "xhat": ((xs - mean) / root).tolist(),
            "dx": gradient.tolist(),
        }
        for key, want in expected.items():
            got = getattr(found, key)
            got = [float(v) for v in (got if isinstance(got, tuple) else (got,))]
            assert got == pytest.approx(want, rel=1e-10, abs=1e-13), key


def test_the_worked_numbers_use_the_biased_variance():
    """A planted n − 1 variance (torch's unbiased var) gives other numbers than the page's σ̂."""
    values = pages.example_values(BATCHNORM, 4, seed=1)
    found = pages.ModelNumbers(BATCHNORM, values).norm("1")
    xs = torch.tensor([float(v) for v in found.x], dtype=torch.float64)
    unbiased = float(torch.sqrt(xs.var(unbiased=True) + 1e-5))
    assert float(found.sigma_hat) != pytest.approx(unbiased, rel=1e-6)


def test_the_numbers_appear_on_the_page():
    text = pages.render_model(BATCHNORM, "text", values=pages.example_values(BATCHNORM, 4, seed=1))
    found = pages.ModelNumbers(BATCHNORM, pages.example_values(BATCHNORM, 4, seed=1)).norm("1")
    assert f"σ̂ = sqrt(1.0e−5 + {float(found.sigma_hat) ** 2 - 1e-5:.5g})" in text
    assert f"{float(found.dx[0]):.5g}".replace("-", "−") in text


# --- languages and formats --------------------------------------------------------------------------------

ALLOWED_LATIN = {
    "SymPy", "sympy", "diff", "PyTorch", "torch", "autograd", "float64", "chainrule", "Linear", "LayerNorm",
    "BatchNorm", "Residual", "Dropout", "Flatten", "half_sse", "sigmoid", "tanh", "relu", "gamma", "beta",
    "Conv1d", "Conv2d", "MaxPool", "AvgPool", "Kronecker", "softmax_cross_entropy",
}  # fmt: skip


def _chinese_problems(text: str) -> set[str]:
    """English words in the Chinese page's sentences, and 上一层/下一层 (ambiguous; 前一层/后一层 are not)."""
    prose = "\n".join(line for line in text.splitlines() if not line.startswith("  "))  # equations are indented
    found = set(re.findall(r"[A-Za-z_][A-Za-z_0-9.]{3,}", prose))
    problems = {word for word in found if not any(word.startswith(allowed) for allowed in ALLOWED_LATIN)}
    problems |= {word for word in ("上一层", "下一层") if word in text}
    if "前一层" not in text:
        problems.add("no 前一层")
    return problems


@pytest.mark.parametrize("name", MODELS)
def test_no_english_sentence_leaks_into_the_chinese_page(name):
    assert not _chinese_problems(pages.render_model(MODELS[name], "text", "zh"))


@pytest.mark.parametrize(
    "key, old, new",
    [("model_order_layer", "前一层", "上一层"), ("model_norm_path_mean", "经过均值", "Through the mean")],
)
def test_a_swapped_chinese_word_is_caught(monkeypatch, key, old, new):
    from symbolic import _words

    swapped = dict(CHINESE)
    assert old in swapped[key]
    swapped[key] = swapped[key].replace(old, new)
    monkeypatch.setattr(_words, "WORDS", {**_words.WORDS, "zh": swapped})
    assert _chinese_problems(pages.render_model(BATCHNORM, "text", "zh"))


def test_the_model_keys_are_in_both_languages():
    english = {key for key in ENGLISH if key.startswith("model_")}
    chinese = {key for key in CHINESE if key.startswith("model_")}
    assert english == chinese and len(english) > 40
    for key in english:
        assert set(re.findall(r"{(\w+)}", ENGLISH[key])) == set(re.findall(r"{(\w+)}", CHINESE[key])), key


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_text_and_markdown_render(lang):
    values = pages.example_values(RESIDUAL, 3, seed=1)
    text = pages.render_model(RESIDUAL, "text", lang, values)
    markdown = pages.render_model(RESIDUAL, "markdown", lang, values)
    page = pages.render_model(RESIDUAL, "html", lang, values)
    assert "LayerNorm" in text and "<svg" in markdown and "$$" in markdown
    assert page.startswith("<!DOCTYPE html>") and "data-tex" in page
    assert page.count('<figure class="cr-figure"><svg') == 2  # the residual block's graph and LayerNorm's


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("name", MODELS)
def test_the_pdf_builds_with_real_fonts(name, lang, tmp_path):
    output = tmp_path / f"{name}-{lang}.pdf"
    values = pages.example_values(MODELS[name], BATCHES[name], 1) if BATCHES[name] else None
    pages.render_model(MODELS[name], "pdf", lang, values, output)
    assert output.read_bytes().startswith(b"%PDF")
    if shutil.which("pdffonts"):
        fonts = subprocess.run(["pdffonts", str(output)], capture_output=True, text=True, check=True).stdout
        assert "Type 3" not in fonts


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(NetworkTypeError):
        pages.explain_model("linear:4")
    with pytest.raises(InputError, match="format"):
        pages.render_model(BATCHNORM, "docx")
    with pytest.raises(InputError, match="lack"):
        pages.render_model(BATCHNORM, "text", values={"x": [[1, 2, 3]]})
    with pytest.raises(ChainruleError):
        pages.render_model(BATCHNORM, "pdf", output=None)
