"""The ``trm`` command line: a thin shell over library calls, one file per area.

Each area module exposes ``register(app)`` adding its commands; nothing here holds logic.
"""

from __future__ import annotations

import typer

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


for _area in (model_commands, package_commands, host_commands, store_commands, retrain_commands, server_commands):
    _area.register(app)


def main() -> None:
    app()
