"""The ``trm`` command line: a thin shell over library calls, one file per area.

Each area module exposes ``register(app)`` adding its commands; nothing here holds logic.
Plugins add theirs through the ``trm_register_commands`` hook (the SCORM export is one);
a name the core or an earlier plugin took is kept.

Importing this package does no work: ``main()`` builds the application (``build_app``), and the
plugin manager is asked for only then. ``trm_modules.cli.app`` is the process's application, built on
first access (tests drive it with typer's ``CliRunner``).
"""

from __future__ import annotations

import os
import sys

import pluggy
import typer
import typer.rich_utils

import threading
from typing import Any

from ..plugins import call_hook, get_plugin_manager
from . import (
    host_commands,
    model_commands,
    package_commands,
    privacy_commands,
    retrain_commands,
    server_commands,
    store_commands,
    trial_commands,
)

AREAS = (
    model_commands,
    package_commands,
    host_commands,
    store_commands,
    privacy_commands,
    retrain_commands,
    server_commands,
    trial_commands,
)

#: Width of ``--help`` when it is not shown on a terminal (piped, a CI log): rich would fall back to 80
#: columns and squeeze every option's help into a narrow column. On a terminal, its own width.
HELP_WIDTH = 120
if not os.environ.get("TERMINAL_WIDTH") and not sys.stdout.isatty():
    typer.rich_utils.MAX_WIDTH = int(os.environ.get("COLUMNS") or 0) or HELP_WIDTH


def _root() -> None:
    """Package, serve, hot-swap and retrain Tiny Recursive Models (TRM) as reasoning modules."""


def build_app(pm: pluggy.PluginManager | None = None) -> typer.Typer:
    """The ``trm`` application: the core's commands, then those of the plugins of ``pm`` (default: the
    process's plugin manager)."""
    cli = typer.Typer(
        name="trm",
        help="Package, serve, hot-swap and retrain Tiny Recursive Models (TRM) as reasoning modules.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    cli.callback()(_root)
    for area in AREAS:
        area.register(cli)
    add_plugin_commands(cli, pm if pm is not None else get_plugin_manager())
    return cli


def _command_name(info: typer.models.CommandInfo | typer.models.TyperInfo) -> str | None:
    if info.name:
        return info.name
    callback = info.callback if isinstance(info, typer.models.CommandInfo) else None
    return callback.__name__.replace("_", "-") if callback is not None else None


def add_plugin_commands(cli: typer.Typer, pm: pluggy.PluginManager) -> None:
    """Let every plugin's ``trm_register_commands`` add to ``cli``; names already taken stay with their owner."""
    infos: list[typer.models.CommandInfo | typer.models.TyperInfo] = [*cli.registered_commands, *cli.registered_groups]
    taken = {_command_name(info) for info in infos}
    before = (len(cli.registered_commands), len(cli.registered_groups))
    call_hook(pm, "trm_register_commands", cli=cli)
    for attribute, start in zip(("registered_commands", "registered_groups"), before):
        registered = getattr(cli, attribute)
        added = []
        for info in registered[start:]:
            name = _command_name(info)
            if name not in taken:
                taken.add(name)
                added.append(info)
        registered[start:] = added


_app: typer.Typer | None = None
_app_lock = threading.Lock()


def process_app() -> typer.Typer:
    """The process's application, built once on first use."""
    global _app
    with _app_lock:
        if _app is None:
            _app = build_app()
        return _app


def __getattr__(name: str) -> Any:
    if name == "app":  # ``from trm_modules.cli import app``: built when asked for, never at import
        return process_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    from ..redaction import install_log_redaction

    install_log_redaction()
    process_app()()
