"""The document resources: State, Activity Profile and Agent Profile (one table, three kinds of key).

A document is opaque bytes with a content type, an ETag (SHA-1 of the bytes, as the
specification's examples use) and an update time. ``POST`` merges JSON objects (top-level keys of
the new document replace those of the stored one) and refuses to merge anything else. Writes honour
``If-Match`` / ``If-None-Match``; the profile resources refuse a blind overwrite of an existing
document (409), as xAPI's concurrency rules require.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine, and_, delete, select, update

from . import tables
from .errors import DocumentConflict, NotFound, ParameterInvalid, PreconditionFailed

KINDS = ("state", "activity-profile", "agent-profile")
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class DocumentKey:
    """Which document: its kind, the activity / agent / registration it belongs to, and its id (None: all)."""

    kind: str
    activity_id: str = ""
    agent_key: str = ""
    registration: str = ""
    document_id: str | None = None

    def where(self) -> Any:
        d = tables.documents.c
        clauses = [
            d.kind == self.kind,
            d.activity_id == self.activity_id,
            d.agent_key == self.agent_key,
            d.registration == self.registration,
        ]
        if self.document_id is not None:
            clauses.append(d.document_id == self.document_id)
        return and_(*clauses)


@dataclass
class Document:
    content: bytes
    content_type: str
    etag: str
    updated: datetime


@dataclass(frozen=True)
class Preconditions:
    """The ``If-Match`` / ``If-None-Match`` headers of a write."""

    if_match: str | None = None
    if_none_match: str | None = None

    @property
    def given(self) -> bool:
        return self.if_match is not None or self.if_none_match is not None


def etag_of(content: bytes) -> str:
    return hashlib.sha1(content).hexdigest()


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()]


def is_json_type(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == JSON_TYPE


class DocumentStore:
    """State and profile documents in the store's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: DocumentKey) -> Document:
        d = tables.documents.c
        with self.engine.connect() as connection:
            row = connection.execute(select(d.content, d.content_type, d.etag, d.updated).where(key.where())).first()
        if row is None:
            raise NotFound(f"no {key.kind} document {key.document_id!r} is stored here", "?" + _id_param(key.kind))
        return Document(row.content, row.content_type, row.etag, row.updated)

    def ids(self, key: DocumentKey, since: datetime | None = None) -> list[str]:
        """The ids of the documents under ``key`` (updated after ``since`` when given)."""
        d = tables.documents.c
        query = select(d.document_id).where(key.where()).order_by(d.document_id)
        if since is not None:
            query = query.where(d.updated > since)
        with self.engine.connect() as connection:
            return [row.document_id for row in connection.execute(query)]

    def put(
        self,
        key: DocumentKey,
        content: bytes,
        content_type: str,
        preconditions: Preconditions,
        *,
        merge: bool = False,
        blind_overwrite: bool = True,
        blind_create: bool = True,
    ) -> Document:
        """Store (or, with ``merge``, merge into) the document ``key``; returns what is stored now.

        Without ``blind_overwrite`` a PUT over an existing document needs ``If-Match`` / ``If-None-Match``
        (409 otherwise); without ``blind_create`` so does a PUT of a new one (400).
        """
        d = tables.documents.c
        now = datetime.now(timezone.utc)
        with self.engine.begin() as connection:
            row = connection.execute(select(d.pk, d.content, d.content_type, d.etag).where(key.where())).first()
            self._check_preconditions(
                row.etag if row else None,
                preconditions,
                overwrite_needs_precondition=not (merge or blind_overwrite),
                create_needs_precondition=not (merge or blind_create),
            )
            if merge and row is not None:
                content, content_type = _merged(row.content, row.content_type, content, content_type)
            elif merge and is_json_type(content_type):
                _json_object(content, "the posted document")
            document = Document(content, content_type, etag_of(content), now)
            values = {"content": content, "content_type": content_type, "etag": document.etag, "updated": now}
            if row is None:
                connection.execute(
                    tables.documents.insert().values(
                        kind=key.kind,
                        activity_id=key.activity_id,
                        agent_key=key.agent_key,
                        registration=key.registration,
                        document_id=key.document_id,
                        **values,
                    )
                )
            else:
                connection.execute(update(tables.documents).where(d.pk == row.pk).values(**values))
        return document

    def delete(self, key: DocumentKey, preconditions: Preconditions = Preconditions()) -> None:
        """Delete the document ``key`` (or every document under it when ``key.document_id`` is None)."""
        d = tables.documents.c
        with self.engine.begin() as connection:
            if preconditions.given and key.document_id is not None:
                row = connection.execute(select(d.etag).where(key.where())).first()
                self._check_preconditions(row.etag if row else None, preconditions)
            connection.execute(delete(tables.documents).where(key.where()))

    @staticmethod
    def _check_preconditions(
        current: str | None,
        preconditions: Preconditions,
        *,
        overwrite_needs_precondition: bool = False,
        create_needs_precondition: bool = False,
    ) -> None:
        if preconditions.if_match is not None:
            tags = _tags(preconditions.if_match)
            if current is None or ("*" not in tags and current not in tags):
                raise PreconditionFailed(
                    "If-Match does not name the stored document's ETag"
                    if current
                    else "If-Match was given but no document is stored",
                    "If-Match",
                )
        if preconditions.if_none_match is not None and current is not None:
            tags = _tags(preconditions.if_none_match)
            if "*" in tags or current in tags:
                raise PreconditionFailed("If-None-Match: the document already exists", "If-None-Match")
        if create_needs_precondition and current is None and not preconditions.given:
            raise ParameterInvalid(
                "a profile document is written with If-Match (its ETag) or If-None-Match: * "
                "(when it must not exist yet), so that concurrent writers cannot lose each "
                "other's changes",
                "If-None-Match",
            )
        if overwrite_needs_precondition and current is not None and not preconditions.given:
            raise DocumentConflict(
                "the document exists: send If-Match with its ETag (or If-None-Match: *) to "
                "overwrite it, so that concurrent writers cannot lose each other's changes",
                "If-Match",
            )


def _json_object(content: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except ValueError as exc:
        raise ParameterInvalid(f"{what} is declared application/json but is not JSON ({exc})", "") from None
    if not isinstance(value, dict):
        raise ParameterInvalid(f"{what} must be a JSON object to be merged", "")
    return value


def _merged(stored: bytes, stored_type: str, posted: bytes, posted_type: str) -> tuple[bytes, str]:
    if not (is_json_type(stored_type) and is_json_type(posted_type)):
        raise ParameterInvalid(
            "POST merges JSON objects only: the stored and the posted document must both be "
            "application/json (PUT replaces a document of any type)",
            "Content-Type",
        )
    merged = {**_json_object(stored, "the stored document"), **_json_object(posted, "the posted document")}
    return json.dumps(merged, separators=(",", ":")).encode(), JSON_TYPE


def _id_param(kind: str) -> str:
    return "stateId" if kind == "state" else "profileId"
