"""The host: plugin hooks, module sources, slots, placement, micro-batching and hot swaps.

``Host`` is the library every server calls; ``hookspecs`` is the plugin contract. Names are
imported on first use, so that ``trm_modules.plugins`` can import ``hookspecs`` from here
without pulling in the host (which itself uses the plugin manager).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Answer": ".answer",
    "HostError": ".errors", "InvalidInput": ".errors", "PlacementError": ".errors",
    "SelfTestFailed": ".errors", "SwapError": ".errors", "VersionNotLoaded": ".errors",
    "Host": ".host",
    "LoadedVersion": ".loaded", "VersionSpec": ".loaded",
    "DeviceState": ".placement", "PlacementRequest": ".placement",
    "SlotState": ".slots",
    "FolderSource": ".sources", "MemorySource": ".sources", "ModuleSource": ".sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value
