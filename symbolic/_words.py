"""What chainrule says in words: one table per language, the same keys in each. The derivation's words,
and those of the tutorial command's gradient table and of verify's report (numeric).

A sentence holds ``{name}`` where a piece of mathematics (or a number, a name) goes; the mathematics is
the same in every language, printed from the same trees. ``tests/test_chinese.py`` checks that the tables
have the same keys and the same placeholders, and that no English leaks into the Chinese output. The
Chinese follows the tutorial's own terms (正向传播, 反向传播, 链式法则, 损失函数, 激活函数, 梯度, 误差项 δ, 矩阵形式).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

LANGUAGES = ("en", "zh")

ENGLISH: Mapping[str, str] = MappingProxyType(
    {
        "title": "Backpropagation by the chain rule",
        "heading_derivation": "Derivation",
        "heading_gradients": "Gradients",
        "tutorial_title": "chainrule: the tutorial's network, derived by SymPy, compiled to torch, checked against "
        "autograd",
        "tutorial_forward": "Forward pass (exact; the tutorial prints float32 to 4 digits)",
        "motivation": "Gradient descent needs the gradient {dW} of the loss for every weight W of the network. "
        "Backpropagation gets them all in one backward pass: it works out each layer's error {delta} once and reuses "
        "it, instead of running the chain rule from the loss again for every weight.",
        "motivation_bias": "Gradient descent needs the gradient {dW} of the loss for every weight W and bias b of "
        "the network. Backpropagation gets them all in one backward pass: it works out each layer's error {delta} "
        "once and reuses it, instead of running the chain rule from the loss again for every parameter.",
        "network": "Network {network}, layer sizes {sizes}.",
        "heading_backward": "Backward pass",
        "backward_intro": "The chain rule, applied from the loss back towards the input, one layer at a time.",
        "heading_checked": "How this page was checked",
        "describe_bias": "with bias",
        "describe_mean": "mean over the batch",
        "list_separator": ", ",  # between the items of a list said in words (the network's description, layers)
        "what_is_derived": (
            "SymPy differentiated the definitions above (the loss, each activation, each {layer_map}) with "
            "sympy.diff; the chain rule joins those derivatives through the named intermediates {z}, {a} and {delta}. "
            "chainrule's tests check, on many networks (fixed and random), that in such a derivation each side of "
            "every equation equals the next, and read each printed equation back to compare it with what was checked."
        ),
        "heading_notation": "Notation",
        "heading_forward": "Forward pass",
        "heading_output": "Output layer (layer {layer})",
        "heading_layer": "Hidden layer (layer {layer})",
        "heading_hidden": "Hidden layers l = {top}, …, 1",
        "heading_matrix": "Gradients in matrix form",
        "heading_closed": "Closed form",
        "heading_numbers": "Numbers",
        "column_symbol": "symbol",
        "column_meaning": "meaning",
        "column_shape": "shape (layer 1, 2, …)",
        "notation_B": "the batch size: the number of samples, one column each",
        "notation_x": "input, a column of length {n}; a batch has one column per sample",
        "notation_y": "target, a column of length {n}",
        "notation_W": "weights of layer l: row i for unit i of layer l, column j for unit j of the previous layer "
        "(l − 1)",
        "notation_b": "bias of layer l",
        "notation_z": "pre-activation of layer l",
        "notation_a": "output of layer l; layer 0 is the input x, the last layer's output is the prediction",
        "notation_delta": "error of layer l: the derivative of the loss L with respect to the layer's pre-activation",
        "notation_activation": "activation function {name} (layer {layers})",
        "notation_activation_layers": "activation function {name} (layers {layers})",
        "notation_hadamard": "element-wise product",
        "notation_ones": "a column of ones: multiplying by it sums over the samples of a batch",
        "notation_indicator": "1 where the condition holds, else 0",
        "forward_names": "Every intermediate gets a name, so that backpropagation can reuse it:",
        "entry_by_entry": "Entry by entry:",
        "loss_is": "The loss function is {loss}, {per_unit} for each output unit of one sample, with {prediction} "
        "the prediction; {batch}",
        "loss_is_coupled": "The loss function is {loss}: it couples the output units, as written above for one "
        "sample; {batch}",
        "batch_sum": "L above is one sample's loss; a batch sums it over its samples, and so its gradients.",
        "batch_mean": "a batch takes its mean over the samples (reduction mean, PyTorch's default): L above is one "
        "sample's share, its loss divided by the batch size B, and the batch's loss is the sum of these shares; so "
        "are its gradients, through the 1/B in the output layer's δ.",
        "input_gradient": "The input's gradient is the first layer's error carried back through its weights once "
        "more, one column per sample (not summed over the batch):",
        "chain_path": "The chain rule follows the path from a weight to the loss. For an entry of {W}, shown "
        "for {weight} (every entry works the same way):",
        "derivative_through_output": "The activation is {definition}. Its derivative (by SymPy), rewritten in "
        "terms of its output {a}:",
        "derivative": "The activation is {definition}. Its derivative (by SymPy):",
        "softmax_couples": "The softmax couples the units of its layer, so the chain rule sums over every output:",
        "shared_factor": "Everything before the last factor depends only on the weight's row {i} (the unit it feeds), "
        "not on its column {j} (the input it carries). It is the shared factor (the tutorial's red box), named the "
        "error of the unit, {delta}:",
        "shared_factor_boxed": "Everything before the last factor depends only on the weight's row {i} (the unit it "
        "feeds), not on its column {j} (the input it carries). It is the shared factor (boxed in red), named the "
        "error of the unit, {delta}:",
        "delta_is_difference": "For this activation and loss function SymPy simplifies the error to {equation}.",
        "delta_is_difference_for_probabilities": "When the target is a probability vector (its entries sum to 1), "
        "SymPy simplifies the error to {equation}.",
        "error_times_input": "So each gradient entry is the error of the unit the weight feeds times the input it "
        "carries:",
        "hidden_collects": "A unit's output feeds every unit of the next layer, so its error collects theirs "
        "through {W}, reusing {delta}:",
        "general_step": "Every hidden layer repeats one step. A unit's output feeds every unit of the next layer, "
        "so its error collects theirs, reusing the error of the next layer: for {range},",
        "general_where": "where {f} is the activation of layer l (see the notation). Entry by entry, shown for {l}:",
        "matrix_outer": "Each entry above is one entry of an outer product, so a whole gradient is one matrix "
        "product. With a batch (one sample per column of x, a and δ) the product also sums over the samples:",
        "matrix_bias": "and a bias gradient sums the errors over the samples:",
        "heading_summary": "Summary: backpropagation in matrix form",
        "summary_batch": "For a batch of {B} samples (one per column), with the shape of each factor beside it:",
        "summary_output_above": "{delta}: the output layer's error, entry by entry as above (its softmax sums over "
        "the units).",
        "closed_intro": "Substituting every intermediate back gives the entries in x, y and the parameters:",
        "numbers_intro": "At the values below (evaluated with 20 significant digits, shown rounded):",
        "numbers_worked": "Backward, entry by entry, from the numbers above (rounded to five digits; where that "
        "would change a result's fifth digit, the step keeps more):",
        "numbers_worked_first_sample": "Backward, entry by entry, for the first sample, from the numbers above "
        "(rounded to five digits; where that would change a result's fifth digit, the step keeps more):",
        "pytorch_title": "Checked with PyTorch",
        "pytorch_intro": "loss.backward() in float32, PyTorch's default, takes the same steps, each rounded to "
        "float32. This page computes them the same way (chainrule's tests compare these numbers with torch's "
        "autograd) and prints them as PyTorch does, beside the exact values.",
        "pytorch_line": "{name}.grad = {float32} in float32; exact {exact}",
        "pytorch_reason": "Why the last digit differs: float32 carries about 7 significant digits, and {rest} at "
        "{a} ≈ {value} cancels about {digits} of them.",
        "pytorch_reason_all": "Why float32 loses these gradients: it carries about 7 significant digits, and {rest} "
        "at {a} ≈ {value} cancels about {digits}, more than all of them.",
        "pytorch_agree": "float32 and the exact values agree to every digit PyTorch prints.",
        "pytorch_rounding": "float32 carries about 7 significant digits; the rounding of each step accounts for the "
        "difference.",
        "numbers_skipped": "Not shown: SymPy evaluates every entry exactly (20 digits), and this network "
        "with these samples has {entries} parameter entries, above the page's limit of {limit}. "
        "`chainrule verify` computes every gradient numerically.",
        "large_matrix": "a {rows} × {cols} matrix, largest |entry| {largest}",
        # numeric: the tutorial command's table and verify's report (numeric/cli.py, numeric/_verify.py)
        "tutorial_loss": "loss",
        "column_tutorial": "tutorial",
        "tutorial_printed": "tutorial: {value}",
        "tutorial_agrees": "the tutorial's printed numbers: all {count} agree with chainrule's (the forward pass "
        "exact, the gradients compiled in float32, as the tutorial ran them) to one unit of their last digit",
        "tutorial_differs": "the tutorial's printed numbers: {names} differ from chainrule's by more than one unit "
        "of their last digit",
        "column_entry": "entry",
        "column_closed_form": "closed form",
        "column_compiled": "compiled {dtype}",
        "largest_difference": "largest relative difference between closed form, compiled and autograd: {worst}",
        "report_network": "network {network}; batch {batch}, {dtype}, {form} form",
        "form_matrix": "matrix",
        "form_elementwise": "elementwise",
        "report_loss": "loss (autograd) = {loss}",
        "column_parameter": "parameter",
        "column_max_abs_error": "max abs error",
        "column_max_rel_error": "max rel error",
        "column_tolerance": "tolerance",
        "column_result": "result",
        "compiled_vs_autograd": "compiled vs autograd",
        "closed_form_vs_autograd": "closed form (exact) vs autograd",
        "entry_ok": "ok",
        "mismatch": "MISMATCH",
        "closed_form_skipped": "closed form (exact): skipped, {why}",
        "closed_form_over_limit": "{parameters} parameters x {samples} samples = {size} is over the limit of "
        "{limit} for SymPy's exact evaluation (slow); compiled vs autograd covers every entry",
        "closed_form_too_large": "the closed form is too large ({error})",
        "expression_too_large": "the closed form of {what} would have about {size} expression nodes, over the budget "
        "of {budget}; use the structured program (Derivation.program / matrix_program, or compile_gradients), or raise "
        "the budget with derive(network, closed_form_budget={raised}) or closed_form({name}, budget={raised})",
        "the_loss": "the loss",
        "gradcheck_result": "torch.autograd.gradcheck (float64, finite differences): {result}",
        "gradcheck_passed": "passed",
        "gradcheck_failed": "FAILED",
        "gradcheck_full": "every entry of every parameter ({entries} entries)",
        "gradcheck_full_and_x": "every entry of every parameter ({entries} entries) and of x ({x_entries} entries)",
        "verdict": "verdict: {verdict}",
        "verdict_ok": "OK",
        # numeric: check_backward's report (numeric/_check_backward.py); the mistakes' names are identifiers
        "check_title": "backward pass checked against chainrule's derivation of {network}",
        "wrong": "WRONG",
        "verdict_all_match": "OK, every gradient matches",
        "diagnosis": "diagnosis:",
        "diagnosis_line": "  {name} ({parameters}): {explanation}",
        "mistake_sign": "the output error is flipped (y − ŷ instead of ŷ − y), so every gradient has the wrong sign",
        "mistake_missing_activation_derivative": "layer {layer}'s activation derivative f'(z{layer}) is left out of "
        "δ{layer}",
        "mistake_derivative_at_output": "layer {layer}'s f' is evaluated at its output a{layer} instead of at "
        "z{layer}{example}",
        "at_output_sigmoid": ": σ(a)(1 − σ(a)) where a(1 − a) is right",
        "at_output_tanh": ": 1 − tanh(a)² where 1 − a² is right",
        "mistake_missing_transpose": "δ{layer} uses W{above} δ{above} instead of W{above}ᵀ δ{above} (W{above} is "
        "square)",
        "mistake_batch_scale": "every gradient is {factor} the right one: {why}",
        "batch_scale_mean_factor": "B times",
        "batch_scale_mean_why": "the loss is the mean over the batch, but the gradient sums the samples",
        "batch_scale_sum_factor": "1/B times",
        "batch_scale_sum_why": "the loss sums the batch, but the gradient divides by the batch size",
        "mistake_wrong_layer_input": "∂L/∂W{layer} is δ{layer} a{layer}ᵀ instead of δ{layer} a{below}ᵀ (the layer's "
        "own input)",
        "mistake_bias_not_summed": "∂L/∂b{layer} is kept per sample (δ{layer}, a column per sample), not summed over "
        "the batch",
        "mistake_unknown": "wrong, and none of the catalogued mistakes gives this gradient (see MISTAKES)",
        # --- check ---
        "mistake_sign_partial": "these gradients have the wrong sign, as y − ŷ instead of ŷ − y would give, but the "
        "other gradients are not flipped, so the flipped output error does not explain them all",
        "mistake_batch_scale_partial": "these gradients are {factor} the right ones ({why}), but the other gradients "
        "are not scaled so",
        "mistake_refuted": "wrong; these numbers are what {names} gives, but {names} would also change gradients "
        "that are right here, so it is not that mistake",
        "mistake_coincidence": "wrong; at batch {batch} these numbers match {names}, at batch {other} they do not: a "
        "coincidence of sizes, not that mistake",
        "problem_shape": "the gradient has shape {shape}, expected {expected}",
        "problem_shape_transposed": "the gradient has shape {shape}, expected {expected}: it is transposed (its "
        "transpose is the right gradient)",
        "problem_dtype": "the gradient is {dtype} where the values were {expected}: {dtype} cannot hold a {expected} "
        "gradient's precision, so it cannot pass (its numbers were compared at {dtype}'s tolerance {rtol})",
        "problem_not_finite": "{nan} nan and {inf} inf entries (of {total}) where the right gradient is finite",
        "problem_dtype_other": "the gradient is {dtype} where the values were {expected}: a gradient has its "
        "parameter's dtype (its numbers were compared at tolerance {rtol})",
        # --- figure ---
        "figure_units": "The network: one circle per unit, one arrow per weight, labelled with the weight it carries.",
        "figure_bias": "A dashed 1 is the constant input whose weights are the biases.",
        "figure_units_values": "Forward values in green, errors δ = ∂L/∂z in red; on each arrow its weight, whose "
        "gradient is the red δ at its head times the green a (or x) at its tail: ∂L/∂W[i,j] = δ[i]·a[j].",
        "figure_units_batch": "The network at the given batch: on each arrow its weight; L is the loss, summed "
        "over the batch. The units' values differ per sample: see the numbers below.",
        "figure_layers": "The network as a computational graph of whole layers, each node with its shape (B samples "
        "per batch); the parameters and the target y are its leaves.",
        # --- size ---
        "finite_differences_result": "finite differences (float64, central, in one batched forward pass): {result}",
        "finite_differences_sample": "sampled: per parameter one random direction, and {count} random entries in "
        "all ({total} entries)",
        "finite_differences_sample_and_x": "sampled: per parameter and for x one random direction, and {count} "
        "random entries in all ({total} entries)",
        "gradcheck_inconclusive": "inconclusive, the loss is NaN/inf where it is perturbed ({names})",
        "autograd_nonfinite_agrees": "{name}: autograd is NaN/inf at {count} of {entries} entries; the compiled "
        "gradient is finite there and agrees with {judge}",
        "autograd_nonfinite_disagrees": "{name}: autograd is NaN/inf at {count} of {entries} entries; the compiled "
        "gradient is finite there but disagrees with {judge}",
        "autograd_nonfinite_unsettled": "{name}: autograd is NaN/inf at {count} of {entries} entries; the compiled "
        "gradient is finite there, and no exact reference could settle which is right (the closed form was "
        "skipped, the finite differences said nothing)",
        "judge_closed_form": "the closed form (exact)",
        "judge_finite_differences": "the finite differences",
        "compiled_nonfinite": "{name}: the compiled gradient is NaN/inf at {count} entries where autograd is finite",
    }
)

CHINESE: Mapping[str, str] = MappingProxyType(
    {
        # A letter of mathematics in a sentence (layer 𝑙, unit 𝑖, input 𝑗, the loss 𝐿) is written in Unicode's
        # mathematical italic: LaTeX sets it as math (_formats), so that "第 𝑙 层" never reads as "第 1 层".
        "title": "用链式法则推导反向传播",
        "heading_derivation": "推导",
        "heading_gradients": "梯度",
        "tutorial_title": "chainrule：教程中的网络，由 SymPy 推导，编译为 torch 函数，并与 autograd 对照检查",
        "tutorial_forward": "正向传播（精确值；教程打印的是 float32，保留 4 位有效数字）",
        "motivation": "梯度下降需要损失函数对网络中每个权重 𝑊 的梯度 {dW}。反向传播在一次反向计算中得到全部梯度："
        "它为每一层只求一次误差项 {delta}，然后重复使用，而不必为每个权重都从损失函数重新应用一遍链式法则。",
        "motivation_bias": "梯度下降需要损失函数对网络中每个权重 𝑊 和偏置 𝑏 的梯度 {dW}。"
        "反向传播在一次反向计算中得到全部梯度：它为每一层只求一次误差项 {delta}，然后重复使用，"
        "而不必为每个参数都从损失函数重新应用一遍链式法则。",
        "network": "网络 {network}，各层大小 {sizes}。",
        "heading_backward": "反向传播",
        "backward_intro": "从损失函数出发，向输入方向逐层应用链式法则。",
        "heading_checked": "本页的验证方法",
        "describe_bias": "带偏置",
        "describe_mean": "批内取平均",
        "list_separator": "、",  # 顿号: the Chinese enumeration comma
        "what_is_derived": (
            "SymPy 用 sympy.diff 对上面的各个定义（损失函数、每个激活函数、每个 {layer_map}）求导；"
            "链式法则再通过命名的中间量 {z}、{a} 和 {delta} 把这些导数串联起来。"
            "chainrule 的测试在许多网络（固定的和随机生成的）上验证：推导中每个连等式的相邻两边都相等；"
            "测试还把打印出的每个等式重新解析，与验证过的表达式对比。"
        ),
        "heading_notation": "记号",
        "heading_forward": "正向传播",
        "heading_output": "输出层（第 {layer} 层）",
        "heading_layer": "隐藏层（第 {layer} 层）",
        "heading_hidden": "隐藏层（第 {top} 层至第 1 层）",
        "heading_matrix": "梯度的矩阵形式",
        "heading_closed": "闭式表达式",
        "heading_numbers": "数值",
        "column_symbol": "符号",
        "column_meaning": "含义",
        "column_shape": "形状（各层依次列出）",
        "notation_B": "批大小：样本数，每个样本一列",
        "notation_x": "输入，长度为 {n} 的列向量；一批样本中每个样本占一列",
        "notation_y": "目标值，长度为 {n} 的列向量",
        "notation_W": "第 𝑙 层的权重：第 𝑖 行对应本层的第 𝑖 个单元，第 𝑗 列对应前一层的第 𝑗 个单元",
        "notation_b": "第 𝑙 层的偏置",
        "notation_z": "第 𝑙 层的加权输入，即激活前的值",
        "notation_a": "第 𝑙 层的输出；第 0 层就是输入 𝑥，最后一层的输出就是预测值",
        "notation_delta": "第 𝑙 层的误差项：损失 𝐿 对该层加权输入的导数",
        "notation_activation": "激活函数 {name}（第 {layers} 层）",
        "notation_activation_layers": "激活函数 {name}（第 {layers} 层）",
        "notation_hadamard": "逐元素乘积",
        "notation_ones": "全为 1 的列向量：右乘它就是对一批样本求和",
        "notation_indicator": "示性函数：条件成立时为 1，否则为 0",
        "forward_names": "给每个中间量起一个名字，反向传播时就能直接复用：",
        "entry_by_entry": "逐个分量写出：",
        "loss_is": "损失函数为 {loss}，单个样本的每个输出单元贡献一项 {per_unit}，其中 {prediction} 为预测值；{batch}",
        "loss_is_coupled": "损失函数为 {loss}：它把各输出单元耦合在一起，单个样本的损失见上式；{batch}",
        "batch_sum": "上面的 𝐿 是单个样本的损失；一批样本的损失与梯度都是各样本的总和。",
        "batch_mean": "一批样本的损失取各样本损失的平均（即 reduction 为 mean，PyTorch 的默认设置）："
        "上面的 𝐿 是单个样本所占的一份，即它的损失除以批大小 𝐵，一批样本的损失是这些份额之和；"
        "梯度也一样，这个 1/𝐵 体现在输出层的误差项中。",
        "input_gradient": "输入的梯度：把第 1 层的误差项再经由该层的权重反向传回一次，每个样本占一列（不对样本求和）：",
        "chain_path": "链式法则沿着从权重到损失的路径，把每一段的导数依次相乘。"
        "以 {W} 的分量 {weight} 为例（其他分量同理）：",
        "derivative_through_output": "激活函数为 {definition}。"
        "它的导数（由 SymPy 求出）改写成用其输出 {a} 表示的形式：",
        "derivative": "激活函数为 {definition}。它的导数（由 SymPy 求出）：",
        "softmax_couples": "softmax 把同一层的各单元耦合在一起，所以链式法则要对该层的每个输出求和：",
        "shared_factor": "最后一个因子之前的部分只与权重的行号 {i}（它所连的本层单元）有关，"
        "与列号 {j}（它所传递的输入）无关。"
        "这就是公共因子（即教程中的红框），称为该单元的误差项 {delta}：",
        "delta_is_difference": "对于这种激活函数与损失函数的组合，SymPy 把误差项化简为 {equation}。",
        "delta_is_difference_for_probabilities": "当目标值是概率向量（各分量之和为 1）时，"
        "SymPy 把误差项化简为 {equation}。",
        "shared_factor_boxed": "最后一个因子之前的部分只与权重的行号 {i}（它所连的本层单元）有关，"
        "与列号 {j}（它所传递的输入）无关。"
        "这就是公共因子（上式中红框标出的部分），称为该单元的误差项 {delta}：",
        "error_times_input": "因此，梯度的每个分量都等于该权重所连单元的误差项乘以它所传递的输入：",
        "hidden_collects": "本层每个单元的输出都送往后一层的每个单元，因此它的误差项要经由 {W} "
        "收集后一层的误差项，这里直接复用已算出的 {delta}：",
        "general_step": "每个隐藏层都重复同一步：一个单元的输出送往后一层的每个单元，因此它的误差项要收集后一层的"
        "误差项，直接复用后一层已算出的结果。对 {range}，",
        "general_where": "其中 {f} 是第 𝑙 层的激活函数（见记号）。逐个分量写出，以 {l} 为例：",
        "matrix_outer": "上面每个分量都是一个外积中的元素，所以整个梯度只需一次矩阵乘法。"
        "对一批样本（𝑥、𝑎 和 δ 的每一列对应一个样本），这次矩阵乘法同时完成了对样本的求和：",
        "matrix_bias": "偏置的梯度则是把误差项对样本求和：",
        "heading_summary": "小结：反向传播的矩阵形式",
        "summary_batch": "对一批 {B} 个样本（每个样本占一列），各式旁标出了每个因子的形状：",
        "summary_output_above": "{delta}：输出层的误差项，逐个分量的写法见上文（其中 softmax 要对各单元求和）。",
        "closed_intro": "把所有中间量逐一代回，就得到用 𝑥、𝑦 和参数表示的各分量：",
        "numbers_intro": "在下列数值处（按 20 位有效数字计算，显示时四舍五入）：",
        "numbers_worked": "反向传播：逐个分量代入上面的数值（四舍五入到五位有效数字；若这样会改变结果的第五位，"
        "该步多保留几位）：",
        "numbers_worked_first_sample": "反向传播：以第一个样本为例，逐个分量代入上面的数值（四舍五入到五位有效数字；"
        "若这样会改变结果的第五位，该步多保留几位）：",
        "pytorch_title": "用 PyTorch 核对",
        "pytorch_intro": "loss.backward() 在 float32（PyTorch 的默认类型）下按同样的步骤计算，每一步都舍入到 float32。"
        "本页用同样的方式算出这些值（chainrule 的测试把它们与 torch 的 autograd 对照），按 PyTorch 的格式打印，"
        "并在旁边给出精确值。",
        "pytorch_line": "{name}.grad = {float32}（float32）；精确值 {exact}",
        "pytorch_reason": "最后一位不同的原因：float32 只有约 7 位有效数字，而在 {a} ≈ {value} 处，{rest} "
        "相减时抵消了其中约 {digits} 位。",
        "pytorch_reason_all": "float32 算不出这些梯度的原因：它只有约 7 位有效数字，而在 {a} ≈ {value} 处，{rest} "
        "相减时抵消了约 {digits} 位，比它全部的有效数字还多。",
        "pytorch_agree": "float32 与精确值在 PyTorch 打印出的每一位上都一致。",
        "pytorch_rounding": "float32 只有约 7 位有效数字，这点差别来自各步的舍入。",
        "numbers_skipped": "此处不列出数值：SymPy 要逐个分量精确计算（20 位有效数字），而这个网络在这些样本上共有 "
        "{entries} 个参数分量，超过了本页的上限 {limit}。`chainrule verify` 会用数值方法计算全部梯度。",
        "large_matrix": "{rows} × {cols} 矩阵，分量绝对值最大为 {largest}",
        "tutorial_loss": "损失",
        "column_tutorial": "教程",
        "tutorial_printed": "教程：{value}",
        "tutorial_agrees": "教程打印的数值：全部 {count} 个与 chainrule 的结果（正向传播取精确值，梯度取以 float32 "
        "编译运行的结果，与教程相同）在其末位的一个单位之内一致",
        "tutorial_differs": "教程打印的数值：{names} 与 chainrule 的结果相差超过其末位的一个单位",
        "column_entry": "分量",
        "column_closed_form": "闭式表达式",
        "column_compiled": "编译 {dtype}",
        "largest_difference": "闭式表达式、编译所得梯度与 autograd 三者之间的最大相对误差：{worst}",
        "report_network": "网络 {network}；批大小 {batch}，{dtype}，{form}形式",
        "form_matrix": "矩阵",
        "form_elementwise": "逐元素",
        "report_loss": "损失值（autograd）= {loss}",
        "column_parameter": "参数",
        "column_max_abs_error": "最大绝对误差",
        "column_max_rel_error": "最大相对误差",
        "column_tolerance": "容差",
        "column_result": "结果",
        "compiled_vs_autograd": "编译所得梯度与 autograd 对照",
        "closed_form_vs_autograd": "闭式表达式（精确）与 autograd 对照",
        "entry_ok": "一致",
        "mismatch": "不一致",
        "closed_form_skipped": "闭式表达式（精确）：跳过，{why}",
        "closed_form_over_limit": "{parameters} 个参数 × {samples} 个样本 = {size}，超过了 SymPy 精确求值的上限 "
        "{limit}（精确求值很慢）；编译所得梯度与 autograd 的对照已覆盖全部分量",
        "closed_form_too_large": "闭式表达式太大（{error}）",
        "expression_too_large": "闭式表达式（{what}）大约会有 {size} 个表达式节点，超过了预算 {budget}；"
        "请改用结构化的程序（Derivation.program / matrix_program，或 compile_gradients），或者用 "
        "derive(network, closed_form_budget={raised}) 或 closed_form({name}, budget={raised}) 提高预算",
        "the_loss": "损失函数",
        "gradcheck_result": "torch.autograd.gradcheck（float64，有限差分）：{result}",
        "gradcheck_passed": "通过",
        "gradcheck_failed": "失败",
        "gradcheck_full": "所有参数的全部分量（共 {entries} 个）",
        "gradcheck_full_and_x": "所有参数的全部分量（共 {entries} 个）以及 x 的全部分量（共 {x_entries} 个）",
        "verdict": "结论：{verdict}",
        "verdict_ok": "通过",
        "check_title": "用 chainrule 的推导检查反向传播；网络：{network}",
        "wrong": "错误",
        "verdict_all_match": "通过，所有梯度都一致",
        "diagnosis": "诊断：",
        "diagnosis_line": "  {name}（{parameters}）：{explanation}",
        "mistake_sign": "输出层误差项的符号反了（写成了 y − ŷ，应为 ŷ − y），所以每个梯度的符号都错了",
        "mistake_missing_activation_derivative": "δ{layer} 中漏乘了第 {layer} 层激活函数的导数 f'(z{layer})",
        "mistake_derivative_at_output": "第 {layer} 层的 f' 错在输出 a{layer} 处求值，应在 z{layer} 处求值{example}",
        "at_output_sigmoid": "：写成了 σ(a)(1 − σ(a))，正确的是 a(1 − a)",
        "at_output_tanh": "：写成了 1 − tanh(a)²，正确的是 1 − a²",
        "mistake_missing_transpose": "δ{layer} 用的是 W{above} δ{above}，应为 W{above}ᵀ δ{above}"
        "（W{above} 是方阵，所以形状上看不出错）",
        "mistake_batch_scale": "所有梯度都是正确值的 {factor}：{why}",
        "batch_scale_mean_factor": "B 倍",
        "batch_scale_mean_why": "损失是对批内样本取平均，梯度却是对样本求和",
        "batch_scale_sum_factor": "1/B 倍",
        "batch_scale_sum_why": "损失是对批内样本求和，梯度却除以了批大小",
        "mistake_wrong_layer_input": "∂L/∂W{layer} 写成了 δ{layer} a{layer}ᵀ，"
        "应为 δ{layer} a{below}ᵀ（用该层自己的输入）",
        "mistake_bias_not_summed": "∂L/∂b{layer} 按样本分别保留（即 δ{layer}，每个样本一列），没有对样本求和",
        "mistake_unknown": "错误，已知的错误类型（见 MISTAKES）都给不出这个梯度",
        # --- check ---
        "mistake_sign_partial": "这些梯度的符号反了（就像把 ŷ − y 写成 y − ŷ 那样），但其他梯度没有反号，"
        "所以“输出层误差项符号反了”解释不了全部梯度",
        "mistake_batch_scale_partial": "这些梯度是正确值的 {factor}（{why}），但其他梯度没有这样缩放",
        "mistake_refuted": "错误；这些数值与 {names} 给出的一致，但 {names} 还会改变另一些梯度，"
        "而那些梯度在这里是对的，所以不是这个错误",
        "mistake_coincidence": "错误；批大小为 {batch} 时这些数值与 {names} 一致，批大小为 {other} 时却不一致："
        "这只是尺寸上的巧合，并不是这个错误",
        "problem_shape": "梯度的形状是 {shape}，应为 {expected}",
        "problem_shape_transposed": "梯度的形状是 {shape}，应为 {expected}：它被转置了（它的转置才是正确的梯度）",
        "problem_dtype": "梯度的类型是 {dtype}，而输入的数值是 {expected}：{dtype} 达不到 {expected} 梯度的精度，"
        "所以无法通过（其数值按 {dtype} 的容差 {rtol} 比较）",
        "problem_not_finite": "有 {nan} 个 nan 分量和 {inf} 个 inf 分量（共 {total} 个），而正确梯度在这些位置是有限值",
        "problem_dtype_other": "梯度的类型是 {dtype}，而输入的数值是 {expected}：梯度应与对应参数的类型相同"
        "（其数值按容差 {rtol} 比较）",
        # --- figure ---
        "figure_units": "网络结构：每个单元画成一个圆，每个权重画成一个箭头，箭头上标出它对应的权重。",
        "figure_bias": "虚线标出的 1 是常数输入，它的权重就是偏置。",
        "figure_units_values": "绿色为正向传播的值，红色为误差项 δ = ∂𝐿/∂𝑧；箭头上标的是权重，它的梯度等于箭头终点的"
        "红色 δ 乘以起点的绿色 𝑎（或 𝑥）：∂𝐿/∂𝑊[𝑖,𝑗] = δ[𝑖]·𝑎[𝑗]。",
        "figure_units_batch": "代入一批数据时的网络：每个箭头上标出它对应的权重；𝐿 是整批样本的损失之和。"
        "各单元的值因样本而异，见下文的数值。",
        "figure_layers": "以整层为节点的计算图，每个节点标出其形状（每批 𝐵 个样本）；参数和目标值 𝑦 是图的叶节点。",
        # --- size ---
        "finite_differences_result": "有限差分（float64，中心差分，一次批量前向计算）：{result}",
        "finite_differences_sample": "抽样检查：每个参数沿一个随机方向检查一次，另外随机抽取 {count} 个分量"
        "（共 {total} 个分量）",
        "finite_differences_sample_and_x": "抽样检查：每个参数和 x 各沿一个随机方向检查一次，另外随机抽取 {count} "
        "个分量（共 {total} 个分量）",
        "gradcheck_inconclusive": "无法判定：扰动后的损失为 NaN/inf（{names}）",
        "autograd_nonfinite_agrees": "{name}：autograd 在 {entries} 个分量中有 {count} 个是 NaN/inf；"
        "编译所得梯度在这些位置是有限值，并与{judge}一致",
        "autograd_nonfinite_disagrees": "{name}：autograd 在 {entries} 个分量中有 {count} 个是 NaN/inf；"
        "编译所得梯度在这些位置是有限值，但与{judge}不一致",
        "autograd_nonfinite_unsettled": "{name}：autograd 在 {entries} 个分量中有 {count} 个是 NaN/inf；"
        "编译所得梯度在这些位置是有限值，但没有精确的参照能判定哪一方正确（闭式表达式已跳过，有限差分无法判定）",
        "judge_closed_form": "闭式表达式（精确）",
        "judge_finite_differences": "有限差分",
        "compiled_nonfinite": "{name}：编译所得梯度在 {count} 个分量上是 NaN/inf，而 autograd 在这些位置是有限值",
    }
)

# --- the model pages (symbolic/_model_pages.py): LayerNorm, BatchNorm, residual, dropout, flatten ---------------
_MODEL_ENGLISH = {
    "model_title": "Backpropagation through a model's layers, by the chain rule",
    "model_intro": "The model: {layers}; one sample has the shape {shape}.",
    "model_rows": "A batch holds B samples as rows, as in PyTorch. Each layer's backward pass takes g = ∂L/∂y, the "
    "gradient of the loss with respect to its output, from the next layer, and gives ∂L/∂x, the gradient with "
    "respect to its input, to the previous layer. Below, each kind of layer is derived once, in index form.",
    "model_heading_layers": "The layers",
    "model_heading_kind": "{kind}",
    "model_layers_at": "layer {layers}",
    "model_list_separator": ", ",
    "model_named": "{name} ({detail})",  # a layer and where it stands, or a position and its layer's kind
    "model_fact_gradients": "SymPy differentiates L = Σ g·y by each entry (index form, 0-based as in torch) and "
    "sums the Kronecker deltas; the form a textbook writes, proved equal to it:",
    "model_conv_forward": "A convolution (torch's cross-correlation) slides the kernel W over the input zero-padded "
    "by P, x̃, moving by the stride s; output t of channel o is:",
    "model_conv_caption": "Kernel 3, stride 1: each input entry feeds every output whose window covers it (the "
    "coloured arrows of x2), so its gradient sums theirs.",
    "model_conv_path": "x2 → y0, y1, y2 (blue)",
    "model_conv_meaning": "ĝ is g with s − 1 zeros between its entries and K − 1 zeros around it: the input "
    "gradient is the correlation of ĝ with the kernel flipped (W[o, c, K − 1 − k]), a transposed convolution; the "
    "weight gradient is the correlation of the padded input with g.",
    "model_maxpool_forward": "Max pooling keeps the largest entry of each window of K, the windows moved by the "
    "stride s:",
    "model_avgpool_forward": "Average pooling takes the mean of each window of K (the padding counted in K, as "
    "torch does):",
    "model_pool_caption": "Kernel 2, stride 2: each entry lies in one window.",
    "model_pool_path": "x2 → y1 (blue)",
    "model_maxpool_meaning": "Each g of a window goes to the entry that was its maximum and to no other: the gradient "
    "is routed to the arg-max (values distinct; SymPy's proof is at draws of distinct values).",
    "model_avgpool_meaning": "Each g of a window is shared equally, g/K to each of its entries.",
    "model_linear_forward": "A linear layer computes y = x Wᵀ + b; for one sample, output i is:",
    "model_linear_backward": "SymPy differentiates it ({jacobian}), and the chain rule sums over the outputs:",
    "model_linear_batch": "Over a batch, ∂L/∂W and ∂L/∂b add these over the samples; in matrix form ∂L/∂x = g W and "
    "∂L/∂W = gᵀ x, with one row per sample.",
    "model_activation_kind": "Activations ({names})",
    "model_activation": "An activation applies f to each entry on its own, so only the same entry's term is left "
    "of the chain rule's sum:",
    "model_flatten": "Flatten reshapes a sample's [C, …] into one row and computes nothing: its backward pass "
    "reshapes the gradient back to [C, …].",
    "model_dropout_forward": "Dropout multiplies each entry by its mask mᵢ (0 or 1, given as an input so that the "
    "gradients can be reproduced) and scales by 1/(1 − p):",
    "model_dropout_backward": "The chain rule keeps the same entry's term; the mask routes the gradient exactly as "
    "it routed the input:",
    "model_residual_forward": "A residual block adds its input to its block's output: y = x + F(x). Two paths lead "
    "from x to the sum: the skip and the block.",
    "model_residual_path_skip": "the skip x → + (orange)",
    "model_residual_path_block": "the block x → F(x) → + (blue)",
    "model_residual_caption": "A residual block: the skip and the block meet at the sum.",
    "model_residual_backward": "The chain rule adds the two paths; the skip passes g on unchanged:",
    "model_residual_meaning": "The second term is what the block's own layers give as ∂L/∂x when they are fed g: "
    "so the gradient into a residual block is the gradient out of it plus the block's share.",
    "model_layernorm_axis": "LayerNorm normalises each sample over its n features, with a γᵢ and βᵢ per "
    "feature. For one sample x (index form, as SymPy derives it):",
    "model_batchnorm_axis": "BatchNorm (training mode) normalises each feature c over the batch: x below is that "
    "feature's N values, one per sample (and per position, after a convolution), and its γ and β are one number each. "
    "The running statistics do not enter the gradient. In index form, as SymPy derives it:",
    "model_norm_graph": "x reaches the loss along three paths: directly into x̂, through the mean μ, and through the "
    "variance σ² (μ feeds σ² too).",
    "model_graph_direct": "x → x̂ (blue)",
    "model_graph_mean": "x → μ → x̂, and μ → σ² (orange)",
    "model_graph_variance": "x → σ² → x̂ (green)",
    "model_norm_caption": "The computational graph of a normalisation layer: three paths from x into the loss meet "
    "at x̂.",
    "model_norm_paths": "With gᵢ = ∂L/∂yᵢ from the next layer and {ghat}, the chain rule along each path, each "
    "local derivative taken by sympy.diff with μ and σ² held as variables:",
    "model_norm_path_direct": "Directly into x̂ (μ and σ² held fixed):",
    "model_norm_path_mean": "Through the mean μ:",
    "model_norm_path_variance": "Through the variance σ²:",
    "model_norm_variance_mean": "The path from μ on into σ² adds nothing, because:",
    "model_norm_total": "The three paths add up to the whole gradient (SymPy checks the sum against diff of the "
    "definition), the form textbooks write:",
    "model_norm_result": "{layer}: the gradients",
    "model_layernorm_batch": "Over a batch, each sample is normalised on its own, so ∂L/∂x applies row by row, and "
    "∂L/∂γ and ∂L/∂β add the samples' terms.",
    "model_batchnorm_batch": "Each feature c is normalised on its own, so ∂L/∂x applies column by column, the sums "
    "running over the batch.",
    "model_heading_order": "The backward pass through the model",
    "model_order_intro": "The layers are visited from the last to the first. Write {h} for the output of layer l "
    "(x for the model's input): each layer receives {g} from the next layer and passes the gradient with "
    "respect to its own input to the previous layer.",
    "model_order_loss": "The loss ({loss}) gives {g}.",
    "model_order_layer": "Layer {layer} receives {g} and passes {g_in} to the previous layer.",
    "model_order_layer_parameters": "Layer {layer} receives {g} and passes {g_in} to the previous layer; on the "
    "way it gives the gradients of {parameters}.",
    "model_order_split": "Residual block {layer}: {g} goes two ways, unchanged along the skip and into the "
    "block's last layer as {g_block}.",
    "model_order_meet": "The two paths of residual block {layer} meet again at its input: {total}.",
    "model_heading_numbers": "In numbers: layer {layer}",
    "model_numbers_batchnorm": "Feature 1 over the batch (N = {n} values), computed by SymPy to 40 digits and "
    "shown to 5; g comes from the layers after this one (the chain rule through them, in numbers):",
    "model_numbers_layernorm": "Sample {sample}'s n = {n} features, computed by SymPy to 40 digits and shown to 5; g "
    "comes from the layers after this one (the chain rule through them, in numbers):",
    "model_numbers_worked": "The first entry worked through the textbook's form:",
    "model_numbers_conv": "Sample {sample}, input channel 0 (kernel {kernel}, stride {stride}, padding {padding}), "
    "computed by SymPy to 40 digits and shown to 5; g = ∂L/∂y of each output channel o comes from the layers after "
    "this one, ĝ is g with s − 1 zeros between its entries and K − 1 zeros around it, and W[o,0] is the kernel:",
    "model_numbers_conv_worked": "{entry} worked through the textbook's form {form} (for two axes, the same along "
    "each): the kernel flipped, the products whose ĝ is 0 left out:",
    "model_numbers_pool": "Sample {sample}, channel 0 (window {kernel}, stride {stride}), computed by SymPy to 40 "
    "digits and shown to 5: the layer's input x and g = ∂L/∂y from the layers after this one:",
    "model_numbers_window": "The window of {window}: its largest entry is {top}, so {window}'s g goes to {top} "
    "and to no other entry of the window:",
    "model_numbers_overlap": "{entry} is the largest entry of two overlapping windows: it receives both their g, "
    "added:",
    "model_numbers_average": "{entry} lies in {windows} window(s): it receives g/K from each, added:",
    "model_numbers_routed": "Every window's g routed to its arg-max (the other entries receive 0):",
    "model_numbers_shared": "Every window's g shared as g/K among its entries, an entry in several windows adding "
    "their shares:",
    "model_numbers_checked": "The same ∂L/∂x is what the chain rule through the whole model gives, entry by entry, "
    "and what torch's autograd gives in float64 (chainrule's tests compare them).",
    "model_checked": "SymPy differentiated each layer's definition with sympy.diff in index form (the sums over "
    "symbolic sizes); chainrule's tests check that every side of every equation above equals the next, at "
    "several concrete sizes (2, 3 and 5 for the normalisation, dropout and residual lines; the convolution's and "
    "pooling's own sizes for theirs), and compare the numbers with torch autograd.",
}

_MODEL_CHINESE = {
    "model_title": "用链式法则推导模型各层的反向传播",
    "model_intro": "模型：{layers}；单个样本的形状为 {shape}。",
    "model_rows": "与 PyTorch 一致，一批 B 个样本按行排列。每一层的反向传播从后一层接收 g = ∂L/∂y，即损失对该层输出的"
    "梯度，并把损失对该层输入的梯度 ∂L/∂x 传给前一层。下面对每一种层用下标形式各推导一次。",
    "model_heading_layers": "各层的推导",
    "model_heading_kind": "{kind}",
    "model_layers_at": "第 {layers} 层",
    "model_list_separator": "、",
    "model_named": "{name}（{detail}）",
    "model_fact_gradients": "SymPy 对 L = Σ g·y 按每个分量求导（下标形式，与 torch 一样从 0 开始），再对 Kronecker δ "
    "求和；教科书的形式经证明与之相等：",
    "model_conv_forward": "卷积（torch 的互相关）让卷积核 W 在两侧各补 P 个零的输入 x̃ 上滑动，每次移动步长 s；"
    "通道 o 的第 t 个输出为：",
    "model_conv_caption": "卷积核大小 3、步长 1：每个输入分量进入所有覆盖它的窗口对应的输出（x2 的彩色箭头），"
    "所以它的梯度是这些输出梯度之和。",
    "model_conv_path": "x2 → y0、y1、y2（蓝色）",
    "model_conv_meaning": "ĝ 是在 g 的分量之间插入 s − 1 个零、四周补 K − 1 个零得到的：输入的梯度是 ĝ 与翻转后的卷积核"
    "（W[o, c, K − 1 − k]）的互相关，即转置卷积；权重的梯度是补零后的输入与 g 的互相关。",
    "model_maxpool_forward": "最大池化保留每个大小为 K 的窗口中最大的分量，窗口每次移动步长 s：",
    "model_avgpool_forward": "平均池化取每个大小为 K 的窗口的平均值（与 torch 一样，补的零也计入 K）：",
    "model_pool_caption": "窗口大小 2、步长 2：每个分量只属于一个窗口。",
    "model_pool_path": "x2 → y1（蓝色）",
    "model_maxpool_meaning": "每个窗口的 g 只传给该窗口中取得最大值的分量：梯度被路由到最大值所在的位置"
    "（各值互不相同时；SymPy 的证明在若干组互不相同的取值上进行）。",
    "model_avgpool_meaning": "每个窗口的 g 平均分给窗口中的每个分量，各得 g/K。",
    "model_linear_forward": "线性层计算 y = x Wᵀ + b；对单个样本，第 i 个输出为：",
    "model_linear_backward": "SymPy 对它求导（{jacobian}），链式法则再对各输出求和：",
    "model_linear_batch": "对一批样本，∂L/∂W 和 ∂L/∂b 把各样本的这些项相加；写成矩阵形式即 ∂L/∂x = g W，"
    "∂L/∂W = gᵀ x，每个样本占一行。",
    "model_activation_kind": "激活函数（{names}）",
    "model_activation": "激活函数对每个分量单独作用 f，所以链式法则的求和中只剩下同一分量的那一项：",
    "model_flatten": "Flatten 只把一个样本的 [C, …] 排成一行，不做任何运算：反向传播时把梯度按原形状还原为 [C, …]。",
    "model_dropout_forward": "Dropout 把每个分量乘以它的掩码 mᵢ（取 0 或 1，作为输入给出，以便梯度可以复现），"
    "再乘以 1/(1 − p)：",
    "model_dropout_backward": "链式法则只留下同一分量的项；掩码怎样传递输入，就怎样传递梯度：",
    "model_residual_forward": "残差块把输入加到块的输出上：y = x + F(x)。从 x 到求和处有两条路径：跳跃连接和块本身。",
    "model_residual_path_skip": "跳跃连接 x → +（橙色）",
    "model_residual_path_block": "块 x → F(x) → +（蓝色）",
    "model_residual_caption": "残差块：跳跃连接与块在求和处汇合。",
    "model_residual_backward": "链式法则把两条路径相加；跳跃连接把 g 原样传回：",
    "model_residual_meaning": "第二项正是块内各层在接收 g 时算出的 ∂L/∂x：因此流入残差块输入的梯度，等于流出它的梯度"
    "加上块本身贡献的部分。",
    "model_layernorm_axis": "LayerNorm 对每个样本的 n 个特征做归一化，每个特征有各自的 γᵢ 和 βᵢ。对单个样本 x"
    "（下标形式，与 SymPy 的推导一致）：",
    "model_batchnorm_axis": "BatchNorm（训练模式）对每个特征 c 在整批样本上做归一化：下文的 x 是该特征的 N 个值，"
    "每个样本一个（卷积层之后还包括每个位置），它的 γ 和 β 各是一个数。滑动平均的统计量不参与梯度。下标形式，"
    "与 SymPy 的推导一致：",
    "model_norm_graph": "x 沿三条路径到达损失：直接进入 x̂，经过均值 μ，以及经过方差 σ²（μ 也进入 σ²）。",
    "model_graph_direct": "x → x̂（蓝色）",
    "model_graph_mean": "x → μ → x̂，以及 μ → σ²（橙色）",
    "model_graph_variance": "x → σ² → x̂（绿色）",
    "model_norm_caption": "归一化层的计算图：从 x 到损失的三条路径在 x̂ 处汇合。",
    "model_norm_paths": "记后一层传来的 gᵢ = ∂L/∂yᵢ，以及 {ghat}。沿每条路径应用链式法则，其中每个局部导数都由 "
    "sympy.diff 求出（把 μ 和 σ² 当作变量）：",
    "model_norm_path_direct": "直接进入 x̂（μ 和 σ² 保持不变）：",
    "model_norm_path_mean": "经过均值 μ：",
    "model_norm_path_variance": "经过方差 σ²：",
    "model_norm_variance_mean": "从 μ 再进入 σ² 的路径贡献为零，因为：",
    "model_norm_total": "三条路径之和就是完整的梯度（SymPy 把这个和与直接对定义求导的结果作了比对），"
    "即教科书中的形式：",
    "model_norm_result": "{layer}：梯度",
    "model_layernorm_batch": "对一批样本，每个样本各自归一化，所以 ∂L/∂x 逐行适用；∂L/∂γ 和 ∂L/∂β 把各样本的项相加。",
    "model_batchnorm_batch": "每个特征 c 各自归一化，所以 ∂L/∂x 逐列适用，求和遍历整批样本。",
    "model_heading_order": "整个模型的反向传播",
    "model_order_intro": "各层按从最后一层到第一层的顺序处理。记 {h} 为第 l 层的输出（模型的输入记为 x）：每一层从后"
    "一层接收 {g}，并把损失对自身输入的梯度传给前一层。",
    "model_order_loss": "损失函数（{loss}）给出 {g}。",
    "model_order_layer": "第 {layer} 层接收 {g}，并把 {g_in} 传给前一层。",
    "model_order_layer_parameters": "第 {layer} 层接收 {g}，并把 {g_in} 传给前一层；同时给出 {parameters} 的梯度。",
    "model_order_split": "残差块 {layer}：{g} 分成两路，沿跳跃连接原样传回，同时作为 {g_block} 进入块的最后一层。",
    "model_order_meet": "残差块 {layer} 的两条路径在其输入处重新汇合：{total}。",
    "model_heading_numbers": "代入数值：第 {layer} 层",
    "model_numbers_batchnorm": "特征 1 在整批上的 N = {n} 个值，由 SymPy 以 40 位有效数字计算，显示 5 位；g 来自"
    "其后各层（沿这些层用数值应用链式法则得到）：",
    "model_numbers_layernorm": "样本 {sample} 的 n = {n} 个特征，由 SymPy 以 40 位有效数字计算，显示 5 位；"
    "g 来自其后各层（沿这些层用数值应用链式法则得到）：",
    "model_numbers_worked": "按教科书的公式算出第一个分量：",
    "model_numbers_conv": "第 {sample} 个样本、输入通道 0（卷积核 {kernel}、步长 {stride}、补零 {padding}），由 SymPy "
    "以 40 位有效数字计算、显示 5 位；每个输出通道 o 的 g = ∂L/∂y 来自其后的各层，ĝ 是在 g 的分量之间插入 s − 1 个零、"
    "四周补 K − 1 个零得到的，W[o,0] 是卷积核：",
    "model_numbers_conv_worked": "按教科书的公式 {form}（二维时每个轴都如此）算出 {entry}：卷积核翻转，ĝ 为 0 的"
    "乘积略去：",
    "model_numbers_pool": "第 {sample} 个样本、通道 0（窗口 {kernel}、步长 {stride}），由 SymPy 以 40 位有效数字计算、"
    "显示 5 位：该层的输入 x 与来自其后各层的 g = ∂L/∂y：",
    "model_numbers_window": "{window} 的窗口中最大的分量是 {top}，所以 {window} 的 g 全部传给 {top}，"
    "窗口中其他分量得到 0：",
    "model_numbers_overlap": "{entry} 是两个重叠窗口中各自最大的分量：它接收两个窗口的 g 之和：",
    "model_numbers_average": "{entry} 属于 {windows} 个窗口：它从每个窗口得到 g/K，各份相加：",
    "model_numbers_routed": "每个窗口的 g 传给其最大分量（其他分量得到 0）：",
    "model_numbers_shared": "每个窗口的 g 以 g/K 平分给其中各分量，属于多个窗口的分量把各份相加：",
    "model_numbers_checked": "沿整个模型逐个分量应用链式法则得到的 ∂L/∂x 与此相同，torch 的 autograd 在 float64 下"
    "也给出相同的值（chainrule 的测试对二者作了比对）。",
    "model_checked": "SymPy 用 sympy.diff 以下标形式（对符号大小求和）对每一层的定义求导；"
    "chainrule 的测试在若干具体大小下（归一化、Dropout 和残差的等式取 2、3、5，"
    "卷积和池化的等式取它们各自的大小）检查上面每个等式的各边依次相等，"
    "并把数值与 torch 的 autograd 作比对。",
}

ENGLISH = MappingProxyType({**ENGLISH, **_MODEL_ENGLISH})
CHINESE = MappingProxyType({**CHINESE, **_MODEL_CHINESE})

WORDS: Mapping[str, Mapping[str, str]] = MappingProxyType({"en": ENGLISH, "zh": CHINESE})


def words(lang: str) -> Mapping[str, str]:
    """The table of one language; a clear error for any other."""
    if not isinstance(lang, str) or lang not in WORDS:
        from ._errors import InputError

        raise InputError(f"lang must be one of {', '.join(LANGUAGES)}; got {lang!r}")
    return WORDS[lang]


@dataclass(frozen=True)
class Note:
    """A sentence kept as a key of the word tables and its placeholders, so that it can be said in any language
    later (a report's line, an error's message)."""

    key: str
    # numbers already formatted (the same in every language), or a Note said in the same language
    fields: Mapping[str, str | Note] = field(default_factory=dict)

    def text(self, lang: str = "en") -> str:
        fields = {name: value.text(lang) if isinstance(value, Note) else value for name, value in self.fields.items()}
        return words(lang)[self.key].format(**fields)
