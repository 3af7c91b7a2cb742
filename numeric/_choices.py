"""The choices compile_gradients and verify offer, in one table each.

Torch-free, so that the command line lists them in its options without importing torch (``chainrule derive``
never does); ``numeric._compile`` and ``numeric._verify`` check their arguments against the same tables.
"""

from __future__ import annotations

FORMS = ("matrix", "elementwise")  # compile_gradients(form=...): whole tensors, or one line per unit
# verify(gradcheck=...): finite differences on every entry ("full"), on a random direction and random entries per
# parameter ("sample"), none ("off"), or full on small networks and sampled on large ones ("auto")
GRADCHECK_MODES = ("auto", "full", "sample", "off")
# compile_gradients(backend=...): None, the generated Python as is; "inductor", through torch.compile; "c", one
# generated C function called through ctypes (numeric._c; the matrix form only)
BACKENDS = (None, "inductor", "c")
