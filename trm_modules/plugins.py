"""The plugin manager: built-in and entry-point plugins, and codec lookup by name."""

from __future__ import annotations

import functools
from typing import Any

import pluggy

from .codec import TaskCodec
from .errors import CodecError, UnknownCodec
from .host import hookspecs


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every ``trm_modules`` entry point loaded."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(hookspecs.PROJECT)
    return pm


def codec_classes(pm: pluggy.PluginManager | None = None) -> dict[str, type[TaskCodec]]:
    pm = pm or get_plugin_manager()
    found: dict[str, type[TaskCodec]] = {}
    for classes in pm.hook.trm_register_codecs():
        for cls in classes or []:
            found.setdefault(cls.name, cls)
    return found


def get_codec(name: str, params: dict[str, Any] | None = None, pm: pluggy.PluginManager | None = None) -> TaskCodec:
    """Instantiate the codec ``name`` with ``params``; ``UnknownCodec`` if no plugin has it."""
    classes = codec_classes(pm)
    if name not in classes:
        raise UnknownCodec(f"no plugin provides the task codec {name!r}; known: {sorted(classes)}")
    try:
        return classes[name](**(params or {}))
    except TypeError as exc:
        raise CodecError(f"bad parameters for codec {name!r}: {exc}", "/task/params") from exc
