"""The host's built-in plugin: module folders named in the ``TRM_MODULE_PATH`` environment variable.

``TRM_MODULE_PATH`` lists folders (``os.pathsep``-separated) whose ``*.trm`` files every host
can load, the way ``PATH`` lists folders of programs.
"""

from __future__ import annotations

import os
import threading

from .hookspecs import hookimpl
from .sources import FolderSource

MODULE_PATH_ENV = "TRM_MODULE_PATH"

_folder_sources: dict[str, FolderSource] = {}
_lock = threading.Lock()


@hookimpl
def trm_module_sources() -> list[FolderSource]:
    """One ``FolderSource`` per folder in ``TRM_MODULE_PATH`` (kept, so their indexes are reused)."""
    folders = [f for f in os.environ.get(MODULE_PATH_ENV, "").split(os.pathsep) if f]
    with _lock:
        for folder in folders:
            if folder not in _folder_sources:
                _folder_sources[folder] = FolderSource(folder)
        return [_folder_sources[folder] for folder in folders]
