"""The xAPI data model (1.0.3, and the 2.0 additions an LRS must accept): checks for every part of a statement.

``check_statement`` raises ``StatementInvalid`` with a message saying what was wrong and a JSON
pointer saying where. It never changes the statement; ``prepare_statement`` (statements.py) adds
what the LRS sets. The rules are the specification's MUSTs for an LRS: unknown properties, ``null``
values (outside extensions), an Agent with zero or several identifiers, an mbox that is not
``mailto:``, a malformed UUID, timestamp, duration, language tag or IRI, a score out of range, a
SubStatement inside a SubStatement, a ``voided`` statement whose object is not a StatementRef.

Checks are hand-written: the Python xAPI model libraries (``tincan``, ``ralph-malph``'s pydantic
models) accept several of these faults or refuse statements the specification allows, and the
ADL conformance suite is the yardstick here.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, NoReturn
from urllib.parse import urlsplit

from .errors import StatementInvalid

VERB_VOIDED = "http://adlnet.gov/expapi/verbs/voided"
SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"

UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SHA1_PATTERN = re.compile(r"^[0-9a-fA-F]{40}$")
SCHEME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
EMAIL_PATTERN = re.compile(r"^[^@\s:/]+@[^@\s]+$")
# RFC 5646 language tag (well-formed, not registry-checked), including private-use and grandfathered forms.
LANGUAGE_TAG_PATTERN = re.compile(
    r"^(?:(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?|[xX](?:-[A-Za-z0-9]{1,8})+|[iI]-[A-Za-z]{2,8}|en-GB-oed|sgn-[A-Z]{2}-[A-Z]{2})$"
)
# ISO 8601 durations: PnYnMnDTnHnMnS (any part optional, fraction on the last) or PnW alone.
DURATION_PATTERN = re.compile(
    r"^P(?:(?!$)(?:\d+(?:\.\d+)?Y)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?D)?"
    r"(?:T(?=\d)(?:\d+(?:\.\d+)?H)?(?:\d+(?:\.\d+)?M)?(?:\d+(?:\.\d+)?S)?)?|\d+(?:\.\d+)?W)$"
)
TIMESTAMP_PATTERN = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
INTERACTION_TYPES = (
    "true-false",
    "choice",
    "fill-in",
    "long-fill-in",
    "matching",
    "performance",
    "sequencing",
    "likert",
    "numeric",
    "other",
)
COMPONENT_LISTS = {
    "choice": ("choices",),
    "sequencing": ("choices",),
    "likert": ("scale",),
    "matching": ("source", "target"),
    "performance": ("steps",),
}
CONTEXT_ACTIVITY_KEYS = ("parent", "grouping", "category", "other")
AGENT_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")

Checker = Callable[[Any, str], None]


def fail(message: str, pointer: str) -> NoReturn:
    raise StatementInvalid(message, pointer)


def _object(value: Any, pointer: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail(f"{what} must be a JSON object, not {_kind(value)}", pointer)
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _allowed(value: dict[str, Any], allowed: tuple[str, ...], pointer: str, what: str) -> None:
    for key, item in value.items():
        if key not in allowed:
            fail(f"{what} has no property {key!r} (allowed: {', '.join(allowed)})", f"{pointer}/{key}")
        if item is None:
            fail(f"{what}.{key} is null; leave a property out instead of setting it to null", f"{pointer}/{key}")


def _required(value: dict[str, Any], key: str, pointer: str, what: str) -> Any:
    if key not in value:
        fail(f"{what} needs the property {key!r}", f"{pointer}/{key}")
    return value[key]


def check_string(value: Any, pointer: str, what: str = "the value") -> str:
    if not isinstance(value, str):
        fail(f"{what} must be a string, not {_kind(value)}", pointer)
    return value


def check_iri(value: Any, pointer: str, what: str = "the value") -> str:
    """An absolute IRI: a scheme, then something; no spaces."""
    check_string(value, pointer, what)
    if not SCHEME_PATTERN.match(value) or any(c.isspace() for c in value) or len(value) <= len(value.split(":")[0]) + 1:
        fail(f"{what} must be an absolute IRI (scheme:…), not {value!r}", pointer)
    return value


def check_irl(value: Any, pointer: str, what: str = "the value") -> str:
    """An IRI that can be resolved: http(s) or another scheme with a host."""
    check_iri(value, pointer, what)
    parts = urlsplit(value)
    if not parts.netloc and parts.scheme not in ("urn", "mailto", "tag"):
        fail(f"{what} must be a resolvable IRL (e.g. https://host/path), not {value!r}", pointer)
    return value


def check_uuid(value: Any, pointer: str, what: str = "the value") -> str:
    check_string(value, pointer, what)
    if not UUID_PATTERN.match(value):
        fail(f"{what} must be a UUID in its hyphenated string form, not {value!r}", pointer)
    return value


def check_timestamp(value: Any, pointer: str, what: str = "the timestamp") -> datetime:
    """ISO 8601 date and time; an offset of -00:00 (unknown zone) is refused, as 1.0.3 requires."""
    check_string(value, pointer, what)
    match = TIMESTAMP_PATTERN.match(value)
    if not match:
        fail(f"{what} must be an ISO 8601 date-time such as 2026-01-31T12:00:00.000Z, not {value!r}", pointer)
    zone = match.group(8)
    if zone and zone.startswith("-") and set(zone[1:].replace(":", "")) == {"0"}:
        fail(f"{what} has the offset {zone}; an offset of -00:00 is not allowed (use Z or +00:00)", pointer)
    try:
        return parse_timestamp(value)
    except ValueError:
        fail(f"{what} is not a real date and time: {value!r}", pointer)


def parse_timestamp(value: str) -> datetime:
    """A timezone-aware datetime (UTC when the text has no zone) from an ISO 8601 date-time."""
    match = TIMESTAMP_PATTERN.match(value)
    if not match:
        raise ValueError(f"not an ISO 8601 date-time: {value!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
    if not zone or zone == "Z":
        return moment.replace(tzinfo=timezone.utc)
    digits = zone[1:].replace(":", "")
    offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return moment.replace(tzinfo=timezone(offset if zone[0] == "+" else -offset))


def check_language_map(value: Any, pointer: str, what: str) -> None:
    _object(value, pointer, what)
    for tag, text in value.items():
        if not LANGUAGE_TAG_PATTERN.match(tag):
            fail(f"{what} has the key {tag!r}, which is not an RFC 5646 language tag (e.g. en-US)", f"{pointer}/{tag}")
        check_string(text, f"{pointer}/{tag}", f"{what}[{tag!r}]")


def check_extensions(value: Any, pointer: str) -> None:
    _object(value, pointer, "extensions")
    for key in value:
        check_iri(key, f"{pointer}/{key}", "an extension key")


# ------------------------------------------------------------------------------------------ agents
def check_agent(value: Any, pointer: str, what: str = "the agent", object_type_required: bool = False) -> None:
    agent = _object(value, pointer, what)
    if object_type_required and "objectType" not in agent:
        fail(f"{what} needs objectType 'Agent' (it is the object of a statement)", f"{pointer}/objectType")
    if agent.get("objectType", "Agent") != "Agent":
        fail(f"{what}'s objectType must be 'Agent', not {agent.get('objectType')!r}", f"{pointer}/objectType")
    _allowed(agent, ("objectType", "name") + AGENT_IFIS, pointer, what)
    _check_ifis(agent, pointer, what, required=True)


def check_group(value: Any, pointer: str, what: str = "the group") -> None:
    group = _object(value, pointer, what)
    if group.get("objectType") != "Group":
        fail(f"{what} needs objectType 'Group'", f"{pointer}/objectType")
    _allowed(group, ("objectType", "name", "member") + AGENT_IFIS, pointer, what)
    identified = _check_ifis(group, pointer, what, required=False)
    if "member" in group:
        members = group["member"]
        if not isinstance(members, list):
            fail(f"{what}.member must be an array of agents", f"{pointer}/member")
        for index, member in enumerate(members):
            check_agent(member, f"{pointer}/member/{index}", "a group member")
    if not identified and not group.get("member"):
        fail(
            f"{what} has no identifier, so it is an anonymous group and needs at least one member", f"{pointer}/member"
        )


def check_actor(value: Any, pointer: str, what: str = "the actor", object_type_required: bool = False) -> None:
    actor = _object(value, pointer, what)
    if actor.get("objectType") == "Group":
        check_group(actor, pointer, what)
    else:
        check_agent(actor, pointer, what, object_type_required)


def _check_ifis(agent: dict[str, Any], pointer: str, what: str, *, required: bool) -> bool:
    present = [key for key in AGENT_IFIS if key in agent]
    if len(present) > 1:
        fail(
            f"{what} has several identifiers ({', '.join(present)}); exactly one is allowed", f"{pointer}/{present[1]}"
        )
    if not present:
        if required:
            fail(f"{what} needs exactly one identifier: mbox, mbox_sha1sum, openid or account", pointer)
        return False
    key = present[0]
    value = agent[key]
    where = f"{pointer}/{key}"
    if key == "mbox":
        check_iri(value, where, f"{what}.mbox")
        if not value.startswith("mailto:") or not EMAIL_PATTERN.match(value[len("mailto:") :]):
            fail(f"{what}.mbox must read mailto:<email address>, not {value!r}", where)
    elif key == "mbox_sha1sum":
        check_string(value, where, f"{what}.mbox_sha1sum")
        if not SHA1_PATTERN.match(value):
            fail(f"{what}.mbox_sha1sum must be 40 hexadecimal digits (the SHA-1 of the mailto IRI)", where)
    elif key == "openid":
        check_iri(value, where, f"{what}.openid")
    else:
        account = _object(value, where, f"{what}.account")
        _allowed(account, ("homePage", "name"), where, f"{what}.account")
        check_irl(_required(account, "homePage", where, f"{what}.account"), f"{where}/homePage", "account.homePage")
        check_string(_required(account, "name", where, f"{what}.account"), f"{where}/name", "account.name")
    if "name" in agent:
        check_string(agent["name"], f"{pointer}/name", f"{what}.name")
    return True


# --------------------------------------------------------------------------------------- activities
def check_activity(value: Any, pointer: str, what: str = "the activity") -> None:
    activity = _object(value, pointer, what)
    if activity.get("objectType", "Activity") != "Activity":
        fail(f"{what}'s objectType must be 'Activity'", f"{pointer}/objectType")
    _allowed(activity, ("objectType", "id", "definition"), pointer, what)
    check_iri(_required(activity, "id", pointer, what), f"{pointer}/id", f"{what}.id")
    if "definition" in activity:
        check_activity_definition(activity["definition"], f"{pointer}/definition")


def check_activity_definition(value: Any, pointer: str) -> None:
    definition = _object(value, pointer, "an activity definition")
    _allowed(
        definition,
        (
            "name",
            "description",
            "type",
            "moreInfo",
            "extensions",
            "interactionType",
            "correctResponsesPattern",
            "choices",
            "scale",
            "source",
            "target",
            "steps",
        ),
        pointer,
        "the activity definition",
    )
    for key in ("name", "description"):
        if key in definition:
            check_language_map(definition[key], f"{pointer}/{key}", f"definition.{key}")
    if "type" in definition:
        check_iri(definition["type"], f"{pointer}/type", "definition.type")
    if "moreInfo" in definition:
        check_irl(definition["moreInfo"], f"{pointer}/moreInfo", "definition.moreInfo")
    if "extensions" in definition:
        check_extensions(definition["extensions"], f"{pointer}/extensions")
    interaction = definition.get("interactionType")
    component_keys = [k for k in ("choices", "scale", "source", "target", "steps") if k in definition]
    if interaction is None:
        if "correctResponsesPattern" in definition or component_keys:
            fail(
                "correctResponsesPattern and interaction components need an interactionType",
                f"{pointer}/interactionType",
            )
        return
    if interaction not in INTERACTION_TYPES:
        fail(
            f"interactionType must be one of {', '.join(INTERACTION_TYPES)}, not {interaction!r}",
            f"{pointer}/interactionType",
        )
    if "correctResponsesPattern" in definition:
        pattern = definition["correctResponsesPattern"]
        if not isinstance(pattern, list) or not all(isinstance(p, str) for p in pattern):
            fail("correctResponsesPattern must be an array of strings", f"{pointer}/correctResponsesPattern")
    allowed_components = COMPONENT_LISTS.get(interaction, ())
    for key in component_keys:
        if key not in allowed_components:
            fail(f"interactionType {interaction!r} takes no {key!r} list", f"{pointer}/{key}")
        components = definition[key]
        if not isinstance(components, list):
            fail(f"{key} must be an array of interaction components", f"{pointer}/{key}")
        seen: set[str] = set()
        for index, component in enumerate(components):
            where = f"{pointer}/{key}/{index}"
            _object(component, where, "an interaction component")
            _allowed(component, ("id", "description"), where, "an interaction component")
            component_id = check_string(
                _required(component, "id", where, "an interaction component"),
                f"{where}/id",
                "an interaction component id",
            )
            if component_id in seen:
                fail(f"interaction component id {component_id!r} appears twice in {key}", f"{where}/id")
            seen.add(component_id)
            if "description" in component:
                check_language_map(component["description"], f"{where}/description", "component description")


def check_statement_ref(value: Any, pointer: str, what: str = "the statement reference") -> None:
    ref = _object(value, pointer, what)
    if ref.get("objectType") != "StatementRef":
        fail(f"{what} needs objectType 'StatementRef'", f"{pointer}/objectType")
    _allowed(ref, ("objectType", "id"), pointer, what)
    check_uuid(_required(ref, "id", pointer, what), f"{pointer}/id", f"{what}.id")


# ------------------------------------------------------------------------------------ result, context
def check_result(value: Any, pointer: str) -> None:
    result = _object(value, pointer, "result")
    _allowed(result, ("score", "success", "completion", "response", "duration", "extensions"), pointer, "result")
    for key in ("success", "completion"):
        if key in result and not isinstance(result[key], bool):
            fail(f"result.{key} must be true or false, not {_kind(result[key])}", f"{pointer}/{key}")
    if "response" in result:
        check_string(result["response"], f"{pointer}/response", "result.response")
    if "duration" in result:
        duration = check_string(result["duration"], f"{pointer}/duration", "result.duration")
        if not DURATION_PATTERN.match(duration):
            fail(
                f"result.duration must be an ISO 8601 duration such as PT1M30.5S, not {duration!r}",
                f"{pointer}/duration",
            )
    if "extensions" in result:
        check_extensions(result["extensions"], f"{pointer}/extensions")
    if "score" in result:
        check_score(result["score"], f"{pointer}/score")


def _number(value: Any, pointer: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(f"{what} must be a number, not {_kind(value)}", pointer)
    return float(value)


def check_score(value: Any, pointer: str) -> None:
    score = _object(value, pointer, "result.score")
    _allowed(score, ("scaled", "raw", "min", "max"), pointer, "result.score")
    numbers = {key: _number(score[key], f"{pointer}/{key}", f"score.{key}") for key in score}
    if "scaled" in numbers and not -1.0 <= numbers["scaled"] <= 1.0:
        fail(f"score.scaled must lie within [-1, 1], not {score['scaled']}", f"{pointer}/scaled")
    if "min" in numbers and "max" in numbers and numbers["min"] >= numbers["max"]:
        fail("score.min must be less than score.max", f"{pointer}/min")
    if "raw" in numbers:
        if "min" in numbers and numbers["raw"] < numbers["min"]:
            fail("score.raw must not be less than score.min", f"{pointer}/raw")
        if "max" in numbers and numbers["raw"] > numbers["max"]:
            fail("score.raw must not be more than score.max", f"{pointer}/raw")


def check_context(value: Any, pointer: str, object_is_activity: bool) -> None:
    context = _object(value, pointer, "context")
    _allowed(
        context,
        (
            "registration",
            "instructor",
            "team",
            "contextActivities",
            "revision",
            "platform",
            "language",
            "statement",
            "extensions",
            "contextAgents",
            "contextGroups",
        ),
        pointer,
        "context",
    )
    if "registration" in context:
        check_uuid(context["registration"], f"{pointer}/registration", "context.registration")
    if "instructor" in context:
        check_actor(context["instructor"], f"{pointer}/instructor", "context.instructor")
    if "team" in context:
        check_group(context["team"], f"{pointer}/team", "context.team")
    for key in ("revision", "platform"):
        if key in context:
            check_string(context[key], f"{pointer}/{key}", f"context.{key}")
            if not object_is_activity:
                fail(f"context.{key} is only allowed when the statement's object is an activity", f"{pointer}/{key}")
    if "language" in context:
        language = check_string(context["language"], f"{pointer}/language", "context.language")
        if not LANGUAGE_TAG_PATTERN.match(language):
            fail(f"context.language must be an RFC 5646 language tag, not {language!r}", f"{pointer}/language")
    if "statement" in context:
        check_statement_ref(context["statement"], f"{pointer}/statement", "context.statement")
    if "extensions" in context:
        check_extensions(context["extensions"], f"{pointer}/extensions")
    for key, kind, member in (("contextAgents", "contextAgent", "agent"), ("contextGroups", "contextGroup", "group")):
        if key in context:  # xAPI 2.0
            entries = context[key]
            if not isinstance(entries, list):
                fail(f"context.{key} must be an array of {kind} objects", f"{pointer}/{key}")
            for index, entry in enumerate(entries):
                where = f"{pointer}/{key}/{index}"
                _object(entry, where, f"a {kind}")
                _allowed(entry, ("objectType", member, "relevantTypes"), where, f"a {kind}")
                if entry.get("objectType") != kind:
                    fail(f"a {kind} needs objectType {kind!r}", f"{where}/objectType")
                if member == "agent":
                    check_agent(_required(entry, member, where, f"a {kind}"), f"{where}/agent", "contextAgent.agent")
                else:
                    check_group(_required(entry, member, where, f"a {kind}"), f"{where}/group", "contextGroup.group")
                if "relevantTypes" in entry:
                    types = entry["relevantTypes"]
                    if not isinstance(types, list) or not types:
                        fail("relevantTypes must be a non-empty array of IRIs", f"{where}/relevantTypes")
                    for position, iri in enumerate(types):
                        check_iri(iri, f"{where}/relevantTypes/{position}", "a relevant type")
    if "contextActivities" in context:
        activities = _object(context["contextActivities"], f"{pointer}/contextActivities", "context.contextActivities")
        _allowed(activities, CONTEXT_ACTIVITY_KEYS, f"{pointer}/contextActivities", "context.contextActivities")
        for key, entries in activities.items():
            where = f"{pointer}/contextActivities/{key}"
            if isinstance(entries, list):
                for index, entry in enumerate(entries):
                    check_activity(entry, f"{where}/{index}", f"contextActivities.{key}[{index}]")
            else:
                check_activity(entries, where, f"contextActivities.{key}")


def check_attachments(value: Any, pointer: str) -> None:
    if not isinstance(value, list):
        fail("attachments must be an array", pointer)
    for index, attachment in enumerate(value):
        where = f"{pointer}/{index}"
        _object(attachment, where, "an attachment")
        _allowed(
            attachment,
            ("usageType", "display", "description", "contentType", "length", "sha2", "fileUrl"),
            where,
            "an attachment",
        )
        check_iri(_required(attachment, "usageType", where, "an attachment"), f"{where}/usageType", "usageType")
        check_language_map(
            _required(attachment, "display", where, "an attachment"), f"{where}/display", "attachment.display"
        )
        if "description" in attachment:
            check_language_map(attachment["description"], f"{where}/description", "attachment.description")
        content_type = check_string(
            _required(attachment, "contentType", where, "an attachment"), f"{where}/contentType", "contentType"
        )
        if not re.match(r"^[\w.+-]+/[\w.+-]+", content_type):
            fail(f"contentType must be an Internet media type, not {content_type!r}", f"{where}/contentType")
        length = _required(attachment, "length", where, "an attachment")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            fail("attachment.length must be a non-negative integer (bytes)", f"{where}/length")
        check_string(_required(attachment, "sha2", where, "an attachment"), f"{where}/sha2", "sha2")
        if "fileUrl" in attachment:
            check_irl(attachment["fileUrl"], f"{where}/fileUrl", "fileUrl")


# -------------------------------------------------------------------------------------- statements
STATEMENT_KEYS = (
    "id",
    "actor",
    "verb",
    "object",
    "result",
    "context",
    "timestamp",
    "stored",
    "authority",
    "version",
    "attachments",
)
SUBSTATEMENT_KEYS = ("objectType", "actor", "verb", "object", "result", "context", "timestamp", "attachments")


def check_verb(value: Any, pointer: str) -> None:
    verb = _object(value, pointer, "verb")
    _allowed(verb, ("id", "display"), pointer, "verb")
    check_iri(_required(verb, "id", pointer, "verb"), f"{pointer}/id", "verb.id")
    if "display" in verb:
        check_language_map(verb["display"], f"{pointer}/display", "verb.display")


def check_object(value: Any, pointer: str, in_substatement: bool) -> None:
    target = _object(value, pointer, "object")
    kind = target.get("objectType", "Activity")
    if kind == "Activity":
        check_activity(target, pointer, "the object")
    elif kind == "Agent":
        check_agent(target, pointer, "the object", object_type_required=True)
    elif kind == "Group":
        check_group(target, pointer, "the object")
    elif kind == "StatementRef":
        check_statement_ref(target, pointer, "the object")
    elif kind == "SubStatement":
        if in_substatement:
            fail("a SubStatement cannot contain another SubStatement", f"{pointer}/objectType")
        _allowed(target, SUBSTATEMENT_KEYS, pointer, "the SubStatement")
        _check_body(target, pointer, in_substatement=True)
    else:
        fail(
            f"object.objectType must be Activity, Agent, Group, StatementRef or SubStatement, not {kind!r}",
            f"{pointer}/objectType",
        )


def _check_body(statement: dict[str, Any], pointer: str, in_substatement: bool) -> None:
    check_actor(_required(statement, "actor", pointer, "the statement"), f"{pointer}/actor")
    check_verb(_required(statement, "verb", pointer, "the statement"), f"{pointer}/verb")
    check_object(_required(statement, "object", pointer, "the statement"), f"{pointer}/object", in_substatement)
    target = statement["object"]
    if "result" in statement:
        check_result(statement["result"], f"{pointer}/result")
    if "context" in statement:
        check_context(
            statement["context"],
            f"{pointer}/context",
            object_is_activity=target.get("objectType", "Activity") == "Activity",
        )
    if "timestamp" in statement:
        check_timestamp(statement["timestamp"], f"{pointer}/timestamp")
    if "attachments" in statement:
        check_attachments(statement["attachments"], f"{pointer}/attachments")


def check_statement(value: Any, pointer: str = "") -> dict[str, Any]:
    """Check one statement as posted to the LRS; returns it unchanged (``StatementInvalid`` otherwise)."""
    statement = _object(value, pointer, "a statement")
    _allowed(statement, STATEMENT_KEYS, pointer, "a statement")
    if "id" in statement:
        check_uuid(statement["id"], f"{pointer}/id", "the statement id")
    _check_body(statement, pointer, in_substatement=False)
    if "stored" in statement:
        check_timestamp(statement["stored"], f"{pointer}/stored", "stored")
    if "authority" in statement:
        check_authority(statement["authority"], f"{pointer}/authority")
    if "version" in statement:
        version = check_string(statement["version"], f"{pointer}/version", "version")
        if not re.match(r"^(1\.0(\.\d+)?|2\.0(\.\d+)?)$", version):
            fail(f"version must be 1.0.x or 2.0.x, not {version!r}", f"{pointer}/version")
    if statement["verb"]["id"] == VERB_VOIDED:
        if statement["object"].get("objectType") != "StatementRef":
            fail("a voiding statement (verb voided) must have a StatementRef as its object", f"{pointer}/object")
    return statement


def check_authority(value: Any, pointer: str) -> None:
    """An Agent, or a Group of exactly two Agents (OAuth consumer and user)."""
    authority = _object(value, pointer, "authority")
    if authority.get("objectType") == "Group":
        check_group(authority, pointer, "authority")
        if any(key in authority for key in AGENT_IFIS):
            fail(
                "an authority group must be anonymous (no identifier): it stands for an OAuth consumer and user",
                pointer,
            )
        if len(authority.get("member", [])) != 2:
            fail("an authority group must have exactly two members (OAuth consumer and user)", f"{pointer}/member")
    else:
        check_agent(authority, pointer, "authority")
