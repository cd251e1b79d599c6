"""The Statement resource's library: store (idempotent, voiding), fetch by id, query with filters and paging.

Every write is one database transaction that commits before the caller answers, so a statement
the LRS acknowledged survives a crash of the server; ``seq`` (the order of storage) gives
``stored`` and the paging cursors, so a page sequence is stable while new statements arrive.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import Engine, and_, exists, or_, select, true, update
from sqlalchemy.dialects import postgresql, sqlite

from . import tables
from .errors import NotFound, ParameterInvalid, StatementConflict, StatementInvalid
from .identity import merged_definition, normalise_context_activities, same_statement, statement_index
from .signatures import check_signature
from .validation import SIGNATURE_USAGE, VERB_VOIDED, check_statement, parse_timestamp

XAPI_VERSION_DEFAULT = "1.0.0"
MAX_PAGE = 500


def format_timestamp(moment: datetime) -> str:
    """``2026-12-02T06:30:00.123456Z``: UTC, microseconds (the precision of ``since`` / ``until``)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Attachment:
    """Raw attachment data received in a multipart request, named by its SHA-256."""

    sha2: str
    content_type: str
    content: bytes


@dataclass
class StatementQuery:
    """The filters of ``GET /statements`` (already parsed and checked)."""

    agent: str | None = None
    verb: str | None = None
    activity: str | None = None
    registration: str | None = None
    related_activities: bool = False
    related_agents: bool = False
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 0
    ascending: bool = False
    format: str = "exact"
    attachments: bool = False
    after_seq: int | None = None  # paging: the last seq already returned
    max_seq: int | None = None  # paging: the newest seq when the first page was read

    def cursor(self, last_seq: int) -> str:
        """The opaque ``more`` token continuing this query after ``last_seq``."""
        state = {k: v for k, v in self.__dict__.items() if v not in (None, False, 0)}
        for key in ("since", "until"):
            if key in state:
                state[key] = format_timestamp(state[key])
        state["after_seq"] = last_seq
        return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")

    @classmethod
    def from_cursor(cls, token: str) -> "StatementQuery":
        """The query a ``more`` token continues; ``ParameterInvalid`` if it is not one of ours."""
        try:
            state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            for key in ("since", "until"):
                if key in state:
                    state[key] = parse_timestamp(state[key])
            return cls(**state)
        except (ValueError, TypeError) as exc:
            raise ParameterInvalid(f"'more' is not a continuation token this LRS issued ({exc})", "?more") from None


@dataclass
class StoredPage:
    statements: list[dict[str, Any]]
    more: str | None
    seqs: list[int] = field(default_factory=list)


class StatementStore:
    """The LRS's statements in the store's database (tables of ``tables.py``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._clock_lock = threading.Lock()
        self._last_stored = datetime.min.replace(tzinfo=timezone.utc)

    def _now(self) -> datetime:
        with self._clock_lock:  # strictly increasing stored times within this process
            now = datetime.now(timezone.utc)
            if now <= self._last_stored:
                now = self._last_stored + timedelta(microseconds=1)
            self._last_stored = now
            return now

    def _insert_ignore(self, table: Any) -> Any:
        insert: Any = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[self.dialect]
        return insert(table).on_conflict_do_nothing()

    # ------------------------------------------------------------------------------------------ writes
    def store(
        self,
        posted: Sequence[Any],
        authority: dict[str, Any],
        attachments: Iterable[Attachment] = (),
        *,
        statement_id: str | None = None,
        batch: bool = True,
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """Store ``posted`` statements (one transaction); returns (their ids, the statements as stored).

        ``statement_id``: the id of a PUT; ``batch``: the request body was an array (error pointers
        then start with the statement's index). Repeating a stored statement is a no-op; the same id with
        other content is ``StatementConflict``; an invalid statement or a missing attachment is
        ``StatementInvalid`` and nothing is stored.
        """
        at = (lambda index: f"/{index}") if batch else (lambda index: "")
        checked = [check_statement(s, at(i)) for i, s in enumerate(posted)]
        ids = []
        for index, statement in enumerate(checked):
            sid = statement.get("id") or statement_id or str(uuid.uuid4())
            if statement_id is not None and "id" in statement and statement["id"].lower() != statement_id.lower():
                raise ParameterInvalid(
                    f"the statement's id {statement['id']} differs from statementId {statement_id}", "/id"
                )
            ids.append(sid.lower())
        if len(set(ids)) != len(ids):
            duplicate = next(i for i, sid in enumerate(ids) if ids.index(sid) != i)
            raise StatementInvalid(f"statement id {ids[duplicate]} appears twice in one request", f"{at(duplicate)}/id")
        data = {a.sha2: a for a in attachments}
        self._check_attachments(checked, data, at)
        fresh: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        accepted: list[dict[str, Any]] = []
        with self.engine.begin() as connection:
            known = {
                row.id: row.statement
                for row in connection.execute(
                    select(tables.statements.c.id, tables.statements.c.statement).where(tables.statements.c.id.in_(ids))
                )
            }
            for index, (sid, statement) in enumerate(zip(ids, checked)):
                if sid in known:
                    if not same_statement(known[sid], statement):
                        raise StatementConflict(
                            f"statement {sid} is already stored with different content; a "
                            "statement id names one statement for ever (void it and send a new id)",
                            at(index),
                        )
                    accepted.append(known[sid])
                    continue
                fresh.append((sid, statement, self._prepare(sid, statement, authority)))
                accepted.append(fresh[-1][2])
            for sid, _posted, prepared in fresh:
                self._insert(connection, sid, prepared)
            self._store_attachments(connection, [p for _, _, p in fresh], data)
            self._apply_voids(connection, [p for _, _, p in fresh])
        return ids, accepted

    def _prepare(self, sid: str, statement: dict[str, Any], authority: dict[str, Any]) -> dict[str, Any]:
        prepared = copy.deepcopy(statement)
        stored = self._now()
        prepared["id"] = statement.get("id", sid)
        prepared["stored"] = format_timestamp(stored)
        prepared.setdefault("timestamp", prepared["stored"])
        prepared["authority"] = authority
        prepared.setdefault("version", XAPI_VERSION_DEFAULT)
        normalise_context_activities(prepared)
        return prepared

    def _insert(self, connection: Any, sid: str, statement: dict[str, Any]) -> None:
        target = statement["object"]
        ref = str(target["id"]).lower() if target.get("objectType") == "StatementRef" else None
        voiding = ref if statement["verb"]["id"] == VERB_VOIDED else None
        registration = (statement.get("context") or {}).get("registration")
        seq = connection.execute(
            tables.statements.insert()
            .values(
                id=sid,
                stored=parse_timestamp(statement["stored"]),
                verb_id=statement["verb"]["id"],
                registration=registration.lower() if registration else None,
                voided=False,
                voiding_target=voiding,
                ref_target=ref,
                statement=statement,
            )
            .returning(tables.statements.c.seq)
        ).scalar_one()
        agents, activities = statement_index(statement)
        if agents:
            connection.execute(
                tables.statement_agents.insert(),
                [{"statement_seq": seq, "agent_key": k, "related": r} for k, r in agents],
            )
        if activities:
            connection.execute(
                tables.statement_activities.insert(),
                [{"statement_seq": seq, "activity_id": a, "related": r} for a, r in activities],
            )
        self._remember_activities(connection, statement)

    def _remember_activities(self, connection: Any, statement: dict[str, Any]) -> None:
        """Keep the newest definition of every activity a statement defines (the Activities resource)."""
        found: dict[str, Any] = {}

        def visit(part: dict[str, Any]) -> None:
            target = part["object"]
            if target.get("objectType", "Activity") == "Activity":
                found.setdefault(target["id"], target.get("definition"))
            elif target.get("objectType") == "SubStatement":
                visit(target)
            for entries in ((part.get("context") or {}).get("contextActivities") or {}).values():
                for entry in entries if isinstance(entries, list) else [entries]:
                    found.setdefault(entry["id"], entry.get("definition"))

        visit(statement)
        for activity_id, definition in found.items():
            known = connection.execute(
                select(tables.activities.c.definition).where(tables.activities.c.id == activity_id)
            ).first()
            if known is None:
                connection.execute(self._insert_ignore(tables.activities).values(id=activity_id, definition=definition))
            elif definition:
                merged = merged_definition(known[0], definition)
                connection.execute(
                    update(tables.activities).where(tables.activities.c.id == activity_id).values(definition=merged)
                )

    def _check_attachments(self, statements: list[dict[str, Any]], data: dict[str, Attachment], at: Any) -> None:
        declared: set[str] = set()
        for index, statement in enumerate(statements):
            for position, attachment in enumerate(statement.get("attachments", [])):
                declared.add(attachment["sha2"])
                if "fileUrl" not in attachment:
                    if attachment["sha2"] not in data:
                        raise StatementInvalid(
                            f"attachment {attachment['sha2']} has no fileUrl and no part of the request carries its "
                            "data; send it as a multipart/mixed part with X-Experience-API-Hash",
                            f"{at(index)}/attachments/{position}",
                        )
                if attachment["usageType"] == SIGNATURE_USAGE:
                    check_signature(statement, attachment, data.get(attachment["sha2"]), at(index))
        extra = [sha2 for sha2 in data if sha2 not in declared]
        if extra:
            raise StatementInvalid(
                f"the request carries attachment data {extra[0]} that no statement declares", "/attachments"
            )

    def _store_attachments(
        self, connection: Any, statements: list[dict[str, Any]], data: dict[str, Attachment]
    ) -> None:
        used = {a["sha2"] for s in statements for a in s.get("attachments", []) if a["sha2"] in data}
        for sha2 in used:
            item = data[sha2]
            connection.execute(
                self._insert_ignore(tables.attachments).values(
                    sha2=sha2, content_type=item.content_type, content=item.content
                )
            )

    def _apply_voids(self, connection: Any, statements: list[dict[str, Any]]) -> None:
        s = tables.statements.c
        for statement in statements:
            if statement["verb"]["id"] != VERB_VOIDED:
                continue
            target = str(statement["object"]["id"]).lower()
            # a voiding statement cannot be voided: only a statement that voids nothing itself is
            connection.execute(
                update(tables.statements).where(s.id == target, s.voiding_target.is_(None)).values(voided=True)
            )

    # ------------------------------------------------------------------------------------------- reads
    def get(self, statement_id: str, *, voided: bool) -> tuple[dict[str, Any], int]:
        """The statement ``statement_id`` (``voided``: only if it is voided, else only if it is not)."""
        s = tables.statements.c
        with self.engine.connect() as connection:
            row = connection.execute(select(s.statement, s.voided, s.seq).where(s.id == statement_id.lower())).first()
        if row is None or row.voided != voided:
            state = "voided " if voided else ""
            extra = (
                ""
                if row is None
                else (
                    " (it is voided: ask with voidedStatementId)"
                    if row.voided
                    else " (it is not voided: ask with statementId)"
                )
            )
            raise NotFound(
                f"no {state}statement {statement_id} is stored{extra}",
                "?voidedStatementId" if voided else "?statementId",
            )
        return row.statement, row.seq

    def _matches(self, alias: Any, query: StatementQuery) -> Any:
        conditions = []
        if query.verb:
            conditions.append(alias.c.verb_id == query.verb)
        if query.registration:
            conditions.append(alias.c.registration == query.registration.lower())
        if query.agent:
            a = tables.statement_agents.c
            clause = and_(a.statement_seq == alias.c.seq, a.agent_key == query.agent)
            if not query.related_agents:
                clause = and_(clause, a.related.is_(False))
            conditions.append(exists().where(clause))
        if query.activity:
            a = tables.statement_activities.c
            clause = and_(a.statement_seq == alias.c.seq, a.activity_id == query.activity)
            if not query.related_activities:
                clause = and_(clause, a.related.is_(False))
            conditions.append(exists().where(clause))
        return and_(*conditions) if conditions else true()

    def stored_any(self, statement_id: str) -> dict[str, Any] | None:
        """The stored statement ``statement_id``, voided or not, else None."""
        s = tables.statements.c
        with self.engine.connect() as connection:
            return connection.execute(select(s.statement).where(s.id == statement_id.lower())).scalar()

    def query(self, query: StatementQuery, scope: Any = None) -> StoredPage:
        """One page of the statements ``query`` selects, newest first unless ``ascending``; voided ones never.

        ``scope`` (a ``courses.CourseScope``): only statements of its courses."""
        s = tables.statements
        limit = min(query.limit or MAX_PAGE, MAX_PAGE)
        condition = self._matches(s, query)
        if query.agent or query.verb or query.activity or query.registration:
            # a statement that refers to a matching statement (StatementRef) matches too
            target = tables.statements.alias("target")
            condition = or_(condition, s.c.ref_target.in_(select(target.c.id).where(self._matches(target, query))))
        clauses = [s.c.voided.is_(False), condition]
        if scope is not None:
            clauses.append(scope.condition(s))
        if query.since:
            clauses.append(s.c.stored > query.since)
        if query.until:
            clauses.append(s.c.stored <= query.until)
        if query.after_seq is not None:
            clauses.append(s.c.seq > query.after_seq if query.ascending else s.c.seq < query.after_seq)
        with self.engine.connect() as connection:
            if query.max_seq is None:
                query.max_seq = connection.execute(select(s.c.seq).order_by(s.c.seq.desc()).limit(1)).scalar() or 0
            clauses.append(s.c.seq <= query.max_seq)
            order = s.c.seq.asc() if query.ascending else s.c.seq.desc()
            rows = connection.execute(
                select(s.c.seq, s.c.statement).where(and_(*clauses)).order_by(order).limit(limit + 1)
            ).all()
        page = rows[:limit]
        more = query.cursor(page[-1].seq) if len(rows) > limit else None
        return StoredPage([r.statement for r in page], more, [r.seq for r in page])

    def attachments_of(self, statements: Sequence[dict[str, Any]]) -> list[Attachment]:
        """The stored data of every attachment the statements declare without a fileUrl (first use order)."""
        wanted: list[str] = []

        def collect(part: dict[str, Any]) -> None:
            for attachment in part.get("attachments", []):
                if attachment["sha2"] not in wanted:
                    wanted.append(attachment["sha2"])
            if part.get("object", {}).get("objectType") == "SubStatement":
                collect(part["object"])

        for statement in statements:
            collect(statement)
        if not wanted:
            return []
        a = tables.attachments.c
        with self.engine.connect() as connection:
            rows = {
                r.sha2: r
                for r in connection.execute(select(a.sha2, a.content_type, a.content).where(a.sha2.in_(wanted)))
            }
        return [Attachment(sha2, rows[sha2].content_type, rows[sha2].content) for sha2 in wanted if sha2 in rows]

    def activity(self, activity_id: str) -> dict[str, Any]:
        """The Activity object with the LRS's definition of it (just its id when no statement defined it)."""
        a = tables.activities.c
        with self.engine.connect() as connection:
            row = connection.execute(select(a.definition).where(a.id == activity_id)).first()
        activity: dict[str, Any] = {"objectType": "Activity", "id": activity_id}
        if row is not None and row.definition:
            activity["definition"] = row.definition
        return activity

    def definitions(self, activity_ids: Iterable[str]) -> dict[str, Any]:
        """The stored definitions of ``activity_ids`` (canonical format)."""
        ids = list(set(activity_ids))
        if not ids:
            return {}
        a = tables.activities.c
        with self.engine.connect() as connection:
            return {r.id: r.definition for r in connection.execute(select(a.id, a.definition).where(a.id.in_(ids)))}

    def latest_stored(self) -> datetime:
        """Consistent-through: every statement stored up to now is visible (writes commit before they answer)."""
        return datetime.now(timezone.utc)
