"""The ``trm`` command line: a thin shell over library calls, one file per area.

Each area module exposes ``register(app)`` adding its commands; nothing here holds logic.
Plugins add theirs through the ``trm_register_commands`` hook (the SCORM export is one);
a name the core or an earlier plugin took is kept.
"""

from __future__ import annotations

import pluggy
import typer

from ..plugins import call_hook, get_plugin_manager
from . import host_commands, model_commands, package_commands, retrain_commands, server_commands, store_commands

app = typer.Typer(
    name="trm",
    help="Package, serve, hot-swap and retrain Tiny Recursive Models (TRM) as reasoning modules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Package, serve, hot-swap and retrain Tiny Recursive Models (TRM) as reasoning modules."""


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


for _area in (model_commands, package_commands, host_commands, store_commands, retrain_commands, server_commands):
    _area.register(app)
add_plugin_commands(app, get_plugin_manager())


def main() -> None:
    from ..redaction import install_log_redaction

    install_log_redaction()
    app()
