"""Typed errors shared across trm-modules.

Every error carries a message a user can act on: what was wrong, where, and what was expected.
Subsystems derive their own errors from these (``PackageError`` in ``trm_modules.package`` …).
"""

from __future__ import annotations

from typing import Any, Iterable


def json_pointer(parts: Iterable[Any]) -> str:
    """RFC 6901 pointer of a path given as keys and indices (``["grid", 0]`` → ``/grid/0``); every
    error that points into a JSON document carries one."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


class TRMError(Exception):
    """Base class of every error trm-modules raises on purpose."""


class ConfigError(TRMError, ValueError):
    """A configuration (model, training, host) is inconsistent or incomplete."""


class CodecError(TRMError, ValueError):
    """Task data does not fit the codec: wrong shape, unknown symbol, bad size.

    ``path`` is a JSON pointer (RFC 6901) into the offending document, "" for the root.
    """

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.message} (at {self.path or '/'})"


class UnknownCodec(TRMError, LookupError):
    """No plugin provides a codec with this name."""


class UnknownArchitecture(ConfigError, LookupError):
    """No installed plugin provides a reasoning architecture with this name (``name`` says which)."""

    def __init__(self, message: str, name: str = "") -> None:
        super().__init__(message)
        self.name = name


class ModuleNotFound(TRMError, LookupError):
    """No reasoning module (or version) with this name is known."""


class InputError(TRMError, ValueError):
    """A file or value named on the command line cannot be used (missing, unreadable, not text)."""


class EngineUnavailable(TRMError):
    """The compute engine asked for cannot run here (``onnx`` without onnxruntime installed, or on a GPU)."""
