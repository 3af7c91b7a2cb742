"""verify's and check's reports and the tutorial's gradient table in Chinese, from the derivation's word tables.

No English word is left but the identifiers allowed below; the numbers are those of the English report, in
the same order; the columns line up in terminal columns (a CJK character is two wide).
"""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_check_backward import NETWORK, _torch_student, student
from test_general import networks
from torch import nn

from numeric import MISTAKES, check_backward, compile_gradients, verify
from numeric._check_backward import UNKNOWN
from numeric.cli import main
from symbolic import TUTORIAL, TUTORIAL_VALUES, ExpressionTooLarge, InputError, Network, derive, display_width, words

# Names that are the same in every language: torch's and chainrule's identifiers, dtypes, the network's
# activation and loss names, parameter and variable names (NAMES).
IDENTIFIERS = ("torch.autograd.gradcheck", "autograd", "gradcheck", "fast_mode", "SymPy", "torch", "chainrule")
DTYPES = ("float64", "float32", "f64", "f32")
NAMES = re.compile(r"\bdL/d[Wb]\d+|\b[WbxyzaLfB]\d*\b")  # W1, b2, x, y1, a1, L, dL/dW1, f'(z1), B
MISTAKE_NAMES = (*MISTAKES, UNKNOWN, "MISTAKES")  # check's diagnosis names the mistakes by their identifiers
# Python a message tells the user to write (ExpressionTooLarge's: how to raise the budget)
CODE = re.compile(
    r"Derivation\.program|matrix_program|compile_gradients|derive\(network, closed_form_budget=|"
    r"closed_form\('\w+', budget="
)
NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?|\binf\b|\bnan\b")


def _english_left(text: str, network: Network, parameters: tuple[str, ...] = ()) -> str:
    """What remains of ``text`` once the allowed names (and ``parameters``, torch's "0.weight") and the
    numbers are taken out: no ASCII letter may."""
    allowed = {*network.activations, network.loss, *IDENTIFIERS, *DTYPES, *MISTAKE_NAMES, *parameters}
    for name in sorted(allowed, key=len, reverse=True):
        text = text.replace(name, " ")
    text = text.replace("ᵀ", " ")  # a letter to regular expressions: W2ᵀ would hide W2 from NAMES
    text = NAMES.sub(" ", CODE.sub(" ", text))
    return "".join(re.findall(r"[A-Za-z]+", NUMBER.sub(" ", text)))


def test_the_allow_list_check_catches_an_english_sentence():
    """The check itself can fail: an English word next to allowed names and numbers is found."""
    assert _english_left("网络 1-2-2, sigmoid, half_sse；W1 1.5e-07 autograd float64", TUTORIAL) == ""
    assert _english_left("W1 1.5e-07 autograd result", TUTORIAL) == "result"
    assert _english_left("结论：MISMATCH", TUTORIAL) == "MISMATCH"


@pytest.fixture(scope="module")
def reports(doubled_gradients) -> list:
    """Reports that between them hold every sentence of a report: passes, a mismatch, skips and samples."""
    wide = Network([30, 40, 20], "relu", "half_sse", bias=True)  # over the closed-form limit, gradcheck sampled
    mismatch = derive(Network([2, 3, 1], ["tanh", "sigmoid"], "bce"))
    return [
        verify(derive(TUTORIAL), progress=False),
        verify(derive(Network([3, 4, 2], ["tanh", "softmax"], "cross_entropy", bias=True), wrt=("x",))),
        verify(derive(Network([2, 3, 1], "sigmoid", "bce", reduction="mean")), gradcheck="off", form="elementwise"),
        verify(derive(wide), batch=2, dtype=torch.float32, progress=False),
        verify(derive(wide, wrt=("x",)), batch=2, progress=False),
        verify(mismatch, compiled=doubled_gradients(compile_gradients(mismatch)), progress=False),
    ]


def test_the_reports_cover_every_sentence(reports):
    """These reports hold each of the report's sentences, so the checks that use them see them all."""
    english = "\n".join(str(report) for report in reports)
    for sentence in ("over the limit", "sampled: per parameter one", "sampled: per parameter and for x", "FAILED"):
        assert sentence in english
    assert "and of x" in english and "elementwise form" in english and "verdict: MISMATCH" in english


def test_the_chinese_report_has_no_english_but_identifiers(reports):
    for report in reports:
        chinese = report.text(lang="zh")
        assert _english_left(chinese, report.network) == "", chinese
        assert re.search(r"[\u4e00-\u9fff]", chinese)


def test_chinese_and_english_reports_hold_the_same_numbers_in_the_same_order(reports):
    for report in reports:
        english, chinese = report.text(lang="en"), report.text(lang="zh")
        numbers = NUMBER.findall(english)
        assert f"{report.loss:.10g}" in numbers and f"{report.comparisons[0].max_rel_error:.3e}" in numbers
        assert NUMBER.findall(chinese) == numbers


def test_english_is_the_default(reports):
    for report in reports:
        assert str(report) == report.text() == report.text(lang="en")
        assert not re.search(r"[\u4e00-\u9fff]", str(report))
    with pytest.raises(InputError, match="lang must be one of en, zh; got 'fr'"):
        reports[0].text(lang="fr")


def test_a_mismatch_is_said_in_chinese(reports):
    report = reports[-1]
    assert not report.ok and report.gradcheck is False
    zh = words("zh")
    lines = report.text(lang="zh").splitlines()
    assert lines[-1] == zh["verdict"].format(verdict=zh["mismatch"])
    assert sum(line.endswith(f"  {zh['mismatch']}") for line in lines) == sum(not c.ok for c in report.comparisons)
    assert zh["gradcheck_result"].format(result=zh["gradcheck_failed"]) in lines


def _column_edges(header: str, heads: list[str]) -> list[tuple[int, int]]:
    """(first, last + 1) terminal column of each head in ``header``, found left to right."""
    edges, at = [], 0
    for head in heads:
        at = header.index(head, at)
        edges.append((display_width(header[:at]), display_width(header[: at + len(head)])))
        at += len(head)
    return edges


def _cell_edges(row: str) -> list[tuple[int, int]]:
    return [(display_width(row[: m.start()]), display_width(row[: m.end()])) for m in re.finditer(r"\S+", row)]


def _assert_aligned(lines: list[str], heads: list[str], rows: int, last_left: bool) -> None:
    """The header's first and (when ``last_left``) last head start where each row's cells start; the other
    heads end where the rows' cells end (numbers are right-aligned)."""
    header = next(line for line in lines if all(head in line for head in heads))
    body = lines[lines.index(header) + 1 :]
    cells = [_cell_edges(line) for line in body if NUMBER.search(line) and len(_cell_edges(line)) == len(heads)]
    cells = cells[:rows]
    assert len(cells) == rows, (rows, cells)
    edges = _column_edges(header, heads)
    for row in cells:
        assert row[0][0] == edges[0][0], (header, row)
        right = edges[1:-1] if last_left else edges[1:]
        assert [end for _, end in row[1 : 1 + len(right)]] == [end for _, end in right], (header, row)
        if last_left:
            assert row[-1][0] == edges[-1][0], (header, row)


@settings(max_examples=10)
@given(network=networks(max_depth=3, max_width=4), batch=st.integers(1, 3), wrt=st.sampled_from([(), ("x",)]))
def test_any_networks_report_in_chinese(network, batch, wrt):
    """Random architectures (each activation and loss, bias, mean): no English, the same numbers, aligned."""
    report = verify(derive(network, wrt=wrt), batch=batch, gradcheck="off", progress=False)
    chinese = report.text(lang="zh")
    assert _english_left(chinese, network) == "", chinese
    assert NUMBER.findall(chinese) == NUMBER.findall(str(report))
    rows = len(report.comparisons) + len(report.closed_form_comparisons)
    _assert_aligned(chinese.splitlines(), _report_heads("zh"), rows, last_left=True)


def _report_heads(lang: str) -> list[str]:
    w = words(lang)
    return [w[key] for key in ("column_parameter", "column_max_abs_error", "column_max_rel_error")] + [
        w["column_tolerance"],
        w["column_result"],
    ]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_columns_align_in_terminal_columns(reports, lang):
    heads = _report_heads(lang)
    for report in reports:
        rows = len(report.comparisons) + len(report.closed_form_comparisons)
        _assert_aligned(report.text(lang=lang).splitlines(), heads, rows, last_left=True)


def _tutorial_heads(lang: str) -> list[str]:
    w = words(lang)
    compiled = [w["column_compiled"].format(dtype=dtype) for dtype in ("f32", "f64")]
    return [w["column_entry"], w["column_tutorial"], w["column_closed_form"], *compiled, "autograd f64"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_tutorial_command_in_each_language(capsys, lang):
    """``chainrule --lang zh`` end to end: exit 0, the table aligned, no English outside the derivation."""
    assert main(["--lang", lang]) == 0
    out = capsys.readouterr().out
    w = words(lang)
    before, rest = out.split(f"\n{w['heading_derivation']}\n", 1)
    table_and_report = rest[rest.index(f"\n{w['heading_gradients']}\n") :]
    lines = table_and_report.splitlines()
    entries = sum(rows * cols for rows, cols in TUTORIAL.parameter_shapes.values())
    _assert_aligned(lines, _tutorial_heads(lang), entries, last_left=False)
    report = verify(derive(TUTORIAL))
    assert report.text(lang=lang) in table_and_report
    forward = [line for line in before.splitlines() if w["tutorial_printed"].format(value="") in line]
    assert len(forward) == 3
    values = {display_width(re.match(r".* = (?=[\[\d-])", line).group()) for line in forward}
    assert len(values) == 1  # the values start in one column
    printed = {display_width(line[: line.index(w["tutorial_printed"].format(value=""))]) for line in forward}
    assert len(printed) == 1  # and so do the tutorial's printed values
    if lang == "zh":
        assert _english_left(before, TUTORIAL) == ""
        assert _english_left(table_and_report, TUTORIAL) == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "--lang", "zh"],
        ["--lang", "zh", "verify"],  # before the subcommand: the subcommand's default must not undo it
        ["verify", "--lang", "zh", "--sizes", "3,4,2", "--bias", "--wrt", "x"],
    ],
)
def test_verify_command_takes_lang(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    network = Network([3, 4, 2], "sigmoid", "half_sse", bias=True) if "--sizes" in argv else TUTORIAL
    assert out.splitlines()[-1] == words("zh")["verdict"].format(verdict=words("zh")["verdict_ok"])
    assert _english_left(out, network) == ""
    assert main([a for a in argv if a not in ("--lang", "zh")]) == 0  # English without it
    english = capsys.readouterr().out
    assert NUMBER.findall(english) == NUMBER.findall(out)
    assert english.splitlines()[-1] == "verdict: OK"


@pytest.fixture(scope="module")
def backward_reports():
    """check_backward's reports: right, each catalogued mistake (both reductions), unexplained, torch names."""
    reports = []
    for reduction in ("sum", "mean"):
        network = Network(NETWORK.sizes, NETWORK.activations, NETWORK.loss, bias=True, reduction=reduction)
        mean = reduction == "mean"
        for mistake in (None, *MISTAKES):
            planted = lambda x, y, p, m=mistake, mean=mean: student(x, y, p, m, mean=mean)  # noqa: E731
            reports.append(check_backward(planted, network))

    def off(x, y, p):
        return {**student(x, y, p), "W2": 1.5 * student(x, y, p)["W2"]}

    reports.append(check_backward(off, NETWORK))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    inputs, targets = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0, 2])
    wrong_bias = lambda i, t, p: _torch_student(i, t, p, "bias_not_summed")  # noqa: E731
    reports.append(check_backward(wrong_bias, model, nn.CrossEntropyLoss(), inputs, targets))
    return reports


def test_the_check_reports_cover_every_mistake(backward_reports):
    named = {mistake.name for report in backward_reports for mistake in report.mistakes}
    assert named == {*MISTAKES, UNKNOWN}
    assert any(report.ok for report in backward_reports)


def test_the_chinese_check_report_has_no_english_but_identifiers(backward_reports):
    for report in backward_reports:
        english, chinese = report.text(lang="en"), report.text(lang="zh")
        assert str(report) == english and not re.search(r"[\u4e00-\u9fff]", english)
        assert _english_left(chinese, report.network, tuple(report.errors)) == "", chinese
        assert NUMBER.findall(chinese) == NUMBER.findall(english), (english, chinese)
        zh = words("zh")
        verdict = zh["verdict_all_match"] if report.ok else zh["wrong"]
        assert chinese.splitlines()[-1] == zh["verdict"].format(verdict=verdict)
        for mistake in report.mistakes:  # each diagnosis in Chinese: its name, then the Chinese sentence
            line = next(line for line in chinese.splitlines() if line.startswith(f"  {mistake.name}（"))
            assert re.search(r"[\u4e00-\u9fff]", line.split("：", 1)[1]), line


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_check_report_columns_align_in_terminal_columns(backward_reports, lang):
    heads = _report_heads(lang)
    for report in backward_reports[:-1]:  # the last one's names ("0.bias (b1)") hold a space: not one cell
        _assert_aligned(report.text(lang=lang).splitlines(), heads, len(report.errors), last_left=True)


def test_check_command_takes_lang(capsys):
    argv = ["check", "examples/student_backward.py:backward", "--sizes", "3,4,2", "--activation", "sigmoid", "--bias"]
    assert main([*argv, "--lang", "zh"]) == 1
    chinese = capsys.readouterr().out
    assert main(["--lang", "zh", *argv]) == 1
    assert capsys.readouterr().out == chinese
    assert main(argv) == 1
    english = capsys.readouterr().out
    network = Network([3, 4, 2], "sigmoid", "half_sse", bias=True)
    assert _english_left(chinese, network) == "" and NUMBER.findall(chinese) == NUMBER.findall(english)
    assert "derivative_at_output（W1, b1）：" in chinese and english.splitlines()[-1] == "verdict: WRONG"


def test_readme_lists_lang_for_exactly_the_commands_that_take_it():
    from pathlib import Path

    from numeric.cli import _parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Command line\n\n```\n", 1)[1].split("```", 1)[0]
    entries: dict[str, str] = {}
    for line in block.splitlines():
        if line.startswith("chainrule ") and line.split()[1] != "--version":
            command = line.split()[1]
            name = command if command.isalpha() else "tutorial"  # `chainrule [--lang en|zh]`: the tutorial
            entries[name] = line
        elif line.startswith(" ") and entries:
            entries[name] += line
    documented = {name for name, text in entries.items() if "[--lang en|zh]" in text}
    commands = _parser()._subparsers._group_actions[0].choices
    taking = {name for name, parser in commands.items() if "--lang" in parser._option_string_actions}
    assert documented == taking and {"verify", "check"} <= taking


def test_a_too_large_closed_form_is_said_in_chinese():
    """ExpressionTooLarge keeps its message as a sentence of the word tables, so the report can say it in
    Chinese; only the Python it suggests stays."""
    derivation = derive(TUTORIAL, closed_form_budget=5)
    with pytest.raises(ExpressionTooLarge) as caught:
        derivation.evaluate(TUTORIAL_VALUES, closed_form=True)
    assert caught.value.sentence.text() == str(caught.value)
    report = verify(derivation, progress=False)
    assert report.closed_form_note == f"the closed form is too large ({caught.value})"
    chinese = report.text(lang="zh")
    assert _english_left(chinese, TUTORIAL) == "", chinese
    assert NUMBER.findall(chinese) == NUMBER.findall(str(report))
    zh = words("zh")
    assert zh["closed_form_too_large"].format(error=caught.value.sentence.text("zh")) in chinese
