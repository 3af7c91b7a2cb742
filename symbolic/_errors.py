"""chainrule's exceptions: one base class, each also a ValueError/TypeError so plain handlers work."""


class ChainruleError(Exception):
    """Base class of every error chainrule raises on purpose."""


class NetworkError(ChainruleError, ValueError):
    """A network description that chainrule cannot build (bad size, unknown name, bad pairing)."""


class NetworkTypeError(ChainruleError, TypeError):
    """A network description of the wrong type (a float size, a non-string activation name)."""


class ExpressionTooLarge(ChainruleError, ValueError):
    """The fully expanded closed form would exceed the size budget."""


class InputError(ChainruleError, ValueError):
    """Numbers handed to chainrule that do not fit the network (a wrong shape, a missing parameter)."""


class InputTypeError(ChainruleError, TypeError):
    """Numbers of the wrong type (a list where a tensor is needed, an integer tensor)."""


class UnsupportedModule(ChainruleError, ValueError):
    """A torch module that from_torch cannot turn into a Network."""
