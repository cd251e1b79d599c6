"""xAPI statements (1.0.3 / 2.0) for solves and feedback, in both directions.

Out: ``statement_for_solve`` and ``statement_for_feedback`` describe host events for an LRS.
In: ``check_statement`` applies an LRS's checks to a statement posted to us, and
``feedback_from_statement`` turns a statement about a solve into a ``FeedbackEvent``.

The vocabulary, fixed here:

- a solve is the activity ``{base}/v1/solves/{solve_id}``; any IRI whose path ends in
  ``/solves/{solve_id}`` names that solve when it comes back in;
- a solve goes out as *learner* ``asked`` *solve*, the module's answer in ``result.response``
  (JSON text), its rule check in ``result.success``, steps / confidence / version / digest in
  extensions; the module is the parent activity, the course the grouping activity;
- feedback goes out as *learner* ``responded`` *solve*: ``correct``/``incorrect`` →
  ``result.success``; ``rating`` → ``result.score.scaled``; ``correction`` → ``result.response``
  holding the corrected answer as a JSON object; ``comment`` → ``result.response`` text;
  a ``void`` is an ADL ``voided`` statement naming the voided feedback statement.

Coming in, any verb with a solve as object counts, read the same way: a JSON-object
``result.response`` is a correction, else ``result.success`` is correct/incorrect, else
``result.score.scaled`` is a rating, else a text response is a comment.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from trm_modules.errors import TRMError
from trm_modules.records import FeedbackEvent, SolveRecord

VERB_ASKED = "http://adlnet.gov/expapi/verbs/asked"
VERB_RESPONDED = "http://adlnet.gov/expapi/verbs/responded"
VERB_VOIDED = "http://adlnet.gov/expapi/verbs/voided"
VERB_COMMENTED = "http://adlnet.gov/expapi/verbs/commented"
#: The verbs whose statements about a solve are feedback on it (anything else about a solve is not).
FEEDBACK_VERBS = (VERB_RESPONDED, VERB_COMMENTED)
ACTIVITY_TYPE_INTERACTION = "http://adlnet.gov/expapi/activities/interaction"
ACTIVITY_TYPE_MODULE = "http://adlnet.gov/expapi/activities/module"
EXTENSION_BASE = "tag:trm-modules,2025:xapi/"
EXT_INPUT = EXTENSION_BASE + "input"
EXT_STEPS = EXTENSION_BASE + "steps"
EXT_CONFIDENCE = EXTENSION_BASE + "confidence"
EXT_LATENCY_MS = EXTENSION_BASE + "latency-ms"
EXT_MODULE = EXTENSION_BASE + "module"
EXT_VERSION = EXTENSION_BASE + "version"
EXT_DIGEST = EXTENSION_BASE + "digest"
EXT_ACTIVITY = EXTENSION_BASE + "activity"
EXT_FEEDBACK_KIND = EXTENSION_BASE + "feedback-kind"
#: Context extension on every statement a trm-modules server emits (value: the server's base IRI);
#: such statements never become feedback when an LRS sends them back.
EXT_EMITTED_BY = EXTENSION_BASE + "emitted-by"
#: Namespace of the statement ids derived from solve / feedback ids that are not UUIDs themselves.
STATEMENT_NAMESPACE = uuid.UUID("0f1f5a52-52b4-4b38-9b0e-6f3a1d6c2f4e")
SUPPORTED_VERSIONS = ("1.0", "2.0")
SOLVE_IRI_PATTERN = re.compile(r"/solves/([^/?#]+)/?$")


class XapiStatementError(TRMError, ValueError):
    """A statement posted to us is not valid xAPI; ``pointer`` locates the problem in the request body."""

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.pointer = pointer


def check_version_header(value: str | None) -> str:
    """The ``X-Experience-API-Version`` a client sent, if we speak it (1.0.x or 2.0.x)."""
    if not value:
        raise XapiStatementError("the X-Experience-API-Version header is required (e.g. 1.0.3 or 2.0.0)")
    if not value.strip().startswith(SUPPORTED_VERSIONS):
        raise XapiStatementError(f"xAPI version {value!r} is not supported; send 1.0.x or 2.0.x")
    return value.strip()


def solve_activity_iri(base: str, solve_id: str) -> str:
    """The activity IRI naming solve ``solve_id`` under ``base`` (the server's public URL)."""
    return f"{base.rstrip('/')}/v1/solves/{quote(solve_id, safe='')}"


def solve_id_from_iri(iri: str) -> str | None:
    """The solve id an activity IRI names (path ending ``/solves/{id}``), else None."""
    from urllib.parse import unquote

    match = SOLVE_IRI_PATTERN.search(iri)
    return unquote(match.group(1)) if match else None


def statement_id_for(kind: str, item_id: str) -> str:
    """The statement id of a solve or feedback event: its own id if that is a UUID, else a UUIDv5 of it."""
    try:
        return str(uuid.UUID(item_id))
    except ValueError:
        return str(uuid.uuid5(STATEMENT_NAMESPACE, f"{kind}:{item_id}"))


def _iri_or_under(base: str, kind: str, value: str) -> str:
    return value if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", value) else f"{base.rstrip('/')}/{kind}/{quote(value, safe='')}"


def _agent(base: str, pseudonym: str | None) -> dict[str, Any]:
    return {"objectType": "Agent", "account": {"homePage": base.rstrip("/"), "name": pseudonym or "anonymous"}}


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def statement_for_solve(record: SolveRecord, base: str) -> dict[str, Any]:
    """The xAPI statement telling an LRS that ``record``'s learner asked a module for a solution."""
    context = record.context
    result: dict[str, Any] = {
        "response": json.dumps(record.output, separators=(",", ":")) if record.output is not None else "",
        "extensions": {EXT_STEPS: record.steps, EXT_CONFIDENCE: record.confidence, EXT_LATENCY_MS: record.latency_ms},
    }
    if record.valid is not None:
        result["success"] = record.valid
    xapi_context: dict[str, Any] = {
        "contextActivities": {"parent": [{"objectType": "Activity", "id": f"{base.rstrip('/')}/v1/modules/{quote(record.module, safe='')}",
                                          "definition": {"type": ACTIVITY_TYPE_MODULE,
                                                         "name": {"en-US": record.module}}}]},
        "extensions": {EXT_MODULE: record.module, EXT_VERSION: record.version, EXT_DIGEST: record.digest},
    }
    if context.course:
        xapi_context["contextActivities"]["grouping"] = [{"objectType": "Activity",
                                                          "id": _iri_or_under(base, "courses", context.course)}]
    if context.activity:
        xapi_context["extensions"][EXT_ACTIVITY] = context.activity
    if context.platform:
        xapi_context["platform"] = context.platform
    return {
        "id": statement_id_for("solve", record.id),
        "actor": _agent(base, context.learner),
        "verb": {"id": VERB_ASKED, "display": {"en-US": "asked"}},
        "object": {"objectType": "Activity", "id": solve_activity_iri(base, record.id),
                   "definition": {"type": ACTIVITY_TYPE_INTERACTION, "name": {"en-US": f"{record.module} solve"},
                                  "extensions": {EXT_INPUT: record.input}}},
        "result": result,
        "context": xapi_context,
        "timestamp": _timestamp(record.created_at),
    }


def statement_for_feedback(event: FeedbackEvent, base: str) -> dict[str, Any]:
    """The xAPI statement of one feedback event (a ``voided`` statement for a retraction)."""
    statement: dict[str, Any] = {"id": statement_id_for("feedback", event.id), "actor": _agent(base, event.actor),
                                 "timestamp": _timestamp(event.created_at)}
    if event.kind == "void":
        statement["verb"] = {"id": VERB_VOIDED, "display": {"en-US": "voided"}}
        statement["object"] = {"objectType": "StatementRef", "id": statement_id_for("feedback", event.voids or "")}
        return statement
    result: dict[str, Any] = {"extensions": {EXT_FEEDBACK_KIND: event.kind}}
    if event.kind in ("correct", "incorrect"):
        result["success"] = event.kind == "correct"
    if event.kind == "correction":
        result["success"] = False
        result["response"] = json.dumps(event.corrected_output or {}, separators=(",", ":"))
    if event.kind == "comment" and event.value is not None:
        result["response"] = str(event.value)
    if isinstance(event.value, (int, float)) and not isinstance(event.value, bool) and -1.0 <= event.value <= 1.0:
        result["score"] = {"scaled": float(event.value)}
    statement["verb"] = {"id": VERB_RESPONDED, "display": {"en-US": "responded"}}
    statement["object"] = {"objectType": "Activity", "id": solve_activity_iri(base, event.solve_id)}
    statement["result"] = result
    return statement


def check_statement(statement: Any, pointer: str = "") -> dict[str, Any]:
    """An LRS's checks on one incoming statement; returns it with an ``id`` (assigned if absent).

    Raises ``XapiStatementError`` naming the offending part (``pointer`` prefixes its location).
    """
    if not isinstance(statement, dict):
        raise XapiStatementError("a statement must be a JSON object", pointer)
    for part in ("actor", "verb", "object"):
        if not isinstance(statement.get(part), dict):
            raise XapiStatementError(f"a statement needs an {part!r} object", f"{pointer}/{part}")
    if not isinstance(statement["verb"].get("id"), str) or ":" not in statement["verb"]["id"]:
        raise XapiStatementError("verb.id must be an IRI", f"{pointer}/verb/id")
    target = statement["object"]
    if target.get("objectType", "Activity") in ("Activity", "StatementRef") and not isinstance(target.get("id"), str):
        raise XapiStatementError("object.id must be a string (an IRI, or a statement id for a StatementRef)",
                                 f"{pointer}/object/id")
    checked = dict(statement)
    if "id" in checked:
        try:
            checked["id"] = str(uuid.UUID(str(checked["id"])))
        except ValueError:
            raise XapiStatementError(f"statement id {checked['id']!r} is not a UUID", f"{pointer}/id") from None
    else:
        checked["id"] = str(uuid.uuid4())
    result = checked.get("result")
    if result is not None and not isinstance(result, dict):
        raise XapiStatementError("result must be an object", f"{pointer}/result")
    scaled = (result or {}).get("score", {}).get("scaled") if isinstance((result or {}).get("score"), dict) else None
    if scaled is not None and (not isinstance(scaled, (int, float)) or isinstance(scaled, bool) or not -1 <= scaled <= 1):
        raise XapiStatementError("result.score.scaled must be a number within [-1, 1]", f"{pointer}/result/score/scaled")
    return checked


def actor_pseudonym(actor: dict[str, Any]) -> str | None:
    """A pseudonym for an xAPI actor: the account name, else a hash of its mailbox / OpenID (never the raw address)."""
    account = actor.get("account")
    if isinstance(account, dict) and account.get("name"):
        return str(account["name"])
    if actor.get("mbox_sha1sum"):
        return "sha1:" + str(actor["mbox_sha1sum"])
    if actor.get("mbox"):
        return "sha1:" + hashlib.sha1(str(actor["mbox"]).encode()).hexdigest()
    if actor.get("openid"):
        return "sha256:" + hashlib.sha256(str(actor["openid"]).encode()).hexdigest()
    return None


def voided_statement_id(statement: dict[str, Any]) -> str | None:
    """The id of the statement a ``voided`` statement retracts, else None."""
    target = statement.get("object", {})
    if statement.get("verb", {}).get("id") == VERB_VOIDED and target.get("objectType") == "StatementRef":
        return str(target.get("id"))
    return None


def feedback_from_statement(statement: dict[str, Any]) -> FeedbackEvent | None:
    """The feedback a checked statement gives on a solve (id = the statement id), or None if it gives none."""
    target = statement.get("object", {})
    if target.get("objectType", "Activity") != "Activity" or not isinstance(target.get("id"), str):
        return None
    solve_id = solve_id_from_iri(target["id"])
    if solve_id is None:
        return None
    result = statement.get("result") or {}
    score = result.get("score") if isinstance(result.get("score"), dict) else {}
    scaled = score.get("scaled")
    response = result.get("response")
    correction = None
    if isinstance(response, str) and response.strip().startswith("{"):
        try:
            parsed = json.loads(response)
            correction = parsed if isinstance(parsed, dict) else None
        except ValueError:
            correction = None
    common = {"id": statement["id"], "solve_id": solve_id, "source": "xapi",
              "actor": actor_pseudonym(statement.get("actor", {}))}
    if correction is not None:
        return FeedbackEvent(kind="correction", corrected_output=correction, value=scaled, **common)
    if isinstance(result.get("success"), bool):
        return FeedbackEvent(kind="correct" if result["success"] else "incorrect", value=scaled, **common)
    if scaled is not None:
        return FeedbackEvent(kind="rating", value=float(scaled), **common)
    if isinstance(response, str) and response:
        return FeedbackEvent(kind="comment", value=response, **common)
    return None
