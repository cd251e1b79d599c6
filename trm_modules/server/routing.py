"""Replicated routing: admin changes go through the store, and every replica's host follows them.

``ReplicatedRouting`` is what the admin API calls to activate, roll back, pin, unpin, set a canary
or yank. A change is tried on this replica's host first (the version is loaded and self-tested
before anything is stored: a version that cannot serve is refused here, not on every replica),
then written to the store's routing table as a compare-and-swap on the module's revision
(``trm_modules.store.routing``, which documents the conflict rule), and then every other replica
applies it from a ``RoutingWatcher`` (PostgreSQL ``LISTEN/NOTIFY``; polling on SQLite).

On start the stored routing is applied first, so a restarted replica serves what the others
serve; modules the routing table has never seen serve the registry's active version, as before.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy.orm import Session

from ..host import Host, SlotState
from ..package import DirectoryRegistry, RegistryError
from ..store.routing import ModuleRouting, RoutingState, RoutingTable, RoutingWatcher, StaleRevision

log = logging.getLogger("trm_modules.server")

Operation = Callable[[RoutingState], RoutingState]


class ReplicatedRouting:
    """This replica's view of the shared routing state, and the admin operations on it."""

    def __init__(self, host: Host, registry: DirectoryRegistry, table: RoutingTable, *, poll_s: float = 0.2) -> None:
        self.host = host
        self.registry = registry
        self.table = table
        self._applied: dict[str, ModuleRouting] = {}
        self._applied_at: dict[str, datetime] = {}  # when this replica applied each module's revision
        self._changed = threading.Condition()
        self._apply_lock = threading.RLock()  # one module state change at a time on this host
        self.watcher = RoutingWatcher(table, self.apply, poll_s=poll_s)

    def start(self) -> set[str]:
        """Apply every stored module routing, start following changes; returns the modules it applied."""
        self.watcher.sync()
        self.watcher.start()
        return set(self._applied)

    def close(self) -> None:
        self.watcher.close()

    # ------------------------------------------------------------------------------- reading
    def revision(self, module: str) -> int:
        """The revision of ``module``'s routing this replica has applied (0: none stored)."""
        with self._changed:
            applied = self._applied.get(module)
            return applied.revision if applied is not None else 0

    def revisions(self) -> dict[str, dict[str, object]]:
        """Module → the routing revision this replica has applied, when it was stored and when applied here
        (their difference is the propagation delay; replicas that agree show the same revisions)."""
        with self._changed:
            return {
                module: {
                    "revision": routing.revision,
                    "stored_at": routing.updated_at.isoformat(),
                    "applied_at": self._applied_at[module].isoformat(),
                }
                for module, routing in sorted(self._applied.items())
            }

    def _record(self, routing: ModuleRouting) -> None:
        with self._changed:
            self._applied[routing.module] = routing
            self._applied_at[routing.module] = datetime.now(timezone.utc)
            self._changed.notify_all()

    def wait_for_revision(self, module: str, revision: int, timeout: float) -> bool:
        """Block until this replica has applied ``revision`` (or a later one) of ``module``; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.revision(module) >= revision, timeout)

    # ------------------------------------------------------------------------------- applying
    def apply(self, routing: ModuleRouting) -> None:
        """Make this host serve ``routing`` (what the watcher calls for other replicas' changes)."""
        with self._apply_lock:
            previous = self._applied.get(routing.module)
            if previous is not None and previous.revision >= routing.revision:
                return
            self._apply_state(routing.module, routing.state, previous.state if previous else None)
            self._record(routing)
        log.info("%s: routing revision %d applied (by %s)", routing.module, routing.revision, routing.updated_by)

    def _apply_state(self, module: str, state: RoutingState, before: RoutingState | None) -> SlotState | None:
        current = {s.name: s for s in self.host.modules()}.get(module)
        if state.active is not None and (current is None or current.active != state.active):
            current = self.host.swap(module, state.active)
        pins = dict(current.pins) if current is not None else {}
        for course in set(pins) - set(state.pins):
            current = self.host.unpin(module, course)
        for course, version in state.pins.items():
            if pins.get(course) != version:
                current = self.host.pin(module, course, version)
        if current is not None and (current.canary, current.canary_share) != (state.canary, state.canary_share):
            current = (
                self.host.set_canary(module, state.canary, state.canary_share)
                if state.canary
                else self.host.clear_canary(module)
            )
        previously_yanked = before.yanked if before is not None else {}
        for version in set(state.yanked) | set(previously_yanked):
            self._apply_yank(module, version, state.yanked)
        return current

    def _apply_yank(self, module: str, version: str, yanked: dict[str, str | None]) -> None:
        try:
            entry = self.registry.resolve(module, version, include_yanked=True)
        except Exception:  # noqa: BLE001 - a replica whose registry lacks the version has nothing to yank
            return
        wanted = version in yanked
        if entry.yanked != wanted or (wanted and entry.yank_reason != yanked[version]):
            try:
                self.registry.yank(module, version, reason=yanked.get(version), yanked=wanted)
            except RegistryError as exc:  # a registry read over HTTP: the server that holds it records yanks
                log.info("%s@%s: yank not recorded in this replica's registry (%s)", module, version, exc)

    # ------------------------------------------------------------------------------- changing
    def change(
        self,
        module: str,
        operation: Operation,
        *,
        expected_revision: int | None = None,
        before_commit: Callable[[Session, int], None] | None = None,
    ) -> tuple[SlotState, int]:
        """Apply ``operation`` here, store it, and let the other replicas follow; (slot state, revision).

        ``expected_revision`` (HTTP ``If-Match``): refuse with ``StaleRevision`` unless the stored
        routing of the module is at that revision. ``before_commit``: writes that land in the routing
        change's transaction or not at all (``RoutingTable.change``).
        """
        with self._apply_lock:
            stored = self.table.get(module)
            revision = stored.revision if stored is not None else 0
            if expected_revision is not None and expected_revision != revision:
                raise StaleRevision(module, expected_revision, revision)
            base = stored.state if stored is not None else self._state_of_host(module)
            wanted = operation(base)  # an operation that does not apply is refused before anything changes
            try:
                self._apply_state(module, wanted, base)  # a version that cannot serve is refused here, not stored
                routing = self.table.change(
                    module, operation, expected_revision=expected_revision, initial=base, before_commit=before_commit
                )
            except BaseException:
                self._restore(module, base, wanted)
                raise
            if routing.state != wanted:  # another replica's write came first; ours is applied on top of it
                self._apply_state(module, routing.state, wanted)
            self._record(routing)
        return self._slot(module), routing.revision

    def _restore(self, module: str, state: RoutingState, tried: RoutingState) -> None:
        """Put the host back on ``state`` after ``tried`` failed to apply here or the store refused it."""
        try:
            self._apply_state(module, state, tried)
        except Exception:  # noqa: BLE001
            log.exception("could not restore the routing of %s", module)

    def _state_of_host(self, module: str) -> RoutingState:
        """What this host serves for a module the routing table has never seen (the starting point)."""
        current = {s.name: s for s in self.host.modules()}.get(module)
        if current is None:
            return RoutingState()
        return RoutingState(
            active=current.active,
            history=list(current.history),
            pins=dict(current.pins),
            canary=current.canary,
            canary_share=current.canary_share if current.canary else 0.0,
        )

    def _slot(self, module: str) -> SlotState:
        for state in self.host.modules():
            if state.name == module:
                return state
        return SlotState(module, None, None, 0.0, {}, (), ())

    # Admin operations, by name (the HTTP routes and the CLI call these).
    def activate(self, module: str, version: str, *, expected_revision: int | None = None) -> tuple[SlotState, int]:
        return self.change(module, lambda s: s.activate(version), expected_revision=expected_revision)

    def rollback(self, module: str, *, expected_revision: int | None = None) -> tuple[SlotState, int]:
        return self.change(module, lambda s: s.rollback(), expected_revision=expected_revision)

    def pin(
        self, module: str, course: str, version: str, *, expected_revision: int | None = None
    ) -> tuple[SlotState, int]:
        return self.change(module, lambda s: s.pin(course, version), expected_revision=expected_revision)

    def unpin(self, module: str, course: str, *, expected_revision: int | None = None) -> tuple[SlotState, int]:
        return self.change(module, lambda s: s.unpin(course), expected_revision=expected_revision)

    def set_canary(
        self, module: str, version: str | None, share: float, *, expected_revision: int | None = None
    ) -> tuple[SlotState, int]:
        since = datetime.now(timezone.utc)  # one start time, however often the operation is applied
        return self.change(module, lambda s: s.set_canary(version, share, since), expected_revision=expected_revision)

    def yank(
        self,
        module: str,
        version: str,
        reason: str | None,
        yanked: bool = True,
        *,
        expected_revision: int | None = None,
    ) -> tuple[SlotState, int]:
        return self.change(module, lambda s: s.yank(version, reason, yanked), expected_revision=expected_revision)
