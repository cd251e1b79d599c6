"""The plugin manager: discovery (builtin, entry points, paths), isolation, and codec lookup.

Every plugin is registered under a name and an origin, so ``trm plugins`` can say where it came
from. Hooks are called one implementation at a time (``call_hook``): a plugin that raises is
logged with its name and counted, and never takes the caller down.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import pluggy

from .codec import TaskCodec
from .errors import CodecError, TRMError, UnknownArchitecture, UnknownCodec
from .settings import PluginSetting, Settings, SettingsT, split_paths, with_plugin_settings
from . import hookspecs

if TYPE_CHECKING:  # pragma: no cover
    from .model.architecture import Architecture

log = logging.getLogger("trm_modules.plugins")

#: Built-in plugins of every plugin manager (the host's own defaults), as ``module:factory`` named
#: like entry points: each factory is called with the manager's ``Settings``.
BUILTIN_PLUGINS = {
    "builtin": "trm_modules.host.builtin:BuiltinSources",
    "architectures": "trm_modules.architectures:BuiltinArchitectures",
}

Origin = Literal["builtin", "entrypoint", "path", "object"]


@dataclass
class PluginInfo:
    """Where one plugin came from, which hooks it implements, and how often it failed."""

    name: str
    origin: Origin
    source: str  # dist name + version, module path, or file path
    hooks: list[str] = field(default_factory=list)
    errors: int = 0
    load_error: str | None = None


class TRMPluginManager(pluggy.PluginManager):
    """A ``pluggy.PluginManager`` that remembers each plugin's origin and counts its failures."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, tuple[Origin, str]] = {}
        self.load_failures: dict[str, tuple[Origin, str, str]] = {}
        self.error_counts: Counter[str] = Counter()
        self._errors_lock = threading.Lock()

    def register_with_origin(self, plugin: Any, name: str, origin: Origin, source: str) -> None:
        """Register ``plugin`` under ``name`` and remember where it came from."""
        if self.get_plugin(name) is not None or self.is_blocked(name):
            return
        self.register(plugin, name=name)
        self.origins[name] = (origin, source)

    def record_failure(self, plugin_name: str, hook_name: str, exc: BaseException) -> None:
        """Log and count one exception raised by ``plugin_name`` in ``hook_name``."""
        with self._errors_lock:
            self.error_counts[plugin_name] += 1
        log.error("plugin %r failed in %s: %s: %s", plugin_name, hook_name, type(exc).__name__, exc, exc_info=exc)

    def plugin_infos(self) -> list[PluginInfo]:
        """Every registered plugin, then every plugin that failed to load, with origin and hooks."""
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            origin, source = self.origins.get(name, ("object", repr(plugin)))
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name, origin, source, hooks, self.error_counts.get(name, 0)))
        for name, (origin, source, error) in self.load_failures.items():
            infos.append(PluginInfo(name, origin, source, [], self.error_counts.get(name, 0), error))
        return infos


def _distribution_label(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return entry_point.value
    return f"{dist.metadata['Name']} {dist.version} ({entry_point.value})"


def load_entrypoint_plugins(pm: TRMPluginManager) -> None:
    """Register every plugin of the ``trm_modules`` entry-point group; failures are recorded, not raised."""
    seen: set[str] = set()
    for entry_point in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        if entry_point.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(entry_point.name)
        source = _distribution_label(entry_point)
        try:
            plugin = entry_point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop discovery
            pm.load_failures[entry_point.name] = ("entrypoint", source, f"{type(exc).__name__}: {exc}")
            pm.record_failure(entry_point.name, "load", exc)
            continue
        pm.register_with_origin(plugin, entry_point.name, "entrypoint", source)


def register_plugin_file(pm: TRMPluginManager, path: str | os.PathLike[str], name: str | None = None) -> str:
    """Import the ``.py`` file at ``path`` and register it as a plugin; returns its name.

    This runs the file's code, like installing a plugin would: only name files you trust.
    Raises ``FileNotFoundError`` when the file is missing; import errors propagate.
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"plugin file {str(file)!r} does not exist")
    name = name or file.stem
    spec = importlib.util.spec_from_file_location(f"trm_plugin_{name}", file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import plugin file {str(file)!r} (expected a .py file)")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pm.register_with_origin(module, name, "path", str(file))
    return name


def load_path_plugins(pm: TRMPluginManager, paths: str) -> None:
    """Register the plugin files named in ``paths`` (``os.pathsep``-separated); failures are recorded."""
    for entry in split_paths(paths):
        try:
            register_plugin_file(pm, entry)
        except Exception as exc:  # noqa: BLE001
            name = Path(entry).stem
            pm.load_failures[name] = ("path", entry, f"{type(exc).__name__}: {exc}")
            pm.record_failure(name, "load", exc)


def build_plugin_manager(
    *, entry_points: bool = True, paths: str | None = None, settings: Settings | None = None
) -> TRMPluginManager:
    """A fresh plugin manager: built-in plugins, then entry points, then plugin files.

    ``paths``: plugin files (``os.pathsep``-separated); default the ``plugin_files`` setting
    (``TRM_PLUGINS``). ``settings``: configures the built-in plugins (default ``Settings()``).
    """
    settings = settings or Settings()
    pm = TRMPluginManager()
    for name, target in BUILTIN_PLUGINS.items():
        module_name, _, factory = target.partition(":")
        plugin = getattr(importlib.import_module(module_name), factory)(settings)
        pm.register_with_origin(plugin, name, "builtin", module_name)
    if entry_points:
        load_entrypoint_plugins(pm)
    load_path_plugins(pm, settings.plugin_files if paths is None else paths)
    return pm


class PluginManagerReentered(TRMError, RuntimeError):
    """A plugin asked for the process's plugin manager while its own loading was building it."""


_process_manager: TRMPluginManager | None = None
_process_manager_lock = threading.Lock()  # two threads asking first build one manager
_building_in: int | None = None  # the thread building it, while it does


def get_plugin_manager() -> TRMPluginManager:
    """The process-wide plugin manager: built from the environment's ``Settings`` when first called (like
    pytest's, never at import), the same object afterwards. The CLI's default, and the default of
    ``Package.codec`` when no manager is given; a ``Host`` never uses it.

    A plugin whose import asks for it (directly, or by building the CLI) would need the manager its own
    loading is building: that plugin is refused with ``PluginManagerReentered`` (recorded as its load
    failure, shown by ``trm plugins``); plugins ask for the manager inside hooks, not at import time.
    """
    global _process_manager, _building_in
    if _process_manager is not None:
        return _process_manager
    if _building_in == threading.get_ident():
        raise PluginManagerReentered(
            "a plugin asked for the process's plugin manager while it was being built "
            "(at import time: calling get_plugin_manager or building the CLI); "
            "ask for it inside a hook instead"
        )
    with _process_manager_lock:
        if _process_manager is None:
            _building_in = threading.get_ident()
            try:
                _process_manager = build_plugin_manager()
            finally:
                _building_in = None
        return _process_manager


def has_implementations(pm: pluggy.PluginManager, hook_name: str) -> bool:
    """Does any registered plugin implement ``hook_name``? (Lets callers skip building arguments.)"""
    return bool(getattr(pm.hook, hook_name).get_hookimpls())


def record_plugin_failure(pm: pluggy.PluginManager, plugin_name: str, hook_name: str, exc: BaseException) -> None:
    """Log (and, on a ``TRMPluginManager``, count) a failure of ``plugin_name`` in ``hook_name``."""
    if isinstance(pm, TRMPluginManager):
        pm.record_failure(plugin_name, hook_name, exc)
    else:
        log.error("plugin %r failed in %s: %s", plugin_name, hook_name, exc, exc_info=exc)


def call_hook(
    pm: pluggy.PluginManager, hook_name: str, *, firstresult: bool = False, with_plugin: bool = False, **kwargs: Any
) -> Any:
    """Call every implementation of ``hook_name`` separately, in pluggy's order, isolating failures.

    Returns the list of non-``None`` results, or with ``firstresult`` the first non-``None`` one
    (``None`` if there is none). With ``with_plugin`` each result is a ``(plugin_name, result)``
    pair. An implementation that raises is logged and counted against its plugin
    (``TRMPluginManager.record_failure``) and skipped.
    """
    caller = getattr(pm.hook, hook_name)
    results = []
    for impl in reversed(caller.get_hookimpls()):  # pluggy calls the last registered first
        if impl.hookwrapper or getattr(impl, "wrapper", False):
            continue
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            record_plugin_failure(pm, impl.plugin_name, hook_name, exc)
            continue
        if result is None:
            continue
        if with_plugin:
            result = (impl.plugin_name, result)
        if firstresult:
            return result
        results.append(result)
    return None if firstresult else results


def codec_classes(pm: pluggy.PluginManager | None = None) -> dict[str, type[TaskCodec]]:
    """Codec name → class, over every plugin's ``trm_register_codecs`` (first registration wins)."""
    pm = pm or get_plugin_manager()
    found: dict[str, type[TaskCodec]] = {}
    # pluggy order is last-registered first; codecs resolve first-registered first.
    for classes in reversed(call_hook(pm, "trm_register_codecs")):
        for cls in classes or []:
            found.setdefault(cls.name, cls)
    return found


def codec_distribution(codec: TaskCodec | type[TaskCodec]) -> dict[str, str | None] | None:
    """``{"distribution", "version"}`` of the installed distribution whose ``trm_modules`` entry point provides
    ``codec``'s module (else the one that installs its top-level package), or None (a plugin file, an object)."""
    cls = codec if isinstance(codec, type) else type(codec)
    module = cls.__module__
    for entry_point in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        target = entry_point.value.split(":")[0]
        dist = getattr(entry_point, "dist", None)
        if dist is not None and (module == target or module.startswith(target + ".")):
            return {"distribution": dist.metadata["Name"], "version": dist.version}
    names = importlib.metadata.packages_distributions().get(module.split(".")[0]) or []
    if len(names) == 1:
        try:
            return {"distribution": names[0], "version": importlib.metadata.version(names[0])}
        except importlib.metadata.PackageNotFoundError:
            return {"distribution": names[0], "version": None}
    return None


def get_codec(name: str, params: dict[str, Any] | None = None, pm: pluggy.PluginManager | None = None) -> TaskCodec:
    """Instantiate the codec ``name`` with ``params``; ``UnknownCodec`` if no plugin has it."""
    classes = codec_classes(pm)
    if name not in classes:
        raise UnknownCodec(f"no plugin provides the task codec {name!r}; known: {sorted(classes)}")
    try:
        return classes[name](**(params or {}))
    except TypeError as exc:
        raise CodecError(f"bad parameters for codec {name!r}: {exc}", "/task/params") from exc


def declared_settings(pm: pluggy.PluginManager) -> list[tuple[str, PluginSetting]]:
    """``(plugin name, setting)`` for every setting the plugins of ``pm`` declare (``trm_declare_settings``)."""
    declared = []
    for plugin_name, settings in reversed(call_hook(pm, "trm_declare_settings", with_plugin=True)):
        for setting in settings or []:
            if not isinstance(setting, PluginSetting):
                raise TypeError(
                    f"plugin {plugin_name!r} returned {type(setting).__name__} from trm_declare_settings; "
                    "expected trm_modules.settings.PluginSetting objects"
                )
            declared.append((plugin_name, setting))
    return declared


def settings_for_plugins(settings: SettingsT, pm: pluggy.PluginManager) -> SettingsT:
    """``settings`` with the settings the plugins of ``pm`` declare as typed fields (``with_plugin_settings``)."""
    return with_plugin_settings(settings, declared_settings(pm))


def architectures(pm: pluggy.PluginManager | None = None) -> dict[str, "Architecture"]:
    """Architecture name → ``Architecture``, over every plugin's ``trm_register_architectures`` (first
    registration wins, so the built-in ``trm`` and ``hrm`` cannot be shadowed)."""
    pm = pm or get_plugin_manager()
    found: dict[str, Architecture] = {}
    for provided in reversed(call_hook(pm, "trm_register_architectures")):
        for architecture in provided or []:
            found.setdefault(architecture.name, architecture)
    return found


def architecture_of_config(config: Any, pm: pluggy.PluginManager | None = None) -> "Architecture":
    """The architecture whose config model ``config`` is an instance of (``UnknownArchitecture`` if none)."""
    for architecture in architectures(pm).values():
        if type(config) is architecture.config_type:
            return architecture
    raise UnknownArchitecture(
        f"no installed architecture has the config model {type(config).__name__}", type(config).__name__
    )


def get_architecture(name: str, pm: pluggy.PluginManager | None = None) -> "Architecture":
    """The architecture ``name``; ``UnknownArchitecture`` naming it (and the installed ones) if no plugin has it."""
    found = architectures(pm)
    if name not in found:
        raise UnknownArchitecture(
            f"no installed plugin provides the model architecture {name!r}; installed: "
            f"{sorted(found)} (install the plugin that provides it, or name it in "
            "TRM_PLUGINS)",
            name,
        )
    return found[name]
