"""Directory registries: an ``index.json`` (name → versions → file, digest, size, yanked) beside the files.

The same class serves the project's default registry (the repo's ``registry/`` folder or
``TRM_REGISTRY``) and the local install directory (``TRM_HOME``, default the user data dir).
``DirectoryRegistry`` also satisfies the host's ``ModuleSource`` protocol (``list_versions`` /
``open``), so a ``trm_module_sources`` hook can return registries directly.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from ..settings import Settings
from .archive import Limits
from .errors import DigestMismatch, NoMatchingVersion, PackageError, RegistryError, VersionExists
from .layout import PACKAGE_SUFFIX
from .loaded import Package
from .digests import REGISTRY_DIGESTS
from .open import open_package, verify_package
from .semver import Version, VersionSpec
from .signing import TrustedKeys

INDEX_NAME = "index.json"
INDEX_FORMAT = 1
PACKAGES_FOLDER = "packages"


@dataclass(frozen=True)
class RegistryEntry:
    """One published version: where its file is (relative to the registry root) and what it must hash to."""

    name: str
    version: str
    file: str
    digest: str
    size: int
    yanked: bool = False
    yank_reason: str | None = None
    published_at: str | None = None
    module_id: str | None = None
    title: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def split_requirement(requirement: str) -> tuple[str, str | None]:
    """``"name@^1.2"`` → ``("name", "^1.2")``; ``"name"`` → ``("name", None)``."""
    name, _, spec = requirement.partition("@")
    return name.strip(), (spec.strip() or None)


def file_digest(path: Path) -> tuple[str, int]:
    """``("sha256:<hex>", size)`` of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class DirectoryRegistry:
    """A registry stored in a folder: ``index.json`` plus ``packages/<name>/<name>-<version>.trm``."""

    def __init__(self, root: str | os.PathLike, *, create: bool = False) -> None:
        self.root = Path(root)
        self.index_path = self.root / INDEX_NAME
        if create and not self.index_path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            self._write_index({"format": INDEX_FORMAT, "modules": {}})

    def __repr__(self) -> str:
        return f"DirectoryRegistry({str(self.root)!r})"

    # ------------------------------------------------------------------------------- reading
    def read_index(self) -> dict[str, Any]:
        """The parsed index; an absent index is an empty registry."""
        if not self.index_path.exists():
            return {"format": INDEX_FORMAT, "modules": {}}
        try:
            index = json.loads(self.index_path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(
                f"cannot read registry index {self.index_path}: {exc}", file=str(self.index_path)
            ) from exc
        if (
            not isinstance(index, dict)
            or index.get("format") != INDEX_FORMAT
            or not isinstance(index.get("modules"), dict)
        ):
            raise RegistryError(
                f"{self.index_path} is not a format-{INDEX_FORMAT} registry index "
                '({"format": 1, "modules": {...}})',
                file=str(self.index_path),
            )
        return index

    def list(self, name: str | None = None, *, include_yanked: bool = True) -> list[RegistryEntry]:
        """Every published version (of ``name``, or of all modules), sorted by name then version."""
        entries = []
        for module_name, module in self.read_index()["modules"].items():
            if name is not None and module_name != name:
                continue
            for version, record in module.get("versions", {}).items():
                entry = RegistryEntry(
                    name=module_name,
                    version=version,
                    file=record["file"],
                    digest=record["digest"],
                    size=record["size"],
                    yanked=bool(record.get("yanked", False)),
                    yank_reason=record.get("yank_reason"),
                    published_at=record.get("published_at"),
                    module_id=module.get("module_id"),
                    title=module.get("title"),
                )
                if include_yanked or not entry.yanked:
                    entries.append(entry)
        return sorted(entries, key=lambda e: (e.name, Version.parse(e.version)))

    def list_versions(self, name: str) -> builtins.list[str]:
        """Versions of ``name`` that are not yanked, oldest first (the host's ``ModuleSource`` protocol)."""
        return [e.version for e in self.list(name, include_yanked=False)]

    def resolve(self, name: str, spec: str | None = None, *, include_yanked: bool = False) -> RegistryEntry:
        """The highest version of ``name`` matching ``spec`` (any version when None), skipping yanked ones.

        An exact version that is yanked still resolves (pinned installs keep working), as with PyPI.
        """
        entries = self.list(name)
        if not entries:
            names = sorted({entry.name for entry in self.list()})
            raise NoMatchingVersion(
                f"module {name!r} is not in registry {self.root}; modules there: {', '.join(names) or 'none'}",
                file=str(self.root),
            )
        matcher = VersionSpec(spec or "*")
        candidates = [e for e in entries if matcher.matches(e.version)]
        exact_pin = spec is not None and len(candidates) == 1 and candidates[0].version == spec.lstrip("=").strip()
        if not (include_yanked or exact_pin):
            candidates = [e for e in candidates if not e.yanked]
        if not candidates:
            available = ", ".join(e.version + (" (yanked)" if e.yanked else "") for e in entries)
            raise NoMatchingVersion(
                f"no version of {name!r} matches {spec or '*'!r} in {self.root}; published: {available}",
                file=str(self.root),
            )
        return max(candidates, key=lambda e: Version.parse(e.version))

    def path_of(self, entry: RegistryEntry) -> Path:
        """The file of ``entry``, refused if the index points outside the registry folder."""
        path = (self.root / entry.file).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise RegistryError(
                f"the index points {entry.name}@{entry.version} outside the registry: {entry.file}",
                file=str(self.index_path),
            )
        return path

    def locate(self, name: str, version: str | None = None) -> tuple[Path, RegistryEntry]:
        """The file and index entry of the best version of ``name`` matching ``version`` (a version or
        specifier), refused unless the file has the size the index records (its digest is checked
        when it is opened: ``open_package(expected_digest=entry.digest)``)."""
        entry = self.resolve(name, version)
        path = self.path_of(entry)
        if not path.is_file():
            raise RegistryError(
                f"{entry.name}@{entry.version} is indexed but its file {path} is missing", file=str(path)
            )
        size = path.stat().st_size
        if size != entry.size:
            raise DigestMismatch(
                f"{path} is {size:,} bytes; the registry index records {entry.size:,} bytes", file=str(path)
            )
        return path, entry

    def open(
        self,
        name: str,
        version: str | None = None,
        *,
        trusted_keys: TrustedKeys | None = None,
        limits: Limits | None = None,
    ) -> Package:
        """Open the best version of ``name`` matching ``version`` (a version or specifier).

        The file must have the size the index records before it is read, and the digest it records
        before the package is returned (hashed once, alongside the member digests; verified digests
        are remembered per file identity, so opening it again hashes nothing: ``package.digests``).
        """
        path, entry = self.locate(name, version)
        return open_package(
            path, trusted_keys, limits=limits, expected_digest=entry.digest, digest_cache=REGISTRY_DIGESTS
        )

    # ------------------------------------------------------------------------------- writing
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                index = self.read_index()
                yield index
                self._write_index(index)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_index(self, index: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".json", dir=self.root)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(index, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.index_path)

    def publish(
        self,
        package_path: str | os.PathLike,
        *,
        trusted_keys: TrustedKeys | None = None,
        run_examples: bool = True,
        device: str = "cpu",
    ) -> RegistryEntry:
        """Verify the package (and run its examples), then add it; never overwrites a published version."""
        package = verify_package(package_path, trusted_keys, run_examples=run_examples, device=device).package
        return self.add(package)

    def add(self, package: Package, *, allow_same: bool = False) -> RegistryEntry:
        """Copy an opened package in and index it. ``allow_same``: re-adding identical bytes is a no-op."""
        m = package.manifest
        relative = f"{PACKAGES_FOLDER}/{m.name}/{m.name}-{m.version}{PACKAGE_SUFFIX}"
        with self._locked() as index:
            module = index["modules"].setdefault(m.name, {"module_id": m.module_id, "title": m.title, "versions": {}})
            existing = module["versions"].get(m.version)
            if existing is not None:
                if allow_same and existing["digest"] == package.digest:
                    return self.resolve(m.name, m.version, include_yanked=True)
                raise VersionExists(
                    f"{m.name}@{m.version} is already published in {self.root} "
                    f"(digest {existing['digest']}); publish a new version instead",
                    file=str(package.path),
                )
            if module.get("module_id") != m.module_id:
                raise RegistryError(
                    f"{m.name} is published with module_id {module.get('module_id')!r}; this package "
                    f"says {m.module_id!r} (a module's IRI must not change)",
                    file=str(package.path),
                )
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=PACKAGE_SUFFIX, dir=target.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(package.archive.data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
            module["title"] = m.title
            module["versions"][m.version] = {
                "file": relative,
                "digest": package.digest,
                "size": len(package.archive.data),
                "yanked": False,
                "published_at": _now(),
            }
        return self.resolve(m.name, m.version, include_yanked=True)

    def active_version(self, name: str) -> str:
        """The version hosts should serve: the promoted one, else the newest that is not yanked."""
        module = self.read_index()["modules"].get(name, {})
        active = module.get("active")
        if active and not module.get("versions", {}).get(active, {}).get("yanked", True):
            return active
        return self.resolve(name).version

    def promote(self, name: str, version: str) -> RegistryEntry:
        """Make ``name@version`` the active version; the previous one is remembered for ``rollback``."""
        with self._locked() as index:
            module = index["modules"].get(name, {})
            record = module.get("versions", {}).get(version)
            if record is None:
                raise NoMatchingVersion(f"{name}@{version} is not published in {self.root}", file=str(self.root))
            if record.get("yanked"):
                raise RegistryError(f"{name}@{version} is yanked and cannot be promoted", file=str(self.root))
            previous = module.get("active")
            if previous and previous != version:
                module.setdefault("history", []).append(previous)
            module["active"] = version
        return self.resolve(name, version, include_yanked=True)

    def rollback(self, name: str) -> RegistryEntry:
        """Re-activate the version that was active before the last ``promote``."""
        with self._locked() as index:
            module = index["modules"].get(name, {})
            history = module.get("history") or []
            if not history:
                raise RegistryError(f"{name} has no earlier active version to roll back to", file=str(self.root))
            module["active"] = history.pop()
            version = module["active"]
        return self.resolve(name, version, include_yanked=True)

    def yank(self, name: str, version: str, *, reason: str | None = None, yanked: bool = True) -> RegistryEntry:
        """Mark ``name@version`` yanked (skipped by specifiers, still installable by exact pin), or un-yank it."""
        with self._locked() as index:
            record = index["modules"].get(name, {}).get("versions", {}).get(version)
            if record is None:
                raise NoMatchingVersion(f"{name}@{version} is not published in {self.root}", file=str(self.root))
            record["yanked"] = yanked
            if yanked and reason:
                record["yank_reason"] = reason
            elif not yanked:
                record.pop("yank_reason", None)
        return self.resolve(name, version, include_yanked=True)


def default_registry_path(settings: Settings | None = None) -> Path | None:
    """The ``registry`` setting (``TRM_REGISTRY``), else the ``registry/`` folder of the source checkout."""
    settings = settings or Settings()
    if settings.registry is not None:
        return settings.registry
    checkout = Path(__file__).resolve().parents[2] / "registry"
    return checkout if (checkout / INDEX_NAME).is_file() else None


def default_registry(settings: Settings | None = None) -> DirectoryRegistry:
    """The default registry; ``RegistryError`` when there is none (set ``TRM_REGISTRY``)."""
    path = default_registry_path(settings)
    if path is None:
        raise RegistryError("no default registry: set TRM_REGISTRY to a registry folder (one with index.json)")
    return DirectoryRegistry(path)


def installed_registry(settings: Settings | None = None) -> DirectoryRegistry:
    """The registry of installed modules (``<home>/modules``, ``TRM_HOME``), created on first use."""
    return DirectoryRegistry((settings or Settings()).home / "modules", create=True)


def install(
    requirement: str,
    *,
    source: DirectoryRegistry | None = None,
    trusted_keys: TrustedKeys | None = None,
    device: str = "cpu",
    settings: Settings | None = None,
) -> tuple[RegistryEntry, Package]:
    """Install ``NAME[@SPEC]`` from ``source`` (default registry): resolve, check, self-test, copy in.

    Installing a version that is already installed with the same digest is a no-op.
    """
    settings = settings or Settings()
    name, spec = split_requirement(requirement)
    source = source or default_registry(settings)
    package = source.open(name, spec, trusted_keys=trusted_keys)
    package.self_test(device=device)
    entry = installed_registry(settings).add(package, allow_same=True)
    return entry, package


class LocatedPackage(NamedTuple):
    """A package file, and the digest a registry index records for it (None for a plain path)."""

    path: Path
    digest: str | None = None


def locate_package(requirement: str | os.PathLike[str], settings: Settings | None = None) -> LocatedPackage:
    """The package file ``requirement`` names: a path to a ``.trm`` file, else ``NAME[@SPEC]`` resolved
    in the installed modules, then in the default registry.

    Every command and API that takes a package resolves it here. ``PackageError`` (rule ``io``) for
    a missing file, ``NoMatchingVersion`` when no registry has a matching version.
    """
    path = Path(requirement)
    if path.suffix == PACKAGE_SUFFIX or path.is_file():
        if not path.is_file():
            raise PackageError(f"no package file {path}", file=str(path), rule="io")
        return LocatedPackage(path)
    settings = settings or Settings()
    name, spec = split_requirement(str(requirement))
    errors = []
    registries = [installed_registry(settings)]
    if default_registry_path(settings) is not None:
        registries.append(default_registry(settings))
    for registry in registries:
        try:
            path, entry = registry.locate(name, spec)
            return LocatedPackage(path, entry.digest)
        except NoMatchingVersion as exc:
            errors.append(str(exc))
    raise NoMatchingVersion(
        f"{str(requirement)!r} is neither a package file nor an installed or published module: " + "; ".join(errors),
        file=str(requirement),
    )


def find_package(
    requirement: str | os.PathLike[str], *, trusted_keys: TrustedKeys | None = None, settings: Settings | None = None
) -> Package:
    """The opened package ``requirement`` names (a path or ``NAME[@SPEC]``, see ``locate_package``)."""
    located = locate_package(requirement, settings)
    if located.digest is None:
        return open_package(located.path, trusted_keys)
    return open_package(located.path, trusted_keys, expected_digest=located.digest, digest_cache=REGISTRY_DIGESTS)
