"""Which stored statements are a learner's own result, kept in the store as learner outcomes.

The SCORM and cmi5 activities report the learner's result on the activity with ADL's ``passed``,
``failed`` or ``scored`` verbs (cmi5: ``passed``/``failed`` with the score of the learner's own
cells). When such a statement reaches this LRS and was not written by a trm-modules server, it
becomes an ``OutcomeRecord`` (``source="xapi"``), idempotent by the statement's id:

- learner: the actor's pseudonym, as for feedback (``actor_pseudonym``: the account name, else a
  hash of the mailbox or OpenID, never the raw address);
- course: the course whose activity IRI (``{public URL}/courses/{C}``, what this server's own
  statements carry as their grouping) is among the statement's context activities; none otherwise;
- activity: the statement's object (the activity or AU);
- score: ``result.score.raw`` over ``max`` (less ``min``) when given, else ``scaled``; success:
  ``passed`` is true, ``failed`` false, ``scored`` what ``result.success`` says;
- solves: the solves whose activity IRIs (``…/v1/solves/{id}``) are among the context activities.

A statement with no usable score or success (or a raw score beyond what an outcome holds) stays
stored in the LRS and gives no outcome.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import unquote

from trm_modules.records import OutcomeRecord

from ..xapi_statements import EXT_EMITTED_BY, actor_pseudonym, solve_id_from_iri

VERB_PASSED = "http://adlnet.gov/expapi/verbs/passed"
VERB_FAILED = "http://adlnet.gov/expapi/verbs/failed"
VERB_SCORED = "http://adlnet.gov/expapi/verbs/scored"
OUTCOME_VERBS = frozenset({VERB_PASSED, VERB_FAILED, VERB_SCORED})
#: The context activity lists searched for the course, in this order.
CONTEXT_LISTS = ("grouping", "parent", "category", "other")


def _context_activity_ids(statement: dict[str, Any]) -> list[str]:
    activities = (statement.get("context") or {}).get("contextActivities") or {}
    ids = []
    for name in CONTEXT_LISTS:
        entries = activities.get(name) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                ids.append(entry["id"])
    return ids


def course_of(statement: dict[str, Any], base: str) -> str | None:
    """The course named by a ``{base}/courses/{C}`` context activity, else None."""
    prefix = base.rstrip("/") + "/courses/"
    for iri in _context_activity_ids(statement):
        if iri.startswith(prefix) and len(iri) > len(prefix) and "/" not in iri[len(prefix) :]:
            return unquote(iri[len(prefix) :])
    return None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _score(result: dict[str, Any]) -> tuple[float | None, float | None]:
    score: dict[str, Any] = result["score"] if isinstance(result.get("score"), dict) else {}
    raw, low, high = _finite(score.get("raw")), _finite(score.get("min")), _finite(score.get("max"))
    if raw is not None and high is not None:
        floor = low if low is not None else 0.0
        if high > floor:
            return raw - floor, high - floor
    return _finite(score.get("scaled")), None


def outcome_of(statement: dict[str, Any], base: str) -> OutcomeRecord | None:
    """The learner outcome a stored statement reports (see the module docstring), or None."""
    verb = (statement.get("verb") or {}).get("id")
    if verb not in OUTCOME_VERBS or EXT_EMITTED_BY in ((statement.get("context") or {}).get("extensions") or {}):
        return None  # a trm-modules server's own statement, sent back
    target = statement.get("object") or {}
    if target.get("objectType", "Activity") != "Activity" or not isinstance(target.get("id"), str):
        return None
    learner = actor_pseudonym(statement.get("actor") or {})
    if not learner:
        return None
    result: dict[str, Any] = statement["result"] if isinstance(statement.get("result"), dict) else {}
    success = {VERB_PASSED: True, VERB_FAILED: False}.get(verb)
    if success is None and isinstance(result.get("success"), bool):
        success = result["success"]
    score, max_score = _score(result)
    solve_ids = [s for s in (solve_id_from_iri(iri) for iri in _context_activity_ids(statement)) if s]
    try:
        return OutcomeRecord(
            id=str(statement["id"]).lower(),
            learner=learner,
            course=course_of(statement, base),
            activity=target["id"][:200],
            score=score,
            max_score=max_score,
            success=success,
            solve_ids=list(dict.fromkeys(solve_ids)),
            source="xapi",
        )
    except ValueError:  # nothing usable (no score nor success), or a score an outcome cannot hold
        return None
