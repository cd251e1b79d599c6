"""xAPI forwarding: every solve and feedback event goes to a Learning Record Store as a statement.

Registered through the ``trm_modules`` entry-point group (``xapi = "trm_adapters.xapi"``). It does
nothing until an LRS is configured:

- ``TRM_XAPI_LRS_URL``: the LRS endpoint (``https://lrs.example/xapi/``; statements go to ``…/statements``);
- ``TRM_XAPI_LRS_AUTH``: ``user:password`` (sent as Basic auth) or a full ``Authorization`` value;
- ``TRM_XAPI_OUTBOX``: the outbox file (default ``<user data dir>/xapi-outbox.jsonl``);
- ``TRM_XAPI_ACTIVITY_BASE``: the IRI base of solve activities (default ``TRM_PUBLIC_URL``, else
  ``http://localhost:8000``), which should be the public URL of ``trm serve``.

Nothing is lost when the LRS is down: each statement is appended to the outbox file (fsync'd)
before anything is sent; a sender thread posts the outbox in batches and removes a batch only
once the LRS accepted it, retrying with exponential back-off otherwise. Statement ids are fixed
by the solve / feedback ids, so a batch sent twice (a crash between send and removal) is stored
once by the LRS. A batch the LRS refuses as invalid (400, 409) moves to ``<outbox>.rejected.jsonl``.
Feedback that itself came from an LRS (``source == "xapi"``) is not sent back.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from trm_modules import hookimpl
from trm_modules.records import FeedbackEvent, SolveRecord

from .xapi_statements import statement_for_feedback, statement_for_solve

log = logging.getLogger("trm_adapters.xapi")

LRS_URL_ENV = "TRM_XAPI_LRS_URL"
LRS_AUTH_ENV = "TRM_XAPI_LRS_AUTH"
OUTBOX_ENV = "TRM_XAPI_OUTBOX"
ACTIVITY_BASE_ENV = "TRM_XAPI_ACTIVITY_BASE"
PUBLIC_URL_ENV = "TRM_PUBLIC_URL"
XAPI_VERSION = "1.0.3"


def authorization_header(auth: str | None) -> str | None:
    """``user:password`` → a Basic header value; a value with a scheme (``Basic …``, ``Bearer …``) is kept."""
    if not auth:
        return None
    if " " in auth.strip():
        return auth.strip()
    return "Basic " + base64.b64encode(auth.encode()).decode()


def default_outbox_path() -> Path:
    """``<user data dir>/xapi-outbox.jsonl``."""
    return Path(platformdirs.user_data_dir("trm-modules", appauthor=False)) / "xapi-outbox.jsonl"


class XapiForwarder:
    """Sends solves and feedback to an LRS through a durable outbox file; register it as a plugin.

    ``endpoint``: the LRS's xAPI base URL. ``activity_base``: IRI base of solve activities.
    ``retry_initial_s`` / ``retry_max_s``: back-off after a failed send. ``client``: an
    ``httpx.Client`` to use (tests); one is made otherwise.
    """

    def __init__(self, endpoint: str, *, outbox: str | os.PathLike[str] | None = None, auth: str | None = None,
                 activity_base: str = "http://localhost:8000", batch_size: int = 50, timeout_s: float = 10.0,
                 retry_initial_s: float = 1.0, retry_max_s: float = 60.0, fsync: bool = True,
                 client: httpx.Client | None = None) -> None:
        self.endpoint = endpoint.rstrip("/") + "/"
        self.outbox = Path(outbox) if outbox is not None else default_outbox_path()
        self.rejected = self.outbox.with_name(self.outbox.name.removesuffix(".jsonl") + ".rejected.jsonl")
        self.activity_base = activity_base
        self.batch_size = batch_size
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.fsync = fsync
        self.sent = 0
        self.failures = 0
        headers = {"X-Experience-API-Version": XAPI_VERSION, "Content-Type": "application/json"}
        authorization = authorization_header(auth)
        if authorization:
            headers["Authorization"] = authorization
        self._headers = headers
        self._client = client or httpx.Client(timeout=timeout_s)
        self._file_lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._closed = False
        self.outbox.parent.mkdir(parents=True, exist_ok=True)
        self._sender = threading.Thread(target=self._run, name="trm-xapi-forwarder", daemon=True)
        self._sender.start()
        if self.pending():
            self._wake.set()

    @classmethod
    def from_environment(cls) -> "XapiForwarder | None":
        """A forwarder configured by the ``TRM_XAPI_*`` variables, or None when no LRS URL is set."""
        endpoint = os.environ.get(LRS_URL_ENV)
        if not endpoint:
            return None
        base = os.environ.get(ACTIVITY_BASE_ENV) or os.environ.get(PUBLIC_URL_ENV) or "http://localhost:8000"
        return cls(endpoint, outbox=os.environ.get(OUTBOX_ENV) or None, auth=os.environ.get(LRS_AUTH_ENV),
                   activity_base=base)

    # -- observing -------------------------------------------------------------------------------
    @hookimpl
    def trm_on_solve(self, record: SolveRecord) -> None:
        """Queue the solve's statement in the outbox."""
        self.enqueue(statement_for_solve(record, self.activity_base))

    @hookimpl
    def trm_on_feedback(self, event: FeedbackEvent) -> None:
        """Queue the feedback's statement, unless the feedback came from an LRS."""
        if event.source != "xapi":
            self.enqueue(statement_for_feedback(event, self.activity_base))

    def enqueue(self, statement: dict[str, Any]) -> None:
        """Append ``statement`` to the outbox (durably) and wake the sender."""
        line = json.dumps(statement, separators=(",", ":")) + "\n"
        with self._file_lock, open(self.outbox, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        self._wake.set()

    def pending(self) -> int:
        """Statements in the outbox, not yet accepted by the LRS."""
        with self._file_lock:
            return len(self._read_lines())

    # -- sending ---------------------------------------------------------------------------------
    def _read_lines(self) -> list[str]:
        try:
            return [line for line in self.outbox.read_text("utf-8").splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def _drop_first(self, count: int, reject: bool) -> None:
        with self._file_lock:
            lines = self._read_lines()
            if reject:
                with open(self.rejected, "a", encoding="utf-8") as fh:
                    fh.write("".join(line + "\n" for line in lines[:count]))
            fd, tmp = tempfile.mkstemp(prefix=".xapi-outbox-", dir=self.outbox.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in lines[count:]))
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, self.outbox)

    def send_pending(self) -> bool:
        """Post the outbox batch by batch until it is empty (True) or a send fails (False)."""
        while True:
            with self._file_lock:
                lines = self._read_lines()[: self.batch_size]
            if not lines:
                return True
            body = "[" + ",".join(lines) + "]"
            try:
                response = self._client.post(self.endpoint + "statements", content=body, headers=self._headers)
            except httpx.HTTPError as exc:
                log.warning("the LRS at %s is unreachable (%s); %d statements wait in %s",
                            self.endpoint, exc, len(lines), self.outbox)
                return False
            if response.status_code in (200, 204):
                self._drop_first(len(lines), reject=False)
                self.sent += len(lines)
            elif response.status_code in (400, 409):
                log.error("the LRS refused %d statements (%d %s); moved to %s", len(lines), response.status_code,
                          response.text[:300], self.rejected)
                self._drop_first(len(lines), reject=True)
            else:
                log.warning("the LRS answered %d; %d statements stay in %s", response.status_code, len(lines),
                            self.outbox)
                return False

    def _run(self) -> None:
        delay = 0.0
        while not self._closed:
            self._wake.wait(timeout=delay or None)
            self._wake.clear()
            if self._closed:
                break
            if self.send_pending():
                delay = 0.0
            else:
                self.failures += 1
                delay = min(self.retry_max_s, max(self.retry_initial_s, delay * 2))
                self._wake.clear()
            with self._idle:
                self._idle.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Try to send the outbox now; True once it is empty, False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            self._wake.set()
            with self._idle:
                self._idle.wait(timeout=min(0.2, max(0.0, deadline - time.monotonic())))
        return True

    def close(self) -> None:
        """Stop the sender; what is still in the outbox is sent by the next forwarder on this file."""
        self._closed = True
        self._wake.set()
        self._sender.join(timeout=5)
        self._client.close()


_default: XapiForwarder | None = None
_default_lock = threading.Lock()
_default_resolved = False


def default_forwarder() -> XapiForwarder | None:
    """The process's forwarder from the environment (made on first use), or None when no LRS is configured."""
    global _default, _default_resolved
    if not _default_resolved:
        with _default_lock:
            if not _default_resolved:
                _default = XapiForwarder.from_environment()
                _default_resolved = True
    return _default


@hookimpl
def trm_on_solve(record: SolveRecord) -> None:
    """Forward the solve to the configured LRS (no-op without ``TRM_XAPI_LRS_URL``)."""
    forwarder = default_forwarder()
    if forwarder is not None:
        forwarder.trm_on_solve(record)


@hookimpl
def trm_on_feedback(event: FeedbackEvent) -> None:
    """Forward the feedback to the configured LRS (no-op without ``TRM_XAPI_LRS_URL``)."""
    forwarder = default_forwarder()
    if forwarder is not None:
        forwarder.trm_on_feedback(event)
