"""A general network: derive, look at the generated code, verify."""

from numeric import compile_gradients, verify
from symbolic import Network, derive

network = Network([3, 4, 2], activations=["tanh", "softmax"], loss="cross_entropy", bias=True)
derivation = derive(network)

# δ of the output layer, derived through the softmax Jacobian (a·Σy − y, i.e. a − y for a probability target)
print(derivation.layers[-1].delta_definition.T)

compiled = compile_gradients(derivation)  # f(x, y, params) -> {"W1": ..., "b1": ..., ...}
print(compiled.source)

print(verify(derivation, batch=8, seed=0))
