"""xAPI forwarding: every solve and feedback event goes to a Learning Record Store as a statement.

Registered through the ``trm_modules`` entry-point group (``xapi = "trm_adapters.xapi"``): when
``trm serve`` starts (``trm_startup``) with an LRS configured, a forwarder over the server's store
is registered as an observer of solves and feedback; nothing happens otherwise. Configuration
(fields of ``trm_modules.settings.Settings``: a flag, ``TRM_<FIELD>`` or the settings file):

- ``TRM_XAPI_LRS_URL``: the LRS endpoint (``https://lrs.example/xapi/``; statements go to ``…/statements``);
- ``TRM_XAPI_LRS_AUTH``: ``user:password`` (sent as Basic auth) or a full ``Authorization`` value;
- ``TRM_XAPI_ACTIVITY_BASE``: the IRI base of solve activities (default: the server's public URL);
- ``TRM_XAPI_HOMEPAGES``: ``platform=https://lms.example,other=https://…``: the account ``homePage``
  of each platform's learners, so the LRS sees them as the platform's own users.

Nothing is lost when the LRS is down: a statement is a row of the store's ``xapi_outbox`` table
(``xapi_outbox.py``) before anything is sent; a sender thread posts due rows in batches and deletes
them once the LRS accepted them. A failed send (unreachable, 5xx, 429) puts each statement of the
batch on its own exponential back-off. A batch the LRS refuses (400, 409, 413) is split until the
refused statements stand alone; those become dead letters (kept with the LRS's answer), their good
neighbours are delivered. Statement ids are fixed by the solve / feedback ids, so a batch sent twice
(a crash between send and delete) is stored once by the LRS. While the store itself cannot be
written, new statements wait in memory and are queued as soon as it can. Feedback that itself came
from an LRS (``source == "xapi"``) is not sent back.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Optional

import httpx

from trm_modules import hookimpl
from trm_modules.settings import PluginSetting
from trm_modules.store.schema import PluginSchema
from trm_modules.records import FeedbackEvent, SolveRecord

from .xapi_outbox import Clock, Outbox, Queued, utcnow
from .xapi_outbox import metadata as outbox_metadata
from .xapi_statements import StatementNaming, statement_for_feedback, statement_for_solve

log = logging.getLogger("trm_adapters.xapi")

XAPI_VERSION = "1.0.3"
REFUSED = (400, 409, 413)
PLUGIN_NAME = "trm-xapi-forwarder"


def authorization_header(auth: str | None) -> str | None:
    """``user:password`` → a Basic header value; a value with a scheme (``Basic …``, ``Bearer …``) is kept."""
    if not auth:
        return None
    if " " in auth.strip():
        return auth.strip()
    return "Basic " + base64.b64encode(auth.encode()).decode()


def parse_homepages(value: str | None) -> dict[str, str]:
    """``moodle=https://moodle.example,canvas=https://canvas.example`` → a dict (empty for None / "")."""
    homepages = {}
    for item in (value or "").split(","):
        if item.strip():
            platform, _, url = item.partition("=")
            if not url.strip():
                raise ValueError(f"xapi_homepages (TRM_XAPI_HOMEPAGES): {item!r} is not platform=https://homepage")
            homepages[platform.strip()] = url.strip()
    return homepages


class XapiForwarder:
    """Sends solves and feedback to an LRS through the store's durable outbox; register it as a plugin.

    ``store``: a ``trm_modules.store.Store`` (its ``xapi_outbox`` table). ``naming``: how statements
    name learners and activities. ``retry_initial_s`` / ``retry_max_s``: per-statement back-off.
    ``client``: an ``httpx.Client`` (tests); ``clock``: "now" (tests); ``start``: run the sender thread
    (without it, call ``send_due``).
    """

    def __init__(
        self,
        endpoint: str,
        store: Any,
        *,
        naming: StatementNaming | str = "http://localhost:8000",
        auth: str | None = None,
        batch_size: int = 100,
        timeout_s: float = 10.0,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 300.0,
        client: httpx.Client | None = None,
        clock: Clock = utcnow,
        start: bool = True,
    ) -> None:
        self.endpoint = endpoint.rstrip("/") + "/"
        self.naming = naming if isinstance(naming, StatementNaming) else StatementNaming(naming)
        store.ensure_schema()
        self.outbox = Outbox(store.engine, clock)
        self.batch_size = batch_size
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.sent = 0
        self.failures = 0
        headers = {"X-Experience-API-Version": XAPI_VERSION, "Content-Type": "application/json"}
        authorization = authorization_header(auth)
        if authorization:
            headers["Authorization"] = authorization
        self._headers = headers
        self._client = client or httpx.Client(timeout=timeout_s)
        self._held: list[dict[str, Any]] = []
        self._held_lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._closed = False
        self._sender: threading.Thread | None = None
        if start:
            self._sender = threading.Thread(target=self._run, name="trm-xapi-forwarder", daemon=True)
            self._sender.start()

    @classmethod
    def from_settings(cls, store: Any, settings: Any) -> "XapiForwarder | None":
        """A forwarder configured by ``settings`` (``xapi_lrs_url``, ``xapi_lrs_auth``, ``xapi_activity_base``,
        ``xapi_homepages``, ``public_url``), or None when no LRS URL is set."""
        if not getattr(settings, "xapi_lrs_url", None):  # declared by this plugin (trm_declare_settings)
            return None
        naming = StatementNaming(
            settings.xapi_activity_base or settings.public_url or "http://localhost:8000",
            parse_homepages(settings.xapi_homepages),
        )
        return cls(settings.xapi_lrs_url, store, naming=naming, auth=settings.xapi_lrs_auth)

    # -- observing -------------------------------------------------------------------------------
    @hookimpl
    def trm_on_solve(self, record: SolveRecord) -> None:
        """Queue the solve's statement."""
        self.enqueue(statement_for_solve(record, self.naming))

    @hookimpl
    def trm_on_feedback(self, event: FeedbackEvent) -> None:
        """Queue the feedback's statement, unless the feedback came from an LRS."""
        if event.source != "xapi":
            self.enqueue(statement_for_feedback(event, self.naming))

    def enqueue(self, statement: dict[str, Any]) -> None:
        """Queue ``statement`` durably and wake the sender.

        While the store cannot be written, statements wait in memory (``held``) and the sender
        queues them as soon as it can: an outage loses them only if the process dies during it.
        """
        with self._held_lock:
            self._held.append(statement)
        try:
            self._queue_held()
        except Exception as exc:  # noqa: BLE001 - the store is away; the sender retries
            log.warning("the store refused an outbound statement (%s); %d wait in memory", exc, len(self._held))
        self._wake.set()

    def _queue_held(self) -> None:
        with self._held_lock:
            if self._held:
                self.outbox.add(self._held)
                self._held.clear()

    def pending(self) -> int:
        """Statements queued and not yet accepted by the LRS (dead letters excluded)."""
        with self._held_lock:
            held = len(self._held)
        return held + self.outbox.pending()

    # -- sending ---------------------------------------------------------------------------------
    def _post(self, items: list[Queued]) -> httpx.Response:
        body = "[" + ",".join(json.dumps(i.statement, separators=(",", ":")) for i in items) + "]"
        return self._client.post(self.endpoint + "statements", content=body, headers=self._headers)

    def _deliver(self, items: list[Queued]) -> bool:
        """Send ``items``; False when the LRS could not take them now (they wait their back-off)."""
        try:
            response = self._post(items)
        except httpx.HTTPError as exc:
            self.outbox.postpone(items, f"unreachable: {exc}", self.retry_initial_s, self.retry_max_s)
            log.warning("the LRS at %s is unreachable (%s); %d statements wait", self.endpoint, exc, len(items))
            return False
        if response.status_code in (200, 204):
            self.outbox.delivered([i.seq for i in items])
            self.sent += len(items)
            return True
        if response.status_code in REFUSED:
            if len(items) > 1:  # find the refused statements; their neighbours are fine
                half = len(items) // 2
                return self._deliver(items[:half]) & self._deliver(items[half:])
            self.outbox.bury(items, f"{response.status_code}: {response.text[:800]}")
            log.error(
                "the LRS refused statement %s (%d %s); kept as a dead letter",
                items[0].statement.get("id"),
                response.status_code,
                response.text[:300],
            )
            return True
        self.outbox.postpone(
            items, f"{response.status_code}: {response.text[:800]}", self.retry_initial_s, self.retry_max_s
        )
        log.warning("the LRS answered %d; %d statements wait", response.status_code, len(items))
        return False

    def send_due(self) -> bool:
        """Queue what waits in memory, then send every due statement, batch by batch; False if a send
        failed (the rest waits its back-off)."""
        self._queue_held()
        while True:
            items = self.outbox.due(self.batch_size)
            if not items:
                return True
            if not self._deliver(items):
                self.failures += 1
                return False

    def _run(self) -> None:
        while not self._closed:
            try:
                self.send_due()
                wait = self.outbox.next_due_in()
            except Exception as exc:  # noqa: BLE001 - the store may be away; the thread must not die
                log.error("xAPI forwarding failed: %s", exc)
                wait = self.retry_initial_s
            with self._idle:
                self._idle.notify_all()
            self._wake.wait(timeout=wait)
            self._wake.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wake the sender and wait until nothing is pending; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            with self._idle:
                self._idle.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        return True

    def close(self) -> None:
        """Stop the sender; what is still queued is sent by the next forwarder on this store."""
        self._closed = True
        self._wake.set()
        if self._sender is not None:
            self._sender.join(timeout=10)
        self._client.close()


SETTINGS = [
    PluginSetting(
        "xapi_lrs_url",
        Optional[str],
        None,
        "The LRS every solve and feedback is forwarded to as xAPI statements; unset: off.",
    ),
    PluginSetting(
        "xapi_lrs_auth",
        Optional[str],
        None,
        "'user:password' (Basic) or a full Authorization header value for that LRS.",
    ),
    PluginSetting("xapi_activity_base", Optional[str], None, "IRI base of solve activities; unset: public_url."),
    PluginSetting(
        "xapi_homepages",
        str,
        "",
        "'platform=https://lms.example,...': the account homePage under "
        "which each platform's learner pseudonyms go to the LRS.",
    ),
]


@hookimpl
def trm_declare_settings() -> list[PluginSetting]:
    """The forwarder's settings (``TRM_XAPI_LRS_URL``, ``TRM_XAPI_LRS_AUTH``, ``TRM_XAPI_ACTIVITY_BASE``,
    ``TRM_XAPI_HOMEPAGES``)."""
    return SETTINGS


@hookimpl
def trm_privacy_providers() -> list[Any]:
    """Statements about a learner waiting in (or refused from) the outbox."""
    from .xapi_outbox import OutboxPersonalData

    return [OutboxPersonalData()]


@hookimpl
def trm_store_schemas() -> list[PluginSchema]:
    """The outbox's table (``xapi_outbox.py``) and its migrations (schema ``xapi_outbox``)."""
    return [PluginSchema("xapi_outbox", outbox_metadata, Path(__file__).parent / "xapi_outbox_migrations")]


@hookimpl
def trm_startup(runtime: Any) -> None:
    """With ``TRM_XAPI_LRS_URL`` set, forward the server's solves and feedback to that LRS."""
    forwarder = XapiForwarder.from_settings(runtime.store, runtime.settings)
    if forwarder is not None:
        runtime.host.pm.register(forwarder, name=PLUGIN_NAME)
        log.info("forwarding xAPI statements to %s", forwarder.endpoint)


@hookimpl
def trm_shutdown(runtime: Any) -> None:
    """Stop the forwarder (its queue stays in the store)."""
    forwarder = runtime.host.pm.get_plugin(PLUGIN_NAME)
    if forwarder is not None:
        runtime.host.pm.unregister(forwarder)
        forwarder.close()
