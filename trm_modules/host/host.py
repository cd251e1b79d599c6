"""The host: loaded modules in slots, hot swaps, placement, micro-batched solving, observers.

Everything that serves modules (the CLI, the HTTP server, a platform's own Python code) calls
this class. It is thread-safe; ``asolve`` is the entry point for asyncio code.

Life of a request: choose the slot's version for the request's context (plugin, else pin,
canary, active) and take a reference on it → make sure its model is resident (placement may
evict idle versions) → validate and encode the input → queue it on the version's micro-batcher
→ decode and rule-check the answer (solving further test-time views when the rules reject it,
``trm_modules.views``) → drop the reference → hand a ``SolveRecord`` to the observers' thread.
A swap only moves the slot's pointer, so a request finishes on the version it started with;
the replaced version is freed when its last request drops its reference.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pluggy
import torch
from pydantic import ValidationError

from ..errors import ModuleNotFound, json_pointer
from ..model.onnx_step import check_engine, import_onnxruntime
from ..model.precision import check_precision
from ..package.semver import sort_versions
from ..plugins import build_plugin_manager, call_hook, has_implementations, record_plugin_failure
from ..records import ID_MAX, FeedbackEvent, SolveContext, SolveRecord, invalid_text_in, new_id
from ..views import DEFAULT_VIEWS, Candidate
from .answer import Answer
from .batching import RowResult
from .errors import InvalidInput, SwapError, VersionNotLoaded
from .events import EventDispatcher
from .loaded import LoadedVersion, ServableVersion
from .placement import DeviceState, Placement, PlacementRequest
from .slots import Slot, SlotState
from .sources import ModuleSource

log = logging.getLogger("trm_modules.host")

Json = dict[str, Any]


@dataclass
class _Lease:
    """A request's hold on one version, from selection to release."""

    version: LoadedVersion
    started: float
    context: SolveContext


class Host:
    """Serves module versions from slots; see the module docstring for a request's life.

    ``sources``: where ``swap``/``pin``/``set_canary`` find versions (plugins add more through
    ``trm_module_sources``). ``memory_budgets``: bytes per device (``{"cpu": 2**30, "cuda:0": …}``);
    default: every CUDA device at 80 % of its memory and the CPU at half the RAM.
    ``batch_window_ms`` / ``max_batch_size`` / ``batch_wait_fraction``: micro-batching — a batch
    waits for as many requests as the version has recently had callers, for at most
    ``batch_window_ms``, or that fraction of recent batches' compute time when longer, from the moment
    the device is free (0 ms and 0 = batch only what is already waiting; ``host.batching``). ``cpu_threads``: the most intra-op threads a CPU batch may use (default: torch's, i.e.
    every physical core unless the process set fewer; ``trm serve`` passes every core it may run on; the
    ``auto`` engine measures 1 thread against them and keeps the faster). ``views``: test-time views an
    answer the task's rules reject is sought in (1: the model's first answer only; see
    ``trm_modules.views``). ``engine``: what computes the supervision steps of versions on the CPU, ``eager``
    (PyTorch, the default), ``auto`` (measured per version and batch shape when it loads,
    ``trm_modules.model.engine_choice``) or ``onnx`` (ONNX Runtime, exported when a version loads; the same answers;
    ``EngineUnavailable`` here when onnxruntime is not installed); versions on CUDA run eager, replayed
    from CUDA graphs with ``cuda_graphs`` (``trm_modules.model.cuda_graphs``; not yet timed). ``plugin_manager``: where codecs, sources, version policies, placement
    and observers come from — only from it (default: a new manager of the built-in, entry-point
    and ``TRM_PLUGINS`` plugins; ``build_plugin_manager(entry_points=False)`` keeps entry points out).
    ``precision``: ``fp32`` (default), ``bf16`` or ``auto`` (per version: ``trm_modules.model.precision``).
    """

    def __init__(
        self,
        sources: Iterable[ModuleSource] = (),
        *,
        plugin_manager: pluggy.PluginManager | None = None,
        memory_budgets: dict[str, int] | None = None,
        batch_window_ms: float = 2.0,
        max_batch_size: int = 64,
        batch_wait_fraction: float = 0.1,
        cpu_threads: int | None = None,
        views: int = DEFAULT_VIEWS,
        engine: str = "eager",
        cuda_graphs: bool = False,
        precision: str = "fp32",
    ) -> None:
        if views < 1:
            raise ValueError(f"views must be at least 1, got {views}")
        self.engine = check_engine(engine)
        self.precision = check_precision(precision)
        self.cuda_graphs = cuda_graphs
        if engine == "onnx":
            import_onnxruntime()  # EngineUnavailable now, not at the first load
        self.pm = plugin_manager if plugin_manager is not None else build_plugin_manager()
        self.views = views
        self.sources: list[ModuleSource] = list(sources)
        self.batch_window_s = batch_window_ms / 1000.0
        self.max_batch_size = max_batch_size
        self.batch_wait_fraction = batch_wait_fraction
        self.cpu_threads = cpu_threads or torch.get_num_threads()
        self.placement = Placement(memory_budgets, choose_device=self._plugin_placement)
        self.events = EventDispatcher(self.pm)
        self._slots: dict[str, Slot] = {}
        self._slots_lock = threading.Lock()

    # ====================================================================== sources
    def all_sources(self) -> list[ModuleSource]:
        """The host's own sources, then those plugins contribute."""
        from_plugins = [source for sources in call_hook(self.pm, "trm_module_sources") for source in sources or []]
        return [*self.sources, *from_plugins]

    def available_versions(self, module: str) -> list[str]:
        """Every version of ``module`` the sources can open, oldest first."""
        versions: set[str] = set()
        for source in self.all_sources():
            try:
                versions.update(source.list_versions(module))
            except Exception as exc:  # noqa: BLE001 - a broken source must not hide the others
                log.warning("module source %r failed to list %s: %s", source, module, exc)
        return sort_versions(versions)

    def open_version(self, module: str, version: str | None = None) -> ServableVersion:
        """Find ``module`` ``version`` (latest if None) in the sources and describe it as a ``ServableVersion``."""
        if version is None:
            versions = self.available_versions(module)
            if not versions:
                raise ModuleNotFound(f"no source has module {module!r}; sources: {self.all_sources()}")
            version = versions[-1]
        for source in self.all_sources():
            try:
                if version not in source.list_versions(module):
                    continue
            except Exception as exc:  # noqa: BLE001
                log.warning("module source %r failed to list %s: %s", source, module, exc)
                continue
            opened = source.open(module, version)
            spec = opened if isinstance(opened, ServableVersion) else ServableVersion.from_package(opened, self.pm)
            if (spec.name, spec.version) != (module, version):
                raise ModuleNotFound(
                    f"{source!r} returned {spec.name} {spec.version} when asked for {module} {version}"
                )
            return spec
        known = self.available_versions(module)
        raise ModuleNotFound(f"no source has {module!r} version {version!r}; available versions: {known}")

    def computing(self) -> dict[str, str]:
        """``{"name version": how its steps compute}`` for every loaded version (precision, engine, threads)."""
        with self._slots_lock:
            slots = list(self._slots.values())
        return {f"{v.name} {v.version}": v.computing for slot in slots for v in slot.holders() if v.resident}

    # ================================================================ version control
    def _slot(self, module: str, create: bool = False) -> Slot:
        with self._slots_lock:
            slot = self._slots.get(module)
            if slot is None:
                if not create:
                    raise ModuleNotFound(
                        f"no module {module!r} is served here; modules served: "
                        f"{', '.join(sorted(self._slots)) or 'none'}"
                    )
                slot = self._slots[module] = Slot(module)
            return slot

    def _prepare(self, module: str, version: str | ServableVersion | None) -> LoadedVersion:
        """Open, load, place and self-test a version; returns it holding one reference. ``SwapError`` on failure."""
        label = version.version if isinstance(version, ServableVersion) else (version or "latest")
        loaded: LoadedVersion | None = None
        try:
            spec = version if isinstance(version, ServableVersion) else self.open_version(module, version)
            if spec.name != module:
                raise ModuleNotFound(f"the version given is of module {spec.name!r}, not {module!r}")
            label = spec.version
            loaded = LoadedVersion(
                spec,
                window_s=self.batch_window_s,
                max_batch_size=self.max_batch_size,
                wait_fraction=self.batch_wait_fraction,
                cpu_threads=self.cpu_threads,
                views=self.views,
                engine=self.engine,
                cuda_graphs=self.cuda_graphs,
                precision=self.precision,
            )
            self._acquire(loaded)
            self._ensure_resident(loaded)
            loaded.self_test()
            return loaded
        except Exception as exc:  # noqa: BLE001 - every cause becomes a SwapError with the cause attached
            if loaded is not None:
                loaded.retired = True
                self._release(loaded)
            raise SwapError(module, label, exc) from exc

    def _obtain(self, slot: Slot, version: str | ServableVersion | None) -> LoadedVersion:
        """A version with one reference held: reused when the slot already holds it, else prepared."""
        if isinstance(version, str):
            with slot.lock:
                held = slot.find(version)
                if held is not None:
                    self._acquire(held)
                    return held
        return self._prepare(slot.name, version)

    def _obtain_for(self, module: str, version: str | ServableVersion | None) -> tuple[Slot, LoadedVersion]:
        """The module's slot (created if new) and the version with a reference held; a slot created
        for a version that then fails to load is removed again, so no failed call leaves an empty slot."""
        slot = self._slot(module, create=True)
        try:
            return slot, self._obtain(slot, version)
        except BaseException:
            with self._slots_lock, slot.lock:
                if not slot.holders() and self._slots.get(module) is slot:
                    del self._slots[module]
            raise

    def _retire_if_unused(self, slot: Slot, version: LoadedVersion | None) -> None:
        """Free ``version`` once no request uses it, unless it still plays a role (call under slot.lock)."""
        if version is None or slot.plays_a_role(version):
            return
        with self.placement.lock:
            version.retired = True
            if version.refcount == 0:
                self.placement.free(version)

    def swap(self, module: str, version: str | ServableVersion | None = None) -> SlotState:
        """Make ``version`` (latest if None) the active version of ``module``, without downtime.

        The version is loaded, placed and self-tested first; only then does the slot's pointer
        move. Requests already running finish on the old version, which is freed when the last
        one ends. On any failure ``SwapError`` (with ``cause``) is raised and nothing changes.
        """
        slot, new = self._obtain_for(module, version)
        try:
            with slot.lock:
                old = slot.active
                if old is not new:
                    slot.active = new
                    if old is not None:
                        slot.history.append(old.version)
                    self._retire_if_unused(slot, old)
                state = slot.state()
        finally:
            self._release(new)
        log.info("%s: %s is active (was %s)", module, state.active, old.version if old else None)
        return state

    def rollback(self, module: str) -> SlotState:
        """Make the previously active version active again (loaded and self-tested like any swap)."""
        slot = self._slot(module)
        with slot.lock:
            if not slot.history:
                raise VersionNotLoaded(f"{module} has no previous version to roll back to")
            previous = slot.history[-1]
        self.swap(module, previous)
        with slot.lock:
            # swap() pushed the version we left; drop it and the one we returned to.
            del slot.history[-2:]
            return slot.state()

    def pin(self, module: str, key: str, version: str | ServableVersion) -> SlotState:
        """Answer requests whose context's course is ``key`` with ``version`` (loaded and self-tested)."""
        slot, new = self._obtain_for(module, version)
        try:
            with slot.lock:
                old = slot.pins.get(key)
                slot.pins[key] = new
                self._retire_if_unused(slot, old)
                return slot.state()
        finally:
            self._release(new)

    def unpin(self, module: str, key: str) -> SlotState:
        """Stop pinning ``key``; its requests go back to the default policy."""
        slot = self._slot(module)
        with slot.lock:
            self._retire_if_unused(slot, slot.pins.pop(key, None))
            return slot.state()

    def set_canary(self, module: str, version: str | ServableVersion, share: float) -> SlotState:
        """Send ``share`` (0..1) of learners, chosen by pseudonym hash, to ``version``."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"canary share must be within [0, 1], got {share}")
        slot, new = self._obtain_for(module, version)
        try:
            with slot.lock:
                old = slot.canary
                slot.canary, slot.canary_share = new, share
                self._retire_if_unused(slot, old)
                return slot.state()
        finally:
            self._release(new)

    def clear_canary(self, module: str) -> SlotState:
        """Stop the canary; all its traffic returns to the active version."""
        slot = self._slot(module)
        with slot.lock:
            old, slot.canary, slot.canary_share = slot.canary, None, 0.0
            self._retire_if_unused(slot, old)
            return slot.state()

    def unload(self, module: str) -> None:
        """Remove ``module`` from the host; running requests finish first, then its versions are freed."""
        slot = self._slot(module)
        with self._slots_lock:
            self._slots.pop(module, None)
        with slot.lock:
            holders = slot.holders()
            slot.active, slot.canary, slot.pins = None, None, {}
            for version in holders:
                self._retire_if_unused(slot, version)

    def modules(self) -> list[SlotState]:
        """A snapshot of every slot."""
        with self._slots_lock:
            slots = list(self._slots.values())
        states = []
        for slot in slots:
            with slot.lock:
                states.append(slot.state())
        return states

    def devices(self) -> list[DeviceState]:
        """Memory budget and use of every managed device."""
        return self.placement.device_states()

    # ==================================================================== references
    def _acquire(self, version: LoadedVersion) -> None:
        with self.placement.lock:
            version.refcount += 1
            version.last_used = time.monotonic()

    def _release(self, version: LoadedVersion) -> None:
        with self.placement.lock:
            version.refcount -= 1
            version.last_used = time.monotonic()
            if version.refcount == 0 and version.retired:
                self.placement.free(version)

    def _ensure_resident(self, version: LoadedVersion) -> None:
        """Load ``version``'s model if placement evicted it (or it was never loaded). Needs a reference."""
        if version.resident:
            return
        with version.load_lock:
            if version.resident:
                return
            device = self.placement.reserve(version)
            try:
                version.load(device)
            except BaseException:
                self.placement.free(version)
                raise

    def _plugin_placement(self, request: PlacementRequest, devices: list[DeviceState]) -> str | None:
        if not has_implementations(self.pm, "trm_placement"):
            return None
        return call_hook(self.pm, "trm_placement", firstresult=True, module=request, devices=devices)

    # ======================================================================= solving
    def _lease(self, module: str, context: SolveContext, request_key: str) -> _Lease:
        """Choose the version for this request and take a reference on it."""
        started = time.perf_counter()
        slot = self._slot(module)
        chosen: LoadedVersion | None = None
        if has_implementations(self.pm, "trm_select_version"):
            with slot.lock:
                state = slot.state()
            picked = call_hook(
                self.pm, "trm_select_version", firstresult=True, with_plugin=True, module=state, context=context
            )
            if picked is not None:
                plugin_name, wanted = picked
                with slot.lock:
                    chosen = slot.find(str(wanted))
                    if chosen is not None:
                        self._acquire(chosen)
                if chosen is None:
                    record_plugin_failure(
                        self.pm,
                        plugin_name,
                        "trm_select_version",
                        VersionNotLoaded(
                            f"chose {module} {wanted!r}, which is not loaded (loaded: {list(state.loaded)})"
                        ),
                    )
        if chosen is None:
            with slot.lock:
                chosen = slot.default_choice(context, request_key)
                if chosen is None:
                    raise VersionNotLoaded(
                        f"module {module!r} has no active version; activate a published one first", module=module
                    )
                self._acquire(chosen)
        return _Lease(chosen, started, context)

    @staticmethod
    def _context(context: SolveContext | Json | None) -> SolveContext:
        if context is None:
            return SolveContext()
        if isinstance(context, SolveContext):
            return context
        try:
            return SolveContext.model_validate(context)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise InvalidInput(f"bad solve context: {error['msg']}", json_pointer(error["loc"])) from exc

    @staticmethod
    def _check_text(input_json: Json, prefix: str = "", solve_id: str | None = None) -> None:
        """Refuse an input or solve id the store cannot keep (a lone surrogate, an overlong id), before any work."""
        if solve_id is not None:
            found = invalid_text_in(solve_id)
            if found is not None or not 0 < len(solve_id) <= ID_MAX:
                raise InvalidInput(
                    found[1] if found else f"a solve id has 1 to {ID_MAX} characters, this one {len(solve_id)}",
                    "/solve_id",
                )
        found = invalid_text_in(input_json)
        if found is not None:
            raise InvalidInput(found[1], prefix + found[0])

    def _answer(
        self,
        lease: _Lease,
        solve_id: str,
        data: Json,
        tokens: np.ndarray,
        puzzle_id: int,
        row: RowResult,
        first: Candidate | None = None,
        pending: list[Future] | None = None,
    ) -> Answer:
        """The answer to ``data`` from its first batch row, with more views when the rules reject that one
        (``pending``: those views, already queued)."""
        version = lease.version
        first = first or version.first_candidate(data, row)
        chosen, steps, views = version.answer_with_views(data, tokens, puzzle_id, first, pending)
        return Answer(
            solve_id=solve_id,
            module=version.name,
            version=version.version,
            digest=version.digest,
            output=chosen.output,
            steps=steps,
            confidence=chosen.confidence,
            valid=chosen.valid,
            latency_ms=(time.perf_counter() - lease.started) * 1000.0,
            device=version.device or "cpu",
            views=views,
        )

    def _record(self, answer: Answer, data: Json, context: SolveContext) -> None:
        if not has_implementations(self.pm, "trm_on_solve"):
            return
        record = SolveRecord(
            id=answer.solve_id,
            module=answer.module,
            version=answer.version,
            digest=answer.digest,
            context=context,
            input=data,
            output=answer.output,
            steps=answer.steps,
            confidence=answer.confidence,
            valid=answer.valid,
            latency_ms=answer.latency_ms,
            device=answer.device,
        )
        answer._observed = self.events.emit("trm_on_solve", "record", record)

    def solve(
        self, module: str, input_json: Json, context: SolveContext | Json | None = None, *, solve_id: str | None = None
    ) -> Answer:
        """Answer one input with the version the context selects.

        Raises ``ModuleNotFound`` (module not loaded), ``InvalidInput`` (schema or codec refused
        the input; ``path`` points into it), ``PlacementError`` (an evicted version cannot be
        reloaded). The ``SolveRecord`` goes to observers after the answer is returned.
        """
        solve_id = solve_id or new_id()
        ctx = self._context(context)
        self._check_text(input_json, solve_id=solve_id)
        lease = self._lease(module, ctx, solve_id)
        try:
            self._ensure_resident(lease.version)
            tokens, puzzle_id = lease.version.encode(input_json)
            row = lease.version.submit(tokens, puzzle_id).result()
            answer = self._answer(lease, solve_id, input_json, tokens, puzzle_id, row)
        finally:
            self._release(lease.version)
        self._record(answer, input_json, ctx)
        return answer

    def solve_many(
        self,
        module: str,
        inputs: Sequence[Json],
        context: SolveContext | Json | None = None,
        *,
        solve_ids: Sequence[str] | None = None,
    ) -> list[Answer]:
        """Answer several inputs, all with the same version, batched together; answers in input order.

        An invalid item raises ``InvalidInput`` whose path starts with the item's index, and
        nothing is computed.
        """
        if solve_ids is not None and len(solve_ids) != len(inputs):
            raise InvalidInput(f"{len(solve_ids)} solve ids for {len(inputs)} inputs", "/solve_ids")
        ids = list(solve_ids) if solve_ids is not None else [new_id() for _ in inputs]
        ctx = self._context(context)
        for index, (data, solve_id) in enumerate(zip(inputs, ids)):
            self._check_text(data, f"/{index}", solve_id)
        lease = self._lease(module, ctx, ids[0] if ids else new_id())
        try:
            self._ensure_resident(lease.version)
            encoded = [lease.version.encode(data, (i,)) for i, data in enumerate(inputs)]
            version = lease.version
            rows = [f.result() for f in [version.submit(tokens, pid) for tokens, pid in encoded]]
            firsts = [version.first_candidate(data, row) for data, row in zip(inputs, rows)]
            # Queue the other views of every rejected input before waiting on any: they share batches.
            pending = [
                version.submit_views(*encoded[i]) if version.wants_more_views(first) else []
                for i, first in enumerate(firsts)
            ]
            answers = [
                self._answer(lease, ids[i], inputs[i], *encoded[i], rows[i], firsts[i], pending[i])
                for i in range(len(inputs))
            ]
        finally:
            self._release(lease.version)
        for answer, data in zip(answers, inputs):
            self._record(answer, data, ctx)
        return answers

    async def asolve(
        self, module: str, input_json: Json, context: SolveContext | Json | None = None, *, solve_id: str | None = None
    ) -> Answer:
        """``solve`` for asyncio: awaits the batch without blocking the event loop."""
        solve_id = solve_id or new_id()
        ctx = self._context(context)
        self._check_text(input_json, solve_id=solve_id)
        lease = self._lease(module, ctx, solve_id)
        try:
            if not lease.version.resident:  # loading takes long: keep it off the event loop
                await asyncio.get_running_loop().run_in_executor(None, self._ensure_resident, lease.version)
            tokens, puzzle_id = lease.version.encode(input_json)
            row = await asyncio.wrap_future(lease.version.submit(tokens, puzzle_id))
            first = lease.version.first_candidate(input_json, row)
            if lease.version.wants_more_views(first):  # waits on more batches: keep it off the event loop
                answer = await asyncio.get_running_loop().run_in_executor(
                    None, self._answer, lease, solve_id, input_json, tokens, puzzle_id, row, first
                )
            else:
                answer = self._answer(lease, solve_id, input_json, tokens, puzzle_id, row, first)
        finally:
            self._release(lease.version)
        self._record(answer, input_json, ctx)
        return answer

    # ====================================================================== feedback
    def feedback(self, event: FeedbackEvent | Json) -> FeedbackEvent:
        """Accept one feedback event and hand it to ``trm_on_feedback`` observers; returns it validated."""
        return self._feedback(event)[0]

    async def afeedback(self, event: FeedbackEvent | Json) -> tuple[FeedbackEvent, list[Any]]:
        """``feedback`` for asyncio, returning once every observer has the event, with their results
        (the store's write ticket among them)."""
        event, observed = self._feedback(event)
        return event, (await asyncio.wrap_future(observed) if observed is not None else [])

    def _feedback(self, event: FeedbackEvent | Json) -> tuple[FeedbackEvent, Future | None]:
        if not isinstance(event, FeedbackEvent):
            try:
                event = FeedbackEvent.model_validate(event)
            except ValidationError as exc:
                error = exc.errors()[0]
                field = getattr((error.get("ctx") or {}).get("error"), "field", None)
                location = [*error["loc"], field] if field else error["loc"]
                raise InvalidInput(f"bad feedback event: {error['msg']}", json_pointer(location)) from exc
        if has_implementations(self.pm, "trm_on_feedback"):
            return event, self.events.emit("trm_on_feedback", "event", event)
        return event, None

    # ===================================================================== lifecycle
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until observers received every record and event emitted so far."""
        return self.events.flush(timeout)

    def close(self) -> None:
        """Deliver pending events, then unload every module."""
        self.events.close()
        with self._slots_lock:
            names = list(self._slots)
        for name in names:
            self.unload(name)

    def __enter__(self) -> "Host":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
