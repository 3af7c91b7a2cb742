"""A residual MLP with LayerNorm, written as ordinary modules: read by from_torch, its gradients compiled and
compared with the model's own backward(), then verified against autograd and finite differences in float64."""

import torch
from torch import nn

import numeric
from numeric import compile_gradients, from_torch


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(width), nn.Linear(width, width)

    def forward(self, x):
        return x + self.fc(torch.relu(self.norm(x)))


torch.manual_seed(0)
module = nn.Sequential(nn.Linear(16, 8), Block(8), Block(8), nn.Linear(8, 3))
model, params = from_torch(module, nn.CrossEntropyLoss())
for layer in model.layers:
    print(" ", layer)
print("parameters:", ", ".join(f"{name} {list(shape)}" for name, shape in model.parameter_shapes.items()))

x, classes = torch.randn(32, 16), torch.randint(0, 3, (32,))
f = compile_gradients(model)
ours = f(x, nn.functional.one_hot(classes, 3).float(), params)
nn.CrossEntropyLoss()(module(x), classes).backward()
own = dict(module.named_parameters())
for name, torch_name in (("gamma2", "1.norm.weight"), ("W3", "1.fc.weight"), ("W6", "3.weight")):
    difference = (ours[name] - own[torch_name].grad).abs().max()
    print(f"{name} ({torch_name}): largest difference from the model's own .grad = {difference:.1e}")
print("the first block's LayerNorm backward and the residual sum, as compiled (f.source):")
lines = f.source.splitlines()
start = next(i for i, line in enumerate(lines) if line.strip().startswith("grad_gamma2 ="))
end = next(i for i, line in enumerate(lines) if line.strip().startswith("grad_z1 ="))
print("\n".join(line for line in lines[start : end + 1] if not line.strip().startswith("del ")))
print(numeric.verify(model, seed=1))
