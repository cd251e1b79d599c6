"""What a server runs on: one Host over one registry, the store's recorder, tokens and metrics.

``ServerRuntime.start`` wires the library objects together, applies the routing state stored by
earlier admin changes (``server.routing``: every replica on one store serves the same versions)
and activates, for every other module published in the registry, its promoted version
(``trm promote``), else its newest that is not yanked. The HTTP routes only call methods of these objects.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

from pydantic import Field

from ..host import Host
from ..model.precision import all_cores
from ..package import DirectoryRegistry
from ..package.errors import NoMatchingVersion
from ..package.registry import default_registry_path, installed_registry
from ..package.semver import Version
from ..plugins import build_plugin_manager, call_hook, settings_for_plugins
from ..settings import Settings
from ..views import DEFAULT_VIEWS
from ..store import Recorder, Store, StorePlugin, StoreUnavailable
from ..store.routing import RoutingTable
from .intake import EventIntake
from .metrics import ServerMetrics
from .routing import ReplicatedRouting
from .tokens import TokenStore
from .trials import TrialEvaluator
from .trust import PolicySource, SignaturePolicy

log = logging.getLogger("trm_modules.server")

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_MAX_PACKAGE_BYTES = 256 << 20


class ServerSettings(Settings):
    """How a server runs: the process's ``Settings`` plus the server's own knobs (each also
    ``TRM_<FIELD>`` in the environment or the settings file).

    ``registry``: folder of the served registry (default: ``TRM_REGISTRY``, the checkout's
    ``registry/``, else the installed-modules registry). ``db``: store URL or SQLite path (sets
    ``db_url``). ``public_url``: the URL clients reach the server at (solve activity IRIs
    are built from it). ``views``: test-time views (``trm_modules.views``). ``extra_plugins``: plugin
    objects registered on the server's plugin manager besides the discovered ones (an embedding
    application's own hooks). ``trusted_keys``: folder of the public keys packages must be signed
    with (default: the registry's ``keys/``); ``allow_unsigned`` turns that policy off
    (``trm_modules.server.trust``). ``registry_url``: serve the modules of a registry read over HTTP
    (another server's ``/registry``, a static web server) instead of a folder, with ``registry_token``
    as its bearer token; packages are downloaded into ``<home>/cache/registry`` (``HttpRegistry``).
    """

    public_url: str | None = "http://127.0.0.1:8000"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_package_bytes: int = DEFAULT_MAX_PACKAGE_BYTES
    batch_window_ms: float = 2.0
    cpu_threads: int | None = None
    views: int = DEFAULT_VIEWS
    entry_point_plugins: bool = True
    journal_path: Path | None = None
    recorder_options: dict[str, Any] = Field(default_factory=dict)
    extra_plugins: list[Any] = Field(default_factory=list, exclude=True)
    replica_name: str | None = None
    routing_poll_s: float = 0.2
    trusted_keys: Path | None = None
    allow_unsigned: bool = False
    registry_url: str | None = None
    registry_token: str | None = None
    request_timeout_s: float = Field(60.0, gt=0)
    """A request body not fully received this long after the request began is answered 408 (package
    uploads: ``upload_timeout_s``)."""
    upload_timeout_s: float = Field(600.0, gt=0)
    keep_alive_timeout_s: float = Field(5.0, gt=0)
    """An idle keep-alive connection is closed after this long (uvicorn's ``timeout_keep_alive``)."""
    trial_evaluation_s: float = Field(60.0, ge=0)
    """Every this many seconds (and shortly after a verdict arrives), running trials with a policy are
    evaluated and ended when it decides (``trm_modules.server.trials``); 0 turns it off on this replica."""
    trial_nudge_gap_s: float = Field(2.0, ge=0)
    """Verdicts arriving closer together than this lead to one evaluation."""

    def __init__(self, db: str | os.PathLike[str] | None = None, **values: Any) -> None:
        super().__init__(**({"db_url": os.fspath(db)} if db is not None else {}), **values)


def served_registry(settings: Settings) -> DirectoryRegistry:
    """The registry a server publishes to and serves from (see ``ServerSettings.registry``, ``registry_url``)."""
    url = getattr(settings, "registry_url", None)
    if url:
        from ..package.http_registry import HttpRegistry

        token = getattr(settings, "registry_token", None)
        return HttpRegistry(
            url, settings.home / "cache" / "registry", headers={"Authorization": f"Bearer {token}"} if token else None
        )
    default = default_registry_path(settings)
    return DirectoryRegistry(default, create=True) if default is not None else installed_registry(settings)


@dataclass
class StartReport:
    """What a server activated on start, and what it could not."""

    registry: str
    activated: dict[str, str]
    failed: dict[str, str]
    #: modules published only as pre-releases (a run spanning sittings): nothing to serve by default,
    #: which is not a failure; the value is the newest pre-release.
    prerelease_only: dict[str, str] = field(default_factory=dict)


class ServerRuntime:
    """The library objects behind one server; build with ``start``, release with ``close``."""

    def __init__(
        self,
        settings: ServerSettings,
        host: Host,
        registry: DirectoryRegistry,
        recorder: Recorder,
        tokens: TokenStore,
        metrics: ServerMetrics,
    ) -> None:
        self.settings = settings
        self.host = host
        self.registry = registry
        self.recorder = recorder
        self.store: Store = recorder.store
        self.tokens = tokens
        self.metrics = metrics
        self.intake = EventIntake(host, recorder)
        replica = settings.replica_name or f"{socket.gethostname()}:{os.getpid()}"
        self.routing = ReplicatedRouting(
            host, registry, RoutingTable(recorder.store, replica), poll_s=settings.routing_poll_s
        )
        self.trials = TrialEvaluator(
            recorder.store,
            self.routing,
            interval_s=settings.trial_evaluation_s,
            nudge_gap_s=settings.trial_nudge_gap_s,
        )
        self.signature_policy = SignaturePolicy(None, "unsigned packages allowed")
        self.report = StartReport(str(registry.root), {}, {})
        self._started = False

    @classmethod
    def start(cls, settings: ServerSettings) -> "ServerRuntime":
        """Open the store, build the host over the registry, and activate every published module."""
        registry = served_registry(settings)
        recorder_options = dict(settings.recorder_options)
        if settings.journal_path is not None:
            recorder_options["journal_path"] = settings.journal_path
        pm = build_plugin_manager(entry_points=settings.entry_point_plugins, settings=settings)
        for plugin in settings.extra_plugins:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            pm.register_with_origin(plugin, name, "object", repr(plugin))
        settings = settings_for_plugins(settings, pm)  # the plugins' own settings, typed (trm_declare_settings)
        # The store migrates the plugins' own tables (trm_store_schemas) beside the core's.
        recorder = Recorder(Store(settings.db, plugins=pm), **recorder_options)
        try:
            recorder.store.ensure_schema()
        except StoreUnavailable as exc:  # serve anyway: events journal until the database answers
            recorder.note_database_down(exc)
            log.warning(
                "starting without the store (%s); solves and feedback are journaled to %s and replayed when it answers",
                exc,
                recorder.journal_path.name,
            )
        metrics = ServerMetrics()
        metrics.watch_recorder(recorder)
        pm.register(StorePlugin(recorder), name="trm-store")
        pm.register(metrics, name="trm-server-metrics")
        policy = SignaturePolicy.build(registry, settings.trusted_keys, settings.allow_unsigned)
        host = Host(
            [PolicySource(registry, policy)],
            plugin_manager=pm,
            batch_window_ms=settings.batch_window_ms,
            cpu_threads=settings.cpu_threads or all_cores(),
            views=settings.views,
            engine=settings.engine,
            cuda_graphs=settings.cuda_graphs,
            precision=settings.precision,
        )
        runtime = cls(settings, host, registry, recorder, TokenStore(recorder.store), metrics)
        runtime.signature_policy = policy
        try:
            routed = runtime.routing.start()
        except StoreUnavailable as exc:
            routed = set()
            log.warning("the stored routing state cannot be read (%s); serving the registry's active versions", exc)
        runtime.activate_published(skip=routed)
        pm.register(runtime.trials, name="trm-trial-evaluator")  # verdicts nudge it
        runtime.trials.start()
        runtime._started = True
        call_hook(pm, "trm_startup", runtime=runtime)
        return runtime

    def activate_published(self, skip: Collection[str] = frozenset()) -> StartReport:
        """Make each published module's active version (``trm promote``; else the newest non-yanked) active.

        ``skip``: modules the stored routing state already placed. Failures are reported, never
        fatal: one broken module must not keep the others down.
        """
        for name in sorted(skip):
            state = {s.name: s for s in self.host.modules()}.get(name)
            self.report.activated[name] = state.active or "" if state is not None else ""
        entries = self.registry.list(include_yanked=False)
        for name in sorted({entry.name for entry in entries} - set(skip)):
            try:
                state = self.host.swap(name, self.registry.active_version(name))
                self.report.activated[name] = state.active or ""
            except NoMatchingVersion as exc:
                published = [Version.parse(e.version) for e in entries if e.name == name]
                if published and all(v.prerelease for v in published):
                    self.report.prerelease_only[name] = str(max(published))
                else:
                    self.report.failed[name] = str(exc)
            except Exception as exc:  # noqa: BLE001
                self.report.failed[name] = str(exc)
                log.error("module %s was not activated: %s", name, exc)
        return self.report

    def close(self) -> None:
        """Tell plugins (``trm_shutdown``), deliver pending events, unload modules, write what the recorder holds."""
        if self._started:
            self._started = False
            call_hook(self.host.pm, "trm_shutdown", runtime=self)
        self.trials.close()
        self.routing.close()
        self.host.close()
        self.recorder.close()
        self.store.close()
