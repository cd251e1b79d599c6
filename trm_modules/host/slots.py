"""Slots: one per module name, holding which loaded version answers which request.

A slot has an active version, optional pinned versions per context key (the course id),
an optional canary version with a traffic share, and the history of previously active
versions (for rollback). The default selection policy lives here; plugins may override it
with ``trm_select_version``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from ..records import SolveContext
from .loaded import LoadedVersion


@dataclass(frozen=True)
class SlotState:
    """A read-only snapshot of a slot (what plugins, the CLI and the HTTP API see)."""

    name: str
    active: str | None
    canary: str | None
    canary_share: float
    pins: Mapping[str, str]
    loaded: tuple[str, ...]
    history: tuple[str, ...]
    digests: Mapping[str, str] = field(default_factory=dict)
    devices: Mapping[str, str | None] = field(default_factory=dict)


def canary_fraction(module: str, key: str) -> float:
    """A stable number in [0, 1) for (module, key): the same learner always lands on the same side."""
    digest = hashlib.sha256(f"{module}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Slot:
    """The versions of one module and the roles they play. ``lock`` guards every field."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.active: LoadedVersion | None = None
        self.canary: LoadedVersion | None = None
        self.canary_share = 0.0
        self.pins: dict[str, LoadedVersion] = {}
        self.history: list[str] = []

    def holders(self) -> list[LoadedVersion]:
        """Every version that currently plays a role (active, canary, pinned), without repeats."""
        seen: dict[int, LoadedVersion] = {}
        for version in [self.active, self.canary, *self.pins.values()]:
            if version is not None:
                seen.setdefault(id(version), version)
        return list(seen.values())

    def find(self, version: str) -> LoadedVersion | None:
        """The loaded version string ``version`` if it plays a role in this slot."""
        for held in self.holders():
            if held.version == version:
                return held
        return None

    def plays_a_role(self, version: LoadedVersion) -> bool:
        return any(held is version for held in self.holders())

    def state(self) -> SlotState:
        """A snapshot of this slot (take ``lock`` first for a consistent one)."""
        holders = self.holders()
        return SlotState(
            name=self.name,
            active=self.active.version if self.active else None,
            canary=self.canary.version if self.canary else None,
            canary_share=self.canary_share if self.canary else 0.0,
            pins=MappingProxyType({key: v.version for key, v in self.pins.items()}),
            loaded=tuple(v.version for v in holders),
            history=tuple(self.history),
            digests=MappingProxyType({v.version: v.digest for v in holders}),
            devices=MappingProxyType({v.version: v.device for v in holders}),
        )

    def default_choice(self, context: SolveContext, request_key: str) -> LoadedVersion | None:
        """The default policy: the course's pin, else the canary for its share of learners, else active.

        ``request_key`` decides the canary side when the context names no learner.
        """
        if context.course is not None and context.course in self.pins:
            return self.pins[context.course]
        if self.canary is not None and self.canary_share > 0:
            if canary_fraction(self.name, context.learner or request_key) < self.canary_share:
                return self.canary
        return self.active
