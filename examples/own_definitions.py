"""An activation and a loss of your own, from their SymPy definitions alone: derive, compile, verify."""

import sympy

from numeric import compile_gradients, verify
from symbolic import Activation, Loss, Network, derive

# swish with its slope 1 (= silu), written out; SymPy differentiates it, torch autograd checks it
swish = Activation.define("swish", lambda z: z / (1 + sympy.exp(-z)))
log_cosh = Loss.define("log_cosh", lambda prediction, target: sympy.log(sympy.cosh(prediction - target)))

network = Network([3, 4, 2], activations=[swish, "identity"], loss=log_cosh, bias=True)
derivation = derive(network)
print("swish'(z) =", swish.local_derivative(sympy.Symbol("z")))
print("dL/da2[1] =", derivation.layers[-1].upstream[0])
print(compile_gradients(derivation).source)
print(verify(derivation, batch=8, seed=0))
