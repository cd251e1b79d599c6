"""Agents, activities and statements as the LRS compares them: identifying keys, equivalence, formats.

- ``agent_key``: the one string naming an Agent or identified Group (``mbox:``/``sha1:``/``openid:``/
  ``account:``), which the State and Agent Profile resources and the ``agent`` filter match on;
- ``comparable``: the form in which two statements with one id are "the same statement" under the
  specification's comparison rules (what the LRS sets, display maps, activity definitions, default
  ``objectType``s, the order of group members, the case of UUIDs and mailboxes and the time zone of
  a timestamp do not matter);
- ``in_format``: a stored statement in the ``ids`` / ``exact`` / ``canonical`` format of a GET.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .validation import parse_timestamp

IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


def agent_key(agent: dict[str, Any]) -> str | None:
    """The identifying key of an Agent or identified Group, or None for an anonymous group."""
    if agent.get("mbox"):
        return "mbox:" + str(agent["mbox"]).lower()
    if agent.get("mbox_sha1sum"):
        return "sha1:" + str(agent["mbox_sha1sum"]).lower()
    if agent.get("openid"):
        return "openid:" + str(agent["openid"])
    account = agent.get("account")
    if isinstance(account, dict):
        return f"account:{account.get('homePage', '')}|{account.get('name', '')}"
    return None


def agents_in(actor: dict[str, Any]) -> list[str]:
    """Keys of an actor and, for a group, of its members."""
    keys = [agent_key(actor)]
    for member in actor.get("member", []) if actor.get("objectType") == "Group" else []:
        keys.append(agent_key(member))
    return [k for k in keys if k]


def _context_activity_lists(context: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    activities = context.get("contextActivities") or {}
    return {key: value if isinstance(value, list) else [value] for key, value in activities.items()}


def statement_index(statement: dict[str, Any]) -> tuple[set[tuple[str, bool]], set[tuple[str, bool]]]:
    """(agent keys, activity ids) a statement mentions, each with ``related`` (False: actor / object)."""
    agents: set[tuple[str, bool]] = set()
    activities: set[tuple[str, bool]] = set()

    def visit(part: dict[str, Any], direct: bool) -> None:
        for key in agents_in(part["actor"]):
            agents.add((key, not direct))
        target = part["object"]
        kind = target.get("objectType", "Activity")
        if kind == "Activity":
            activities.add((target["id"], not direct))
        elif kind in ("Agent", "Group"):
            for key in agents_in(target):
                agents.add((key, not direct))
        elif kind == "SubStatement":
            visit(target, direct=False)
        context = part.get("context") or {}
        for key in ("instructor", "team"):
            if isinstance(context.get(key), dict):
                for agent in agents_in(context[key]):
                    agents.add((agent, True))
        for entries in _context_activity_lists(context).values():
            for entry in entries:
                activities.add((entry["id"], True))

    visit(statement, direct=True)
    if isinstance(statement.get("authority"), dict):
        for key in agents_in(statement["authority"]):
            agents.add((key, True))
    # a direct match also satisfies the broad (related_*) filter: index only the narrowest relation once
    agents = {(k, r) for k, r in agents if not (r and (k, False) in agents)}
    activities = {(a, r) for a, r in activities if not (r and (a, False) in activities)}
    return agents, activities


def normalise_context_activities(statement: dict[str, Any]) -> None:
    """Single context activities become one-element arrays (as the LRS must return them), in place."""
    for part in (
        statement,
        statement.get("object") if statement.get("object", {}).get("objectType") == "SubStatement" else None,
    ):
        if part and isinstance(part.get("context"), dict) and "contextActivities" in part["context"]:
            part["context"]["contextActivities"] = _context_activity_lists(part["context"])


# ------------------------------------------------------------------------------------------ equivalence
def _comparable_actor(actor: dict[str, Any]) -> dict[str, Any]:
    result = {k: v for k, v in actor.items() if k != "member"}
    result.setdefault("objectType", "Agent")
    if "mbox" in result:
        result["mbox"] = str(result["mbox"]).lower()
    if "mbox_sha1sum" in result:
        result["mbox_sha1sum"] = str(result["mbox_sha1sum"]).lower()
    if "member" in actor:
        result["member"] = sorted((_comparable_actor(m) for m in actor["member"]), key=repr)
    return result


def _comparable_activity(activity: dict[str, Any]) -> dict[str, Any]:
    return {"objectType": "Activity", "id": activity["id"]}


def _comparable_part(part: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"actor": _comparable_actor(part["actor"]), "verb": {"id": part["verb"]["id"]}}
    target = part["object"]
    kind = target.get("objectType", "Activity")
    if kind == "Activity":
        result["object"] = _comparable_activity(target)
    elif kind in ("Agent", "Group"):
        result["object"] = _comparable_actor(target)
    elif kind == "StatementRef":
        result["object"] = {"objectType": "StatementRef", "id": str(target["id"]).lower()}
    else:
        result["object"] = {"objectType": "SubStatement", **_comparable_part(target)}
    if "result" in part:
        result["result"] = dict(part["result"])
        if "duration" in result["result"]:  # durations compare to 0.01 s
            result["result"]["duration"] = _hundredths(result["result"]["duration"])
    if "context" in part:
        context = dict(part["context"])
        if "registration" in context:
            context["registration"] = str(context["registration"]).lower()
        if "statement" in context:
            context["statement"] = {"objectType": "StatementRef", "id": str(context["statement"]["id"]).lower()}
        for key in ("instructor", "team"):
            if key in context:
                context[key] = _comparable_actor(context[key])
        if "contextActivities" in context:
            context["contextActivities"] = {
                key: [_comparable_activity(a) for a in entries]
                for key, entries in _context_activity_lists(context).items()
            }
        result["context"] = context
    if "attachments" in part:
        result["attachments"] = sorted(
            ({k: v for k, v in a.items() if k not in ("display", "description")} for a in part["attachments"]), key=repr
        )
    if "timestamp" in part:
        result["timestamp"] = parse_timestamp(part["timestamp"]).timestamp()
    return result


def _hundredths(duration: str) -> str:
    """An ISO 8601 duration with its seconds truncated to hundredths (``PT1.2345S`` → ``PT1.23S``)."""
    return re.sub(r"(\d+)\.(\d{1,2})\d*S$", r"\1.\2S", duration)


def comparable(statement: dict[str, Any], *, ignore_timestamp: bool = False) -> dict[str, Any]:
    """The parts of ``statement`` that decide whether two statements with one id are the same statement."""
    result = _comparable_part(statement)
    if ignore_timestamp:
        result.pop("timestamp", None)
    return result


def same_statement(stored: dict[str, Any], posted: dict[str, Any]) -> bool:
    """Whether ``posted`` (as received) repeats ``stored`` (as kept, with what the LRS added)."""
    return comparable(stored, ignore_timestamp="timestamp" not in posted) == comparable(posted)


# ---------------------------------------------------------------------------------------------- formats
def _ids_actor(actor: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"objectType": actor.get("objectType", "Agent")}
    for key in IFIS:
        if key in actor:
            result[key] = actor[key]
    if actor.get("objectType") == "Group" and "member" in actor and not any(k in actor for k in IFIS):
        result["member"] = [_ids_actor(m) for m in actor["member"]]
    return result


def _ids_part(part: dict[str, Any]) -> dict[str, Any]:
    result = dict(part)
    result["actor"] = _ids_actor(part["actor"])
    result["verb"] = {"id": part["verb"]["id"]}
    target = part["object"]
    kind = target.get("objectType", "Activity")
    if kind == "Activity":
        result["object"] = {"id": target["id"]}
    elif kind in ("Agent", "Group"):
        result["object"] = _ids_actor(target)
    elif kind == "SubStatement":
        result["object"] = _ids_part(target)
    if "context" in part:
        context = dict(part["context"])
        for key in ("instructor", "team"):
            if key in context:
                context[key] = _ids_actor(context[key])
        if "contextActivities" in context:
            context["contextActivities"] = {
                key: [{"id": a["id"]} for a in entries] for key, entries in _context_activity_lists(context).items()
            }
        result["context"] = context
    return result


def _pick_language(language_map: dict[str, str], preferred: list[str]) -> dict[str, str]:
    for tag in preferred:
        for key, value in language_map.items():
            if key.lower() == tag.lower():
                return {key: value}
        for key, value in language_map.items():
            if key.lower().split("-")[0] == tag.lower().split("-")[0]:
                return {key: value}
    first = next(iter(language_map.items()), None)
    return {first[0]: first[1]} if first else {}


def _canonical(value: Any, preferred: list[str], definitions: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [_canonical(v, preferred, definitions) for v in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for key, item in value.items():
        if (
            key in ("display", "name", "description")
            and isinstance(item, dict)
            and all(isinstance(v, str) for v in item.values())
        ):
            result[key] = _pick_language(item, preferred)
        elif key == "extensions":
            result[key] = item
        else:
            result[key] = _canonical(item, preferred, definitions)
    if (
        value.get("objectType", "Activity") == "Activity"
        and "id" in value
        and value["id"] in definitions
        and definitions[value["id"]]
    ):
        result["definition"] = _canonical(definitions[value["id"]], preferred, {})
    return result


def merged_definition(known: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """An activity definition updated by a newer one: language maps and extensions merge key by key."""
    merged = dict(known or {})
    for key, value in new.items():
        if key in ("name", "description", "extensions") and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def in_format(
    statement: dict[str, Any],
    fmt: str,
    *,
    languages: list[str] | None = None,
    definitions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``statement`` as the ``format`` parameter asks: ``exact`` (as stored), ``ids`` or ``canonical``."""
    if fmt == "ids":
        return _ids_part(statement)
    if fmt == "canonical":
        return _canonical(copy.deepcopy(statement), languages or [], definitions or {})
    return statement
