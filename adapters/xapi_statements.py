"""xAPI statements (1.0.3) for solves and feedback, in both directions.

Out: ``statement_for_solve`` and ``statement_for_feedback`` describe host events for an LRS.
In: ``feedback_from_statement`` reads the feedback a statement about a solve gives (the LRS,
``trm_adapters.lrs``, validates statements and decides which ones are feedback at all).

The vocabulary, fixed here:

- a solve is the activity ``{base}/v1/solves/{solve_id}``; any IRI whose path ends in
  ``/solves/{solve_id}`` names that solve when it comes back in;
- a solve goes out as *learner* ``asked`` *solve*: the learner as the platform identifies them
  (the context's xAPI ``actor``, else the learner pseudonym under the platform's account
  ``homePage``; an anonymous solve is an agent of its own), the module's answer in
  ``result.response`` (JSON text), ``result.duration`` the time it took, the module's own rule
  check in the context extension ``EXT_VERDICT`` (not ``result.success``: the learner did not
  answer), ``context.registration`` (the platform's, else one per learner and activity), steps /
  confidence / version / digest in extensions; the module is the parent activity, the course the
  grouping activity;
- feedback goes out as ``responded`` *solve*, referring to the solve's statement:
  ``correct``/``incorrect`` → ``result.success``; ``rating`` → ``result.score.scaled``;
  ``correction`` → ``result.response`` holding the corrected answer as a JSON object; ``comment`` →
  ``result.response`` text; a ``void`` is an ADL ``voided`` statement naming the voided feedback statement;
- every statement a server emits carries the context extension ``EXT_EMITTED_BY``.

Coming in, only the ``FEEDBACK_VERBS`` (``responded``, ``commented``) about a solve count, read the
same way: a JSON-object ``result.response`` is a correction, else ``result.success`` is
correct/incorrect, else ``result.score.scaled`` is a rating, else a text response is a comment.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import quote

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
#: Context extension: the module's own rule check of its answer (true / false), not the learner's result.
EXT_VERDICT = EXTENSION_BASE + "answer-valid"
#: Namespace of the statement ids derived from solve / feedback ids that are not UUIDs themselves.
STATEMENT_NAMESPACE = uuid.UUID("0f1f5a52-52b4-4b38-9b0e-6f3a1d6c2f4e")
SOLVE_IRI_PATTERN = re.compile(r"/solves/([^/?#]+)/?$")


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
    return (
        value if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", value) else f"{base.rstrip('/')}/{kind}/{quote(value, safe='')}"
    )


@dataclass(frozen=True)
class StatementNaming:
    """How outbound statements name things. ``base``: the server's public URL (solve and module IRIs);
    ``homepages``: each platform's account ``homePage`` (``{"moodle": "https://moodle.school.example"}``),
    under which the platform's learner pseudonyms are the account names its LRS already knows."""

    base: str
    homepages: Mapping[str, str] = field(default_factory=dict)

    def homepage(self, platform: str | None) -> str:
        """The account homePage of ``platform``'s learners: configured, else the platform if it is a URL,
        else a page of this server naming the platform (an LRS can still tell platforms apart)."""
        if platform and platform in self.homepages:
            return self.homepages[platform]
        if platform and re.match(r"^https?://", platform):
            return platform
        return f"{self.base.rstrip('/')}/platforms/{quote(platform or 'default', safe='')}"


def _naming(naming: "StatementNaming | str") -> StatementNaming:
    return naming if isinstance(naming, StatementNaming) else StatementNaming(naming)


def learner_agent(context: Any, solve_id: str, naming: StatementNaming) -> dict[str, Any]:
    """The learner of a solve as the platform identifies them: the context's xAPI actor, else its learner
    pseudonym under the platform's homePage; an anonymous solve is an agent of its own (never shared)."""
    if context.actor:
        return {"objectType": "Agent", **context.actor}
    if context.learner:
        return {
            "objectType": "Agent",
            "account": {"homePage": naming.homepage(context.platform), "name": context.learner},
        }
    return {
        "objectType": "Agent",
        "account": {"homePage": f"{naming.base.rstrip('/')}/anonymous", "name": f"solve-{solve_id}"},
    }


def registration_of(record: SolveRecord) -> str:
    """The solve's xAPI registration: the one the platform passed, else one per (platform, course,
    activity, learner) (an anonymous solve: one per solve)."""
    context = record.context
    if context.registration:
        return str(uuid.UUID(context.registration))
    who = json.dumps(context.actor, sort_keys=True) if context.actor else context.learner
    key = f"{context.platform}|{context.course}|{context.activity}|{who}" if who else f"solve:{record.id}"
    return str(uuid.uuid5(STATEMENT_NAMESPACE, "registration:" + key))


def iso_duration(milliseconds: float) -> str:
    """``PT0.012S``: an ISO 8601 duration (xAPI ``result.duration``)."""
    return f"PT{max(milliseconds, 0.0) / 1000:.3f}S"


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def statement_for_solve(record: SolveRecord, naming: "StatementNaming | str") -> dict[str, Any]:
    """The xAPI statement telling an LRS that ``record``'s learner asked a module for a solution.

    The module's own rule check of its answer is a context extension (``EXT_VERDICT``), not the
    learner's ``result.success``: the learner did not answer, the module did.
    """
    naming = _naming(naming)
    base = naming.base.rstrip("/")
    context = record.context
    result: dict[str, Any] = {
        "response": json.dumps(record.output, separators=(",", ":")) if record.output is not None else "",
        "duration": iso_duration(record.latency_ms),
        "extensions": {EXT_STEPS: record.steps, EXT_CONFIDENCE: record.confidence, EXT_LATENCY_MS: record.latency_ms},
    }
    extensions: dict[str, Any] = {
        EXT_MODULE: record.module,
        EXT_VERSION: record.version,
        EXT_DIGEST: record.digest,
        EXT_EMITTED_BY: base,
    }
    if record.valid is not None:
        extensions[EXT_VERDICT] = record.valid
    xapi_context: dict[str, Any] = {
        "registration": registration_of(record),
        "contextActivities": {
            "parent": [
                {
                    "objectType": "Activity",
                    "id": f"{base}/v1/modules/{quote(record.module, safe='')}",
                    "definition": {"type": ACTIVITY_TYPE_MODULE, "name": {"en-US": record.module}},
                }
            ]
        },
        "extensions": extensions,
    }
    if context.course:
        xapi_context["contextActivities"]["grouping"] = [
            {"objectType": "Activity", "id": _iri_or_under(base, "courses", context.course)}
        ]
    if context.activity:
        extensions[EXT_ACTIVITY] = context.activity
    if context.platform:
        xapi_context["platform"] = context.platform
    return {
        "id": statement_id_for("solve", record.id),
        "actor": learner_agent(context, record.id, naming),
        "verb": {"id": VERB_ASKED, "display": {"en-US": "asked"}},
        "object": {
            "objectType": "Activity",
            "id": solve_activity_iri(base, record.id),
            "definition": {
                "type": ACTIVITY_TYPE_INTERACTION,
                "name": {"en-US": f"{record.module} solve"},
                "extensions": {EXT_INPUT: record.input},
            },
        },
        "result": result,
        "context": xapi_context,
        "timestamp": _timestamp(record.created_at),
    }


def statement_for_feedback(event: FeedbackEvent, naming: "StatementNaming | str") -> dict[str, Any]:
    """The xAPI statement of one feedback event (a ``voided`` statement for a retraction).

    It refers to the solve's ``asked`` statement (``context.statement``) and carries ``EXT_EMITTED_BY``.
    """
    naming = _naming(naming)
    base = naming.base.rstrip("/")
    who = event.actor or f"feedback-{event.id}"
    statement: dict[str, Any] = {
        "id": statement_id_for("feedback", event.id),
        "actor": {"objectType": "Agent", "account": {"homePage": naming.homepage(None), "name": who}},
        "timestamp": _timestamp(event.created_at),
        "context": {"extensions": {EXT_EMITTED_BY: base}},
    }
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
    statement["context"]["statement"] = {"objectType": "StatementRef", "id": statement_id_for("solve", event.solve_id)}
    return statement


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
    score: dict[str, Any] = result["score"] if isinstance(result.get("score"), dict) else {}
    scaled = score.get("scaled")
    response = result.get("response")
    correction = None
    if isinstance(response, str) and response.strip().startswith("{"):
        try:
            parsed = json.loads(response)
            correction = parsed if isinstance(parsed, dict) else None
        except ValueError:
            correction = None
    common = {
        "id": statement["id"],
        "solve_id": solve_id,
        "source": "xapi",
        "actor": actor_pseudonym(statement.get("actor", {})),
    }
    if correction is not None:
        return FeedbackEvent(kind="correction", corrected_output=correction, value=scaled, **common)
    if isinstance(result.get("success"), bool):
        return FeedbackEvent(kind="correct" if result["success"] else "incorrect", value=scaled, **common)
    if scaled is not None:
        return FeedbackEvent(kind="rating", value=float(scaled), **common)
    if isinstance(response, str) and response:
        return FeedbackEvent(kind="comment", value=response, **common)
    return None
