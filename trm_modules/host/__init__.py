"""The host: module sources, slots, placement, micro-batching and hot swaps.

``Host`` is the library every server calls; the plugin contract it calls out to is
``trm_modules.hookspecs``.
"""

from .answer import Answer
from .errors import HostError, InvalidInput, PlacementError, SelfTestFailed, SwapError, VersionNotLoaded
from .host import Host
from .loaded import LoadedVersion, ServableVersion
from .placement import DeviceState, PlacementRequest
from .slots import SlotState
from .sources import FolderSource, MemorySource, ModuleSource

__all__ = [
    "Answer",
    "DeviceState",
    "FolderSource",
    "Host",
    "HostError",
    "InvalidInput",
    "LoadedVersion",
    "MemorySource",
    "ModuleSource",
    "PlacementError",
    "PlacementRequest",
    "SelfTestFailed",
    "SlotState",
    "SwapError",
    "VersionNotLoaded",
    "ServableVersion",
]
