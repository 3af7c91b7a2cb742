"""PyTorch written the usual way: logits, nn.CrossEntropyLoss() with class indices, samples as rows.

numeric.gradients derives and compiles the backward pass of this very model and loss; each result is
compared here with what .backward() leaves in .grad (and in inputs.grad, for the input gradient).
"""

import torch
from torch import nn

from numeric import from_torch, gradients

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)).double()
loss_fn = nn.CrossEntropyLoss()  # reduction="mean", on logits
inputs = torch.randn(32, 784, dtype=torch.float64, requires_grad=True)
targets = torch.randint(0, 10, (32,))

network, _ = from_torch(model, loss_fn)
print(f"read as: {network.describe()}")
ours = gradients(model, loss_fn, inputs.detach(), targets, wrt=("x",))

loss_fn(model(inputs), targets).backward()
expected = {name: parameter.grad for name, parameter in model.named_parameters()}
expected["x"] = inputs.grad
for name, grad in expected.items():
    error = (ours[name] - grad).abs().max().item() / grad.abs().max().item()
    print(f"{name:<9} {list(ours[name].shape)!s:<11} equal to .grad within 1e-12 (relative): {error <= 1e-12}")
