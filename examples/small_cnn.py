"""A small CNN written as an ordinary module: read by from_torch (the input shape given, as a convolution
cannot tell it), its gradients compiled and compared with the model's own backward()."""

import torch
from torch import nn

import numeric
from numeric import compile_gradients, from_torch


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
        self.head = nn.Linear(8 * 7 * 7, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.head(torch.flatten(x, 1))


torch.manual_seed(0)
module = SmallCNN()
model, params = from_torch(module, nn.CrossEntropyLoss(), input_shape=(1, 28, 28))
for placed in model.placed:
    print(f"  {type(placed.layer).__name__:8} {list(placed.shape_in)} -> {list(placed.shape_out)}")

x, classes = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
f = compile_gradients(model)
ours = f(x, nn.functional.one_hot(classes, 10).float(), params)
nn.CrossEntropyLoss()(module(x), classes).backward()
for name, torch_name in (("W1", "conv1.weight"), ("b2", "conv2.bias"), ("W3", "head.weight")):
    difference = (ours[name] - dict(module.named_parameters())[torch_name].grad).abs().max()
    print(f"{name} ({torch_name}): largest difference from the model's own .grad = {difference:.1e}")
print("the max-pooling and convolution backward, as compiled (f.source):")
print("\n".join(line for line in f.source.splitlines() if "scatter_add_" in line or "conv_transpose2d" in line))
print(numeric.verify(model, seed=1))
