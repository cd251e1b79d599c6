"""The items the store keeps and the journal holds until then: their types, their checks, their journal lines.

One module below both ``storage`` (which writes items to the database) and ``journal`` (which keeps
them on disk while the database is away), so that neither imports the other.
A journal line is ``{"t": "solve"|"feedback"|"outcome", "r": {...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Union

from pydantic import BaseModel

from ..records import FeedbackEvent, OutcomeRecord, SolveRecord
from .errors import StoreError
from .models import ID_LENGTH

StoreItem = Union[SolveRecord, FeedbackEvent, OutcomeRecord]

_TYPE_TAGS: dict[type[BaseModel], str] = {SolveRecord: "solve", FeedbackEvent: "feedback", OutcomeRecord: "outcome"}
_TYPES_BY_TAG: dict[str, type[BaseModel]] = {tag: cls for cls, tag in _TYPE_TAGS.items()}
#: Tags of item types earlier releases journaled and this one no longer keeps (raw xAPI statements
#: went with the core ``xapi_statements`` table, migration 0009).
RETIRED_TAGS = {"xapi": "raw xAPI statements are no longer kept by the store (its xapi_statements table was dropped)"}


@dataclass(frozen=True)
class RejectedItem:
    """An item the database refused for good (e.g. a void naming an unknown event), with the reason."""

    item: StoreItem
    reason: str


def check_item(item: StoreItem) -> None:
    """Refuse an item the database would reject, before it is acknowledged (ids too long, a void without target)."""
    if len(item.id) > ID_LENGTH:
        _refuse_long_id(item, item.id)
    if type(item) is FeedbackEvent:
        for value in (item.solve_id, item.voids or ""):
            if len(value) > ID_LENGTH:
                _refuse_long_id(item, value)
        if item.kind == "void" and not item.voids:
            raise StoreError(
                f"feedback event {item.id!r} is a 'void' but names no event in 'voids'; "
                "expected the id of the feedback event it retracts"
            )
        if item.kind != "void" and item.voids:
            raise StoreError(
                f"feedback event {item.id!r} of kind {item.kind!r} names 'voids'; "
                "only events of kind 'void' retract other events"
            )


def _refuse_long_id(item: StoreItem, value: str) -> None:
    raise StoreError(
        f"id {value[:40]!r}… of a {type(item).__name__} is {len(value)} characters long; "
        f"the store accepts ids of at most {ID_LENGTH}"
    )


def item_type_tag(item: StoreItem) -> str:
    """``solve``, ``feedback`` or ``outcome``: the journal's name of the item's type."""
    return _TYPE_TAGS[type(item)]


def encode_item(item: StoreItem) -> str:
    """One journal line (without the newline) for ``item``; never fails (see ``escaped_entry``)."""
    try:
        return '{"t":"%s","r":%s}' % (_TYPE_TAGS[type(item)], item.model_dump_json())
    except ValueError:  # text UTF-8 cannot encode (a lone surrogate): keep it escaped rather than lose it
        return escaped_entry(item)


def escaped_entry(item: StoreItem) -> str:
    """The journal line of ``item`` in pure ASCII: any text survives, even text no database can hold."""
    return json.dumps(
        {"t": _TYPE_TAGS[type(item)], "r": item.model_dump(mode="json")}, ensure_ascii=True, separators=(",", ":")
    )


def decode_line(line: str) -> StoreItem:
    """The item of one journal line; ``ValueError`` if the line is not one."""
    document = json.loads(line)
    tag = str(document.get("t")) if isinstance(document, dict) else None
    cls = _TYPES_BY_TAG.get(tag) if tag is not None else None
    if cls is None:
        if tag in RETIRED_TAGS:
            raise ValueError(f"journal entry type {tag!r}: {RETIRED_TAGS[tag]}")
        raise ValueError(
            f"unknown journal entry type {document.get('t') if isinstance(document, dict) else document!r}"
        )
    return cls.model_validate(document["r"])  # type: ignore[return-value]  # one of StoreItem's types
