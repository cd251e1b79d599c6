"""The host's built-in plugin: where every host looks for modules without being told.

- the modules installed with ``trm install`` (the registry in ``<home>/modules``, ``TRM_HOME``), and
- the folders of the ``module_path`` setting (``TRM_MODULE_PATH``, ``os.pathsep``-separated), whose
  ``*.trm`` files every host can load, the way ``PATH`` lists folders of programs.
"""

from __future__ import annotations

from typing import Any

from ..hookspecs import hookimpl
from ..package.registry import INDEX_NAME, DirectoryRegistry
from ..settings import Settings
from .sources import FolderSource


class BuiltinSources:
    """The built-in ``trm_module_sources`` of one plugin manager, configured by its ``Settings``."""

    def __init__(self, settings: Settings) -> None:
        self.installed_root = settings.home / "modules"
        self.folders = [FolderSource(folder) for folder in settings.module_folders]

    def installed_modules_source(self) -> DirectoryRegistry | None:
        """The registry of installed modules, or None when nothing was ever installed (nothing is created)."""
        return DirectoryRegistry(self.installed_root) if (self.installed_root / INDEX_NAME).is_file() else None

    @hookimpl
    def trm_module_sources(self) -> list[Any]:
        """The installed-modules registry (if any), then one ``FolderSource`` per ``module_path`` folder."""
        installed = self.installed_modules_source()
        return ([installed] if installed is not None else []) + list(self.folders)
