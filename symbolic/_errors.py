"""chainrule's exceptions: one base class, each also a ValueError/TypeError so plain handlers work."""


class ChainruleError(Exception):
    """Base class of every error chainrule raises on purpose."""


class NetworkError(ChainruleError, ValueError):
    """A network description that chainrule cannot build (bad size, unknown name, bad pairing)."""


class NetworkTypeError(ChainruleError, TypeError):
    """A network description of the wrong type (a float size, a non-string activation name)."""


class ExpressionTooLarge(ChainruleError, ValueError):
    """The fully expanded closed form would exceed the size budget. ``sentence`` (a ``Note`` of the word
    tables) is the message, kept so that a report can say it in another language."""

    def __init__(self, message: str, sentence: object = None) -> None:
        super().__init__(message)
        self.sentence = sentence


class InputError(ChainruleError, ValueError):
    """Numbers handed to chainrule that do not fit the network (a wrong shape, a missing parameter)."""


class InputTypeError(ChainruleError, TypeError):
    """Numbers of the wrong type (a list where a tensor is needed, an integer tensor)."""


class UnsupportedModule(ChainruleError, ValueError):
    """A torch module that from_torch cannot turn into a Network."""


class ResourceError(ChainruleError, MemoryError):
    """The request is fine but this machine cannot carry it out: the run's estimated memory (``needed``
    bytes) exceeds what is available (``available`` bytes). Raised before the work starts."""

    def __init__(self, message: str, needed: int = 0, available: int = 0) -> None:
        super().__init__(message)
        self.needed = needed
        self.available = available


def require_exactly(what: str, given: object, expected: tuple[str, ...]) -> None:
    """``given`` must be a mapping with exactly the names ``expected``; else a message naming the difference."""
    from collections.abc import Mapping

    if not isinstance(given, Mapping):
        raise InputTypeError(f"{what} must be a mapping of names ({', '.join(expected)}); got {type(given).__name__}")
    missing = [name for name in expected if name not in given]
    unknown = [str(name) for name in given if name not in expected]
    if missing or unknown:
        raise InputError(
            f"{what} must hold exactly {', '.join(expected)}; "
            f"missing: {', '.join(missing) or 'none'}; unknown: {', '.join(unknown) or 'none'}"
        )
