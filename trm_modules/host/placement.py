"""Placement: which device a loaded version lives on, within a memory budget per device.

The default policy puts a version on the first CUDA device its manifest allows and that has
room, else on the CPU. Room is made by evicting the least recently used *idle* versions
(reference count zero) on that device; an evicted version keeps its place in its slot and is
loaded again by the next request that needs it. Plugins may choose the device instead
(``trm_placement``); the budget is enforced either way.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import torch

from .errors import PlacementError
from .loaded import LoadedVersion

log = logging.getLogger("trm_modules.host")


@dataclass(frozen=True)
class DeviceState:
    """One device as a placement plugin sees it."""

    name: str
    budget_bytes: int
    used_bytes: int
    idle_bytes: int  # held by versions nobody is using right now (evictable)

    @property
    def free_bytes(self) -> int:
        return self.budget_bytes - self.used_bytes


@dataclass(frozen=True)
class PlacementRequest:
    """One version asking for a device."""

    name: str
    version: str
    memory_bytes: int
    allowed: tuple[str, ...]


def default_budgets() -> dict[str, int]:
    """Every usable device with a budget: each CUDA device 80 % of its memory, the CPU half the RAM."""
    budgets: dict[str, int] = {}
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            budgets[f"cuda:{index}"] = int(torch.cuda.get_device_properties(index).total_memory * 0.8)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        ram = 8 << 30
    budgets["cpu"] = ram // 2
    return budgets


class Placement:
    """Memory bookkeeping of every device, and the reservations of loaded versions.

    ``lock`` guards the reservations *and* every version's reference count, so that "idle"
    (count zero) cannot change between choosing a victim and evicting it.
    """

    def __init__(self, budgets: dict[str, int] | None = None, choose_device: Any = None) -> None:
        self.budgets = dict(budgets) if budgets is not None else default_budgets()
        if not self.budgets:
            raise PlacementError("the host manages no device: give at least one budget, e.g. {'cpu': 2**30}")
        self.choose_device = choose_device  # (PlacementRequest, [DeviceState]) -> str | None
        self.lock = threading.RLock()
        self.evictions = 0
        self._held: dict[str, list[LoadedVersion]] = {device: [] for device in self.budgets}

    # --------------------------------------------------------------------------- views
    def used_bytes(self, device: str) -> int:
        return sum(v.spec.memory_bytes for v in self._held.get(device, []))

    def device_states(self) -> list[DeviceState]:
        """The current state of every managed device."""
        with self.lock:
            return [
                DeviceState(
                    device,
                    budget,
                    self.used_bytes(device),
                    sum(v.spec.memory_bytes for v in self._held[device] if v.refcount == 0),
                )
                for device, budget in self.budgets.items()
            ]

    def holding(self, device: str) -> list[LoadedVersion]:
        """Versions holding memory on ``device``, least recently used first."""
        with self.lock:
            return sorted(self._held.get(device, []), key=lambda v: v.last_used)

    # ------------------------------------------------------------------------ decisions
    def _candidates(self, version: LoadedVersion) -> list[str]:
        allowed = [d for d in self.budgets if version.spec.allows(d)]
        if not allowed:
            raise PlacementError(
                f"{version.name} {version.version} allows devices {list(version.spec.allowed_devices)}, "
                f"but this host manages only {list(self.budgets)}"
            )
        cuda_first = sorted(allowed, key=lambda d: (torch.device(d).type == "cpu", d))
        if self.choose_device is not None:
            request = PlacementRequest(
                version.name, version.version, version.spec.memory_bytes, version.spec.allowed_devices
            )
            chosen = self.choose_device(request, self.device_states())
            if chosen is not None:
                if chosen not in allowed:
                    raise PlacementError(
                        f"a placement plugin chose {chosen!r} for {version.name} {version.version}, "
                        f"which is not among the allowed, managed devices {allowed}"
                    )
                return [chosen]
        return cuda_first

    def _fits_after_eviction(self, device: str, needed: int) -> list[LoadedVersion] | None:
        """The idle versions to evict (LRU first) so ``needed`` bytes fit on ``device``; None if impossible."""
        free = self.budgets[device] - self.used_bytes(device)
        victims: list[LoadedVersion] = []
        for candidate in sorted(self._held[device], key=lambda v: v.last_used):
            if free >= needed:
                break
            if candidate.refcount == 0:
                victims.append(candidate)
                free += candidate.spec.memory_bytes
        return victims if free >= needed else None

    def reserve(self, version: LoadedVersion) -> str:
        """Pick a device for ``version``, evict idle versions to make room, and reserve its memory."""
        with self.lock:
            needed = version.spec.memory_bytes
            candidates = self._candidates(version)
            for device in candidates:
                victims = self._fits_after_eviction(device, needed)
                if victims is None:
                    continue
                for victim in victims:
                    self._evict(victim)
                self._held[device].append(version)
                version.device = device
                return device
            summary = ", ".join(
                f"{s.name}: {s.used_bytes}/{s.budget_bytes} bytes used, {s.idle_bytes} idle"
                for s in self.device_states()
                if s.name in candidates
            )
            raise PlacementError(
                f"{version.name} {version.version} needs {needed} bytes and no allowed device has room "
                f"even after evicting idle versions ({summary}); raise the memory budget or unload modules"
            )

    def _evict(self, victim: LoadedVersion) -> None:
        log.info("evicting idle %s %s from %s to make room", victim.name, victim.version, victim.device)
        self.evictions += 1
        self.free(victim)

    def free(self, version: LoadedVersion) -> None:
        """Drop ``version``'s reservation and unload its model (idempotent)."""
        with self.lock:
            if version.device is not None and version in self._held.get(version.device, []):
                self._held[version.device].remove(version)
            version.unload()
