"""Where the host finds module versions: the ``ModuleSource`` protocol and its implementations.

A source answers two questions: which versions of a module it has (``list_versions``) and
"give me this one" (``open``), returning an opened, verified package or a ``ServableVersion``.
Plugins contribute sources through the ``trm_module_sources`` hook.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import ModuleNotFound
from ..package import open_package
from ..package.digests import REGISTRY_DIGESTS
from ..package.semver import sort_versions
from .loaded import ServableVersion


@runtime_checkable
class ModuleSource(Protocol):
    """A place module versions come from (a folder of ``.trm`` files, a registry …)."""

    def list_versions(self, name: str) -> list[str]:
        """Versions of module ``name`` this source can open, oldest first ([] if none)."""
        ...

    def open(self, name: str, version: str) -> Any:
        """The opened, verified package (or ``ServableVersion``) of ``name`` ``version``.

        Raises ``ModuleNotFound`` when this source does not have it; package errors propagate.
        """
        ...


class FolderSource:
    """Every ``*.trm`` package file under a folder (recursively), indexed by manifest name and version.

    The index is rebuilt lazily when a file is added, removed or changed; each file is opened
    (and so verified) once per change, and its verified digests are remembered by file identity, so
    opening it to serve it does not hash it again. Files that fail to open are skipped and listed in
    ``errors`` (path → message) rather than hiding the rest of the folder.
    """

    def __init__(self, path: str | os.PathLike[str], trusted_keys: Any = None) -> None:
        self.path = Path(path)
        self.trusted_keys = trusted_keys
        self.errors: dict[str, str] = {}
        self._index: dict[str, dict[str, Path]] = {}
        self._stamps: dict[Path, tuple[int, int]] = {}
        self._entries: dict[Path, tuple[str, str] | str] = {}  # (name, version) or load error
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FolderSource({str(self.path)!r})"

    def _refresh(self) -> None:
        files = sorted(self.path.rglob("*.trm")) if self.path.is_dir() else []
        stamps = {}
        for file in files:
            stat = file.stat()
            stamps[file] = (stat.st_mtime_ns, stat.st_size)
        if stamps == self._stamps:
            return
        entries: dict[Path, tuple[str, str] | str] = {}
        for file, stamp in stamps.items():
            if self._stamps.get(file) == stamp and file in self._entries:
                entries[file] = self._entries[file]
                continue
            try:
                manifest = open_package(file, trusted_keys=self.trusted_keys, digest_cache=REGISTRY_DIGESTS).manifest
                entries[file] = (manifest.name, manifest.version)
            except Exception as exc:  # noqa: BLE001 - one bad file must not hide the others
                entries[file] = f"{type(exc).__name__}: {exc}"
        index: dict[str, dict[str, Path]] = {}
        for file, entry in entries.items():
            if isinstance(entry, tuple):
                index.setdefault(entry[0], {})[entry[1]] = file
        self._stamps, self._entries, self._index = stamps, entries, index
        self.errors = {str(file): entry for file, entry in entries.items() if isinstance(entry, str)}

    def modules(self) -> dict[str, list[str]]:
        """Module name → versions (oldest first) available in this folder."""
        with self._lock:
            self._refresh()
            return {name: sort_versions(versions) for name, versions in self._index.items()}

    def list_versions(self, name: str) -> list[str]:
        """Versions of ``name`` in this folder, oldest first."""
        return self.modules().get(name, [])

    def open(self, name: str, version: str) -> Any:
        """Open and verify the package file of ``name`` ``version``."""
        with self._lock:
            self._refresh()
            file = self._index.get(name, {}).get(version)
        if file is None:
            raise ModuleNotFound(f"{self!r} has no package for module {name!r} version {version!r}")
        return open_package(file, trusted_keys=self.trusted_keys, digest_cache=REGISTRY_DIGESTS)


class MemorySource:
    """Versions held in memory as ``ServableVersion`` objects (embedding, tests, freshly trained models)."""

    def __init__(self, specs: list[ServableVersion] | None = None) -> None:
        self._specs: dict[tuple[str, str], ServableVersion] = {}
        self._lock = threading.Lock()
        for spec in specs or []:
            self.add(spec)

    def __repr__(self) -> str:
        return f"MemorySource({len(self._specs)} versions)"

    def add(self, spec: ServableVersion) -> None:
        """Make ``spec`` available (replacing an earlier spec of the same name and version)."""
        with self._lock:
            self._specs[(spec.name, spec.version)] = spec

    def list_versions(self, name: str) -> list[str]:
        """Versions of ``name`` held, oldest first."""
        with self._lock:
            return sort_versions(v for n, v in self._specs if n == name)

    def open(self, name: str, version: str) -> ServableVersion:
        """The ``ServableVersion`` of ``name`` ``version``."""
        with self._lock:
            spec = self._specs.get((name, version))
        if spec is None:
            raise ModuleNotFound(f"{self!r} has no module {name!r} version {version!r}")
        return spec
