"""The network of the PyTorch tutorial on forward and backward propagation that chainrule starts from."""

from ._network import Network

TUTORIAL = Network([1, 2, 2], activations="sigmoid", loss="half_sse")
"""z1 = W1 x, y1 = σ(z1), z2 = W2 y1, y2 = σ(z2), L = ½ Σ (y2 − y)²."""

TUTORIAL_VALUES = {
    "x": [[1.0]],
    "y": [[1.0], [0.0]],
    "W1": [[1.0], [2.0]],
    "W2": [[3.0, 4.0], [5.0, 6.0]],
}
"""The tutorial's input, target and weights (column vectors; weights are [out, in])."""

TUTORIAL_PRINTED = {
    "y1": [[0.7311], [0.8808]],
    "y2": [[0.9967], [0.9999]],
    "loss": 0.4999,
    "W1": [[1.2243e-04], [7.8005e-05]],
    "W2": [[-7.8431e-06, -9.4496e-06], [9.5752e-05, 1.1536e-04]],
}
"""What the tutorial prints (float32 results, rounded): compare at rtol ~1e-4."""
