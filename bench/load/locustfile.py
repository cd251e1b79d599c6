"""Mixed traffic of a course platform against ``trm serve`` (locust users), for ``bench/load/run.py``.

Learners solve tasks of every served module (with a course and a pseudonym), then send feedback on their
solves and outcomes of their activities; an LMS writes xAPI statements and reads them back; an administrator
pins courses to versions and starts and stops canaries. Every id the server acknowledged (200/202) is kept in
``ACKED`` so that the run can look each one up in the database afterwards; every failure is counted by its
class in ``ERRORS`` (``"<what> <status> <problem type>"`` or ``"<what> <exception class>"``).

``configure(token, modules)`` must be called before the users start. Also usable with the ``locust`` command
(``locust -f bench/load/locustfile.py --host URL``) given ``TRM_LOAD_TOKEN``; then the modules and their inputs
come from ``GET /v1/modules`` and the registry folder ``TRM_LOAD_REGISTRY`` (default: the repository's).
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from locust import HttpUser, between, events, task

#: Courses learners come from; the administrator pins them to versions.
COURSES = ("algebra-1", "geometry", "logic-101")
XAPI_HEADERS = {"X-Experience-API-Version": "1.0.3"}


@dataclass
class Module:
    """A served module: its versions (for pins and canaries) and task inputs to send."""

    name: str
    versions: list[str]
    inputs: list[dict[str, Any]]


@dataclass
class Traffic:
    """What the users share: the token, the modules, and what was acknowledged or failed."""

    token: str = ""
    modules: list[Module] = field(default_factory=list)
    acked: dict[str, set[str]] = field(
        default_factory=lambda: {k: set() for k in ("solve", "feedback", "outcome", "statement")}
    )
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, kind: str, ident: str) -> None:
        with self.lock:
            self.acked[kind].add(ident)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1


TRAFFIC = Traffic()


def configure(token: str, modules: list[Module]) -> Traffic:
    """Set the token and modules every user uses; returns the shared ``Traffic`` (acknowledged ids, errors)."""
    TRAFFIC.token, TRAFFIC.modules = token, modules
    return TRAFFIC


def _problem_class(what: str, response: Any) -> str:
    kind = ""
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("type"), str):
            kind = " " + body["type"].rsplit("/", 1)[-1]
    except ValueError:
        pass
    return f"{what} {response.status_code}{kind}"


class _Client(HttpUser):
    abstract = True

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {TRAFFIC.token}"

    def _send(self, what: str, method: str, path: str, ok: tuple[int, ...], **kwargs: Any) -> Any:
        """The response when its status is in ``ok``, else None (the failure counted by its class)."""
        try:
            with self.client.request(method, path, name=what, catch_response=True, timeout=120, **kwargs) as response:
                if response.status_code in ok:
                    response.success()
                    return response
                error = (
                    f"{what} {type(response.error).__name__}"
                    if response.status_code == 0
                    else _problem_class(what, response)
                )
                response.failure(error)
                TRAFFIC.error(error)
        except Exception as exc:  # noqa: BLE001 - a client-side failure is a class of error like any other
            TRAFFIC.error(f"{what} {type(exc).__name__}")
        return None


class Learner(_Client):
    """Solves, then feedback on own solves and outcomes of activities."""

    weight = 6
    wait_time = between(0.05, 0.3)

    def on_start(self) -> None:
        super().on_start()
        self.learner = f"learner-{uuid.uuid4().hex[:8]}"
        self.course = random.choice(COURSES)
        self.solves: deque[str] = deque(maxlen=20)

    @task(6)
    def solve(self) -> None:
        module = random.choice(TRAFFIC.modules)
        solve_id = str(uuid.uuid4())
        body = {
            "input": random.choice(module.inputs),
            "client_id": solve_id,
            "context": {
                "platform": "lms.example.org",
                "course": self.course,
                "activity": module.name,
                "learner": self.learner,
            },
        }
        if self._send("solve", "POST", f"/v1/modules/{module.name}/solve", (200,), json=body) is not None:
            TRAFFIC.ack("solve", solve_id)
            self.solves.append(solve_id)

    @task(3)
    def feedback(self) -> None:
        if not self.solves:
            return
        event_id = str(uuid.uuid4())
        body = {
            "id": event_id,
            "solve_id": random.choice(self.solves),
            "actor": self.learner,
            **random.choice([{"kind": "correct"}, {"kind": "incorrect"}, {"kind": "rating", "value": 0.5}]),
        }
        if self._send("feedback", "POST", "/v1/feedback", (200, 202), json=body) is not None:
            TRAFFIC.ack("feedback", event_id)

    @task(1)
    def outcome(self) -> None:
        outcome_id = f"quiz/{self.learner}/{uuid.uuid4().hex[:12]}"
        body = {
            "id": outcome_id,
            "learner": self.learner,
            "course": self.course,
            "activity": "quiz",
            "score": random.randint(0, 10),
            "max_score": 10,
            "success": random.random() < 0.6,
            "solve_ids": list(self.solves)[-3:],
        }
        if self._send("outcome", "POST", "/v1/outcomes", (200, 202), json=body) is not None:
            TRAFFIC.ack("outcome", outcome_id)


class Platform(_Client):
    """An LMS writing xAPI statements and reading them back (by id and as a page)."""

    weight = 2
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        super().on_start()
        self.written: deque[str] = deque(maxlen=50)

    @task(2)
    def write(self) -> None:
        statement_id = str(uuid.uuid4())
        statement = {
            "id": statement_id,
            "actor": {"account": {"homePage": "https://lms.example.org", "name": f"u-{random.randint(1, 500)}"}},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
            "object": {"id": f"https://lms.example.org/activities/quiz-{random.randint(1, 20)}"},
            "result": {"success": random.random() < 0.5},
        }
        if (
            self._send("xapi write", "POST", "/xapi/statements", (200,), json=[statement], headers=XAPI_HEADERS)
            is not None
        ):
            TRAFFIC.ack("statement", statement_id)
            self.written.append(statement_id)

    @task(1)
    def read(self) -> None:
        if self.written and random.random() < 0.5:
            # A statement this LRS acknowledged must be readable (from any replica).
            self._send(
                "xapi read",
                "GET",
                "/xapi/statements",
                (200,),
                headers=XAPI_HEADERS,
                params={"statementId": random.choice(self.written)},
            )
        else:
            self._send("xapi read", "GET", "/xapi/statements", (200,), headers=XAPI_HEADERS, params={"limit": 10})


class Administrator(_Client):
    """Pins a course to a version of a module, unpins, starts and stops canaries (every few seconds)."""

    fixed_count = 1
    wait_time = between(2.0, 5.0)

    @task(2)
    def pin(self) -> None:
        module = random.choice(TRAFFIC.modules)
        course = random.choice(COURSES)
        if random.random() < 0.3:
            self._send("admin unpin", "DELETE", f"/v1/admin/modules/{module.name}/pins/{course}", (200,))
        else:
            self._send(
                "admin pin",
                "PUT",
                f"/v1/admin/modules/{module.name}/pins/{course}",
                (200,),
                json={"version": random.choice(module.versions)},
            )

    @task(1)
    def canary(self) -> None:
        candidates = [m for m in TRAFFIC.modules if len(m.versions) > 1]
        if not candidates:
            return
        module = random.choice(candidates)
        body = {"version": random.choice(module.versions), "share": 0.2} if random.random() < 0.6 else {"share": 0}
        self._send("admin canary", "PUT", f"/v1/admin/modules/{module.name}/canary", (200,), json=body)


@events.init.add_listener
def _from_environment(environment: Any, **_: Any) -> None:
    """With the ``locust`` command: the token from TRM_LOAD_TOKEN, modules from the server and the registry."""
    if TRAFFIC.modules or not os.environ.get("TRM_LOAD_TOKEN") or not environment.host:
        return
    import httpx

    from inputs import served_modules  # bench/load/inputs.py, beside this file

    token = os.environ["TRM_LOAD_TOKEN"]
    listed = httpx.get(f"{environment.host}/v1/modules", headers={"Authorization": f"Bearer {token}"}).json()
    configure(token, served_modules(listed, os.environ.get("TRM_LOAD_REGISTRY")))
