"""Typed errors of the host: what went wrong, for which module and version, and what to do."""

from __future__ import annotations

from ..errors import CodecError, TRMError
from ..package.errors import SelfTestFailed

__all__ = ["HostError", "InvalidInput", "PlacementError", "SelfTestFailed", "SwapError", "VersionNotLoaded"]


class HostError(TRMError):
    """Base class of the host's errors."""


class InvalidInput(HostError, CodecError):
    """A request's input does not match the module's input schema or codec.

    ``path`` is a JSON pointer into the request input ("" for the whole document);
    for ``solve_many`` it starts with the item's index (``/3/grid/0``).
    """


class SwapError(HostError):
    """A version could not be made active (load, placement or self-test failed); ``cause`` says why.

    The slot is unchanged: the previous version (if any) keeps answering.
    """

    def __init__(self, module: str, version: str, cause: BaseException) -> None:
        super().__init__(
            f"cannot activate {module} {version}: {type(cause).__name__}: {cause}; "
            "the previously active version stays in place"
        )
        self.module = module
        self.version = version
        self.cause = cause


class PlacementError(HostError):
    """No allowed device has room for a version within its memory budget, even after eviction."""


class VersionNotLoaded(HostError, LookupError):
    """The requested version of a module is not loaded in this host (swap, pin or canary it first).

    ``module``: the module's name, when the module has no active version at all (the server's 404 then
    names the route that activates one).
    """

    def __init__(self, message: str, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module
