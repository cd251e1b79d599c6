"""The plugin contract of trm-modules (pluggy project name ``trm_modules``).

This file is the plugin author's manual. A plugin is a Python module (or object) with plain
functions named after the hooks below and marked ``@hookimpl``; implement only the hooks you
need, and accept only the arguments you use (pluggy passes arguments by name)::

    from trm_modules import hookimpl

    @hookimpl
    def trm_on_solve(record):
        print(record.module, record.version, record.latency_ms)

The hooks answer one question each:

- what a plugin provides: ``trm_register_codecs`` (task codecs), ``trm_register_architectures``
  (reasoning networks), ``trm_module_sources`` (where
  packages are found), ``trm_register_routes`` (HTTP routes of ``trm serve``),
  ``trm_register_commands`` (``trm`` sub-commands), ``trm_board_view`` (how the browser activities
  draw a task's board);
- what the host decides: ``trm_select_version`` (which version answers a request),
  ``trm_placement`` (which device a version is loaded onto);
- what a plugin observes: ``trm_on_solve``, ``trm_on_feedback``;
- a server's life: ``trm_startup``, ``trm_shutdown``;
- what a plugin keeps: ``trm_store_schemas`` (its own tables and migrations in the store);
- how a plugin is configured: ``trm_declare_settings``;
- what a plugin answers for: ``trm_privacy_providers`` (the learners' personal data it keeps).

The built-in platform bridges (xAPI, SCORM export, …) in the ``adapters/`` folder use exactly these
hooks: the core never imports them.

A plugin is found in one of three ways, and ``trm plugins`` shows which:

- **entry point** — a distribution declares it in the ``trm_modules`` group of its own
  ``pyproject.toml``; installing the distribution is enough::

      [project.entry-points.trm_modules]
      my_plugin = "my_package.plugin_module"

- **path** — a ``.py`` file named in the ``TRM_PLUGINS`` environment variable
  (``os.pathsep``-separated), or registered with ``trm_modules.plugins.register_plugin_file``;
- **builtin** — the host's own defaults (``trm_modules.host.builtin``).

``hookimpl`` is re-exported as ``trm_modules.hookimpl``; importing it loads neither torch nor
any other part of the project.

Error isolation: the host calls every implementation separately. An implementation that
raises is logged with the plugin's name and counted (``trm plugins`` shows the count); the
other plugins still run and the request still succeeds. A ``firstresult`` hook that raises is
treated as if it had returned ``None`` (the next plugin, then the host's default, decides).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only; this module is a leaf at run time
    import typer
    from fastapi import APIRouter

    from .boards import BoardView
    from .codec import TaskCodec
    from .host.placement import DeviceState, PlacementRequest
    from .host.slots import SlotState
    from .host.sources import ModuleSource
    from .records import FeedbackEvent, SolveContext, SolveRecord
    from .server.runtime import ServerRuntime
    from .settings import PluginSetting
    from .store.privacy import PersonalDataProvider
    from .store.schema import PluginSchema

PROJECT = "trm_modules"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def trm_register_codecs() -> list[type]:
    """Return the task codec classes this plugin provides (subclasses of ``TaskCodec``).

    Each class has a unique ``name`` (e.g. ``"sudoku"``); a package's manifest names the codec
    in ``task.codec`` and its parameters in ``task.params``. When two plugins provide the same
    name, the first one registered wins (built-in adapters load before third-party plugins).
    """


@hookspec(firstresult=True)
def trm_board_view(codec: TaskCodec) -> "BoardView | dict[str, Any] | None":
    """Describe how the browser activities draw and edit ``codec``'s token grid, or return ``None`` for a codec
    this plugin does not know (the next plugin answers; first answer wins).

    Return a ``trm_modules.boards.BoardView`` (or its JSON as a dict): ``rows`` × ``cols`` cells in the
    codec's token order, ``blank_token`` (the input token of the cells the learner edits), ``choices`` (the
    tokens an edited cell may hold), ``labels`` and ``classes`` (how each token is shown), ``entry``
    (``"type"`` a label or ``"click"`` through the choices), ``instructions`` and ``rules`` the page checks
    answers by (``AllDifferent`` groups, ``ShortestPath``) so that its test-time views choose as the server
    does. The SCORM and cmi5 exports, the LTI activity and the dashboard's boards use it; a task whose plugin
    implements none is refused with ``NoBoardView`` naming this hook. The Sudoku, maze and generic grid codecs
    are described by their adapters::

        @hookimpl
        def trm_board_view(codec):
            if codec.name != "latin":
                return None
            from trm_modules.boards import AllDifferent, BoardView, grid_groups
            n = codec.size
            return BoardView(rows=n, cols=n, blank_token=1, choices=list(range(2, n + 2)),
                             labels={str(t): str(t - 1) for t in range(2, n + 2)},
                             rules=[AllDifferent(groups=grid_groups(n, n))])
    """


@hookspec
def trm_register_architectures() -> list[Any]:
    """Return the reasoning architectures this plugin provides (``trm_modules.model.architecture.Architecture``).

    Each has a unique ``name`` (``"trm"``, ``"hrm"`` are built in); a package's manifest names it in
    ``model.architecture`` and holds its config in ``model.config``. An architecture is a pydantic
    config model and a ``trm_modules.model.reasoning.ReasoningModel`` subclass implementing the
    supervision-step contract (``deep_recursion(x, carry) -> StepOutput``), its halting rule and its
    training loss; the loader, trainer, solving kernel, host, ONNX engine and browser export use
    nothing else. When two plugins provide the same name, the first registered wins (built-in
    first). A package whose architecture no installed plugin provides is refused
    (``UnknownArchitecture`` naming it)::

        @hookimpl
        def trm_register_architectures():
            from trm_modules.model.architecture import Architecture
            return [Architecture("direct", DirectConfig, DirectModel)]
    """


@hookspec
def trm_module_sources() -> list["ModuleSource"]:
    """Return places where module packages can be found (folders, registries).

    Each item implements the ``trm_modules.host.sources.ModuleSource`` protocol:
    ``list_versions(name) -> list[str]`` (oldest first) and ``open(name, version)`` returning an
    opened, verified package (``trm_modules.package.open_package``) or a ``ServableVersion``.
    ``FolderSource(path)`` scans a folder for ``*.trm`` files and is usually all you need.
    Sources are asked in order: those passed to ``Host(sources=...)`` first, then plugins'.
    """


@hookspec(firstresult=True)
def trm_select_version(module: "SlotState", context: "SolveContext") -> str | None:
    """Choose the version of ``module`` that answers a request from ``context``.

    ``module`` is a read-only snapshot of the module's slot: ``name``, ``active``,
    ``canary`` and ``canary_share``, ``pins`` (context key → version) and ``loaded`` (the
    versions this host holds for the module). Return one of ``module.loaded``, or ``None`` to
    leave the decision to the next plugin and finally to the host's default policy (course pin,
    then canary share by learner-pseudonym hash, then the active version). A returned version
    that is not loaded is reported as a plugin error and the default policy decides.
    Called on every request: keep it fast and free of I/O.
    """


@hookspec(firstresult=True)
def trm_placement(module: "PlacementRequest", devices: list["DeviceState"]) -> str | None:
    """Choose the device a module version is loaded onto.

    ``module`` carries ``name``, ``version``, ``memory_bytes`` (what it needs) and ``allowed``
    (devices its manifest allows, e.g. ``["cpu", "cuda"]``). ``devices`` lists every device the
    host manages with ``name`` (``"cpu"``, ``"cuda:0"`` …), ``budget_bytes``, ``used_bytes`` and
    ``idle_bytes`` (held by idle versions, which the host may evict to make room). Return a
    device name, or ``None`` for the default (first CUDA device with room, else CPU). The host
    still enforces the budget: it evicts least-recently-used idle versions on the chosen device
    and refuses the load (``PlacementError``) if the version cannot fit there.
    """


@hookspec
def trm_on_solve(record: "SolveRecord") -> Any:
    """Observe one answered request (``trm_modules.records.SolveRecord``).

    Called after ``Host.solve`` computed the answer, from the host's event thread, in the order
    requests finished. Never on the compute path; a slow observer delays only other observers.
    Exceptions are caught, logged and counted per plugin. An observer that keeps the record may
    return an acknowledgement (the store returns its ``WriteTicket``): ``trm serve`` answers the
    HTTP request only once every returned ticket is durable.
    """


@hookspec
def trm_on_feedback(event: "FeedbackEvent") -> Any:
    """Observe one piece of outcome feedback (``trm_modules.records.FeedbackEvent``).

    Called from the host's event thread after ``Host.feedback`` accepted the event; same
    isolation and acknowledgement rules as ``trm_on_solve``.
    """


@hookspec
def trm_register_routes(runtime: "ServerRuntime") -> "APIRouter | list[APIRouter] | None":
    """Return FastAPI routers (one, a list, or ``None``) that ``trm serve`` mounts next to its own.

    Called once per application, when ``trm_modules.server.create_app`` builds it, after the
    core routes (``/healthz``, ``/metrics``, ``/v1/...``), so a plugin cannot shadow them. A
    handler reaches the server's ``ServerRuntime`` (``host``, ``registry``, ``recorder``,
    ``store``, ``tokens``, ``metrics``, ``settings``) as ``request.app.state.runtime``; guard a
    route with ``Depends(trm_modules.server.auth.require_scope("solve"))`` (or ``"feedback"``,
    ``"admin"``) to need a token, and raise ``trm_modules.server.problems.Problem`` for an RFC 9457
    error. Build the routers here rather than at import time: the hook may run once per app::

        @hookimpl
        def trm_register_routes(runtime):
            router = APIRouter(prefix="/hello")

            @router.get("")
            def hello(request: Request) -> dict:
                return {"modules": [s.name for s in request.app.state.runtime.host.modules()]}

            return router

    A plugin whose hook raises is logged and counted like any other; the server still starts.
    """


@hookspec
def trm_register_commands(cli: "typer.Typer") -> None:
    """Add sub-commands to the ``trm`` command line: ``cli.command("my-command")(function)``
    (or ``cli.add_typer(group, name=...)``).

    Called once when the CLI is built, with the process's default plugin manager (built-in,
    entry-point and ``TRM_PLUGINS`` plugins). Keep imports inside the command functions, so that
    ``trm --help`` stays fast. A command name that is already taken is not replaced: the core's
    and earlier plugins' commands win.
    """


@hookspec
def trm_startup(runtime: "ServerRuntime") -> None:
    """A server runtime started: its store is open and its published modules are active.

    Start background work here (a forwarder thread, a cache warm-up) and keep what it needs on
    your plugin object; ``runtime.settings`` holds the server's settings. Exceptions are logged
    and counted; the server still starts.
    """


@hookspec
def trm_shutdown(runtime: "ServerRuntime") -> None:
    """A server runtime is closing: called before its host unloads and its recorder is flushed.

    Stop what ``trm_startup`` started. Called at most once per runtime; exceptions are logged
    and counted and never stop the shutdown.
    """


@hookspec
def trm_store_schemas() -> list["PluginSchema"]:
    """Return the store schemas this plugin owns (``trm_modules.store.schema.PluginSchema``): SQLAlchemy
    metadata of its tables and a folder of Alembic revisions with their own history and version table.

    ``trm db upgrade`` (and a ``Store`` on first use) migrates the core, then every plugin's schema to its
    head. Prefix your tables with your plugin's name: a table another schema already owns is refused
    (``SchemaClash``) before anything is migrated. Use the store's engine (``runtime.store.engine``) to
    read and write them; ``trm_modules.store.schema.all_metadata`` lists every schema's tables (backups).
    """


@hookspec
def trm_declare_settings() -> list["PluginSetting"]:
    """Return the settings this plugin reads (``trm_modules.settings.PluginSetting``: name, type, default,
    help, environment variable).

    They become typed fields of the one settings object, from the same sources as the core's (flags or
    keyword arguments, ``TRM_*`` variables, the ``TRM_CONFIG`` file): read them as ``runtime.settings.<name>``
    in ``trm_startup`` or a route. Prefix names with your plugin's; a name the core or another plugin already
    declares is refused (``SettingsClash``).
    """


@hookspec
def trm_privacy_providers() -> list["PersonalDataProvider"]:
    """Return the providers of the personal data this plugin keeps (``trm_modules.store.privacy``).

    Like Moodle's privacy API: a provider declares what it keeps about learners (table, fields, purpose),
    links identifiers it knows to one learner (an LTI user to a pseudonym, an xAPI mailbox to an agent), and
    exports, erases and expires that data on the store's connection (one transaction with the core's and
    every other provider's). ``trm privacy export|erase|expire`` and the admin routes ``/v1/privacy/...``
    call every provider; a plugin that keeps learners' data and implements none leaves it behind.
    """


__all__ = [
    "PROJECT",
    "hookspec",
    "hookimpl",
    "trm_register_codecs",
    "trm_board_view",
    "trm_register_architectures",
    "trm_module_sources",
    "trm_select_version",
    "trm_placement",
    "trm_on_solve",
    "trm_on_feedback",
    "trm_register_routes",
    "trm_register_commands",
    "trm_startup",
    "trm_shutdown",
    "trm_store_schemas",
    "trm_declare_settings",
    "trm_privacy_providers",
]
