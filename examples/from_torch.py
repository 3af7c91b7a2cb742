"""An nn.Sequential someone already has: its gradients, compiled, equal its own backward()."""

import torch
from torch import nn

from numeric import REFERENCE_LOSSES, compile_gradients, from_torch
from symbolic import derive

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3), nn.Sigmoid())
network, params = from_torch(model, loss="bce")
print(network)

x = torch.randn(4, 32)  # chainrule's layout: one sample per column
y = torch.rand(3, 32)
gradients = compile_gradients(derive(network))(x, y, params)

REFERENCE_LOSSES["bce"](model(x.T), y.T).backward()  # the model sees samples as rows
for name, linear in (("W1", model[0]), ("b1", model[0]), ("W2", model[2]), ("b2", model[2])):
    own = linear.weight.grad if name.startswith("W") else linear.bias.grad.reshape(-1, 1)
    print(f"{name}: largest difference from the model's own .grad = {(gradients[name] - own).abs().max():.1e}")
