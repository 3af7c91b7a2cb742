"""A student's hand-written backward pass for a two-layer network, with one planted mistake.

The network: x (3 inputs) -> sigmoid layer of 4 -> sigmoid layer of 2, with biases, loss ½ Σ (ŷ − y)²
summed over the batch; samples are columns. Check it (chainrule names the mistake):

    chainrule check examples/student_backward.py:backward --sizes 3,4,2 --activation sigmoid --bias
    python examples/student_backward.py
"""

import torch


def backward(x, y, params):
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]  # noqa: N806 - the lecture's names
    # forward pass
    a1 = torch.sigmoid(W1 @ x + b1)
    a2 = torch.sigmoid(W2 @ a1 + b2)
    # backward pass
    delta2 = (a2 - y) * a2 * (1 - a2)
    # the planted mistake: the sigmoid's derivative taken at the layer's output, σ(a1)(1 − σ(a1)),
    # where it should be a1 (1 − a1)
    delta1 = (W2.T @ delta2) * torch.sigmoid(a1) * (1 - torch.sigmoid(a1))
    return {
        "W1": delta1 @ x.T,
        "b1": delta1.sum(dim=1, keepdim=True),
        "W2": delta2 @ a1.T,
        "b2": delta2.sum(dim=1, keepdim=True),
    }


if __name__ == "__main__":
    from numeric import check_backward
    from symbolic import Network

    report = check_backward(backward, Network([3, 4, 2], activations="sigmoid", bias=True))
    print(report)
