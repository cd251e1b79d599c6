"""The plugin contract of trm-modules (pluggy project name ``trm_modules``).

Plugins implement any of these hooks with functions marked ``@hookimpl`` and register through
the ``trm_modules`` entry-point group in their own ``pyproject.toml``::

    [project.entry-points.trm_modules]
    my_plugin = "my_package.plugin_module"
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "trm_modules"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def trm_register_codecs() -> list[type]:
    """Return the task codec classes this plugin provides (subclasses of ``TaskCodec``).

    Each class has a unique ``name`` (e.g. ``"sudoku"``); a package's manifest names the codec
    in ``task.codec`` and its parameters in ``task.params``.
    """
