"""The command line's one error path: a typed error becomes one line on stderr and an exit status by class.

Exit statuses: 0 done; 1 refused or failed (any other ``TRMError``); 2 bad usage or input (a
``TRMError`` that is also a ``ValueError``: configuration, codec input, token scopes, version
specifiers; also click's own usage errors); 3 nothing by that name (module, version, package);
4 the store cannot be reached.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ModuleNotFound, TRMError
from ..store.errors import StoreUnavailable

#: Error class → exit status; the first class the error is an instance of decides.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (ModuleNotFound, 3),
    (StoreUnavailable, 4),
    (ValueError, 2),
    (TRMError, 1),
)

errors = Console(stderr=True)


def exit_code_of(exc: BaseException) -> int:
    """The exit status ``exc`` ends the command with (see the module docstring)."""
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), 1)


def fail(exc: BaseException, context: str = "") -> NoReturn:
    """Print ``error: [context: ]Type: message`` on one line and end the command with its exit status."""
    prefix = f"{context}: " if context else ""
    # The message is escaped: rich would take its "[rule: file at /pointer]" suffix for markup and drop it.
    errors.print(
        f"[bold red]error:[/] {escape(f'{prefix}{type(exc).__name__}: {exc}')}",
        markup=True,
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(exit_code_of(exc))


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Run a command's body: a ``TRMError`` raised inside becomes one line and its exit status."""
    try:
        yield
    except TRMError as exc:
        fail(exc)
