"""The host's built-in plugin: where every host looks for modules without being told.

- the modules installed with ``trm install`` (the registry in ``<TRM_HOME>/modules``), and
- the folders named in ``TRM_MODULE_PATH`` (``os.pathsep``-separated), whose ``*.trm`` files
  every host can load, the way ``PATH`` lists folders of programs.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..hookspecs import hookimpl
from .sources import FolderSource

MODULE_PATH_ENV = "TRM_MODULE_PATH"

_folder_sources: dict[str, FolderSource] = {}
_lock = threading.Lock()


def installed_modules_source() -> Any | None:
    """The registry of installed modules, or None when nothing was ever installed (nothing is created)."""
    from ..package.registry import INDEX_NAME, DirectoryRegistry, install_home

    root = install_home() / "modules"
    return DirectoryRegistry(root) if (root / INDEX_NAME).is_file() else None


@hookimpl
def trm_module_sources() -> list[Any]:
    """The installed-modules registry (if any), then one ``FolderSource`` per ``TRM_MODULE_PATH`` folder."""
    folders = [f for f in os.environ.get(MODULE_PATH_ENV, "").split(os.pathsep) if f]
    with _lock:
        for folder in folders:
            if folder not in _folder_sources:
                _folder_sources[folder] = FolderSource(folder)
        sources: list[Any] = [_folder_sources[folder] for folder in folders]
    installed = installed_modules_source()
    return ([installed] if installed is not None else []) + sources
