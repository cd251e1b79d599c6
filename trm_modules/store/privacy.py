"""Learners' personal data: what the core and each plugin keep, and export, erasure and expiry of it.

Modelled on Moodle's privacy API: every owner of data about learners (the core, and each plugin through the
``trm_privacy_providers`` hook) is a ``PersonalDataProvider`` that

- **declares** what it keeps (``declare``: table, fields, purpose), shown by ``trm privacy declare``;
- **links** identifiers it knows to be one learner (``link``): an LTI user is the pseudonym of their solves,
  an xAPI ``mailto:`` is an LRS agent and the pseudonym the LRS bridge gives its feedback, a pseudonym is
  an xAPI account name under any platform's homePage;
- **exports**, **erases** and **expires** (older than a cut-off) what it keeps about them.

A learner is named by one identifier (``Subject.parse``): a pseudonym as platforms send it (``u-17``),
an xAPI agent (``mailto:ann@example.com``, ``account:https://lms.example|u-17``) or an LTI user
(``lti:<sub>``). ``PrivacyService`` grows that into every identifier the providers link, then runs one
request over every provider in one transaction, sweeps the local journal files, and writes an audit row
(``privacy_audit``) that records what was done and how many rows, never who it was about.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Protocol, runtime_checkable

from sqlalchemy import Connection, delete, insert, or_, select

from .database import forget_deleted_pages
from .errors import StoreError
from .items import StoreItem, item_type_tag
from .models import DeadLetter, Feedback, LearnerOutcome, LearnerOutcomeSolve, PrivacyAudit, Solve, utcnow

log = logging.getLogger(__name__)
_MAX_LINK_ROUNDS = 6


class PrivacyError(StoreError, ValueError):
    """A privacy request that cannot run (an identifier that names nobody, a bad duration)."""


@dataclass(frozen=True)
class PersonalData:
    """One place a provider keeps personal data: a table (or file), the fields that identify or describe a
    learner, and why it is kept."""

    where: str
    fields: tuple[str, ...]
    purpose: str


@dataclass
class Subject:
    """One learner, as every identifier the providers link: pseudonyms (``solves.learner``, feedback actors),
    xAPI agent keys (``mbox:mailto:…``, ``account:<homePage>|<name>``) and LTI user ids (``sub``)."""

    pseudonyms: set[str] = field(default_factory=set)
    agent_keys: set[str] = field(default_factory=set)
    lti_users: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, identifier: str) -> "Subject":
        """The learner one identifier names (see module docstring)."""
        identifier = identifier.strip()
        if not identifier:
            raise PrivacyError(
                "a learner identifier is needed: a pseudonym, mailto:…, account:<homePage>|<name> or lti:<user id>"
            )
        if identifier.lower().startswith("mailto:"):
            return cls(agent_keys={"mbox:" + identifier.lower()})
        if identifier.startswith("mbox:"):
            return cls(agent_keys={identifier.lower()})
        if identifier.startswith("account:"):
            if "|" not in identifier:
                raise PrivacyError(f"{identifier!r}: an xAPI account is account:<homePage>|<name>")
            return cls(agent_keys={identifier})
        if identifier.startswith("lti:"):
            return cls(lti_users={identifier[4:]})
        return cls(pseudonyms={identifier})

    def merge(self, other: "Subject") -> bool:
        """Add ``other``'s identifiers; True if any was new."""
        before = self.size()
        self.pseudonyms |= other.pseudonyms
        self.agent_keys |= other.agent_keys
        self.lti_users |= other.lti_users
        return self.size() != before

    def size(self) -> int:
        return len(self.pseudonyms) + len(self.agent_keys) + len(self.lti_users)

    def values(self) -> set[str]:
        """Every raw value that identifies the learner (to look for in text: journal lines, documents)."""
        raw = set(self.pseudonyms) | set(self.lti_users)
        for key in self.agent_keys:
            kind, _, value = key.partition(":")
            raw.add(value.rsplit("|", 1)[1] if kind == "account" else value)
        return {value for value in raw if value}

    def mentions_agent(self, agent: Any) -> bool:
        """Whether an xAPI agent (a statement's actor) is this learner."""
        if not isinstance(agent, dict):
            return False
        if agent.get("mbox") and "mbox:" + str(agent["mbox"]).lower() in self.agent_keys:
            return True
        if agent.get("mbox_sha1sum") and "sha1:" + str(agent["mbox_sha1sum"]).lower() in self.agent_keys:
            return True
        account = agent.get("account")
        if isinstance(account, dict):
            key = f"account:{account.get('homePage', '')}|{account.get('name', '')}"
            return key in self.agent_keys or str(account.get("name")) in self.pseudonyms
        return False

    def derived_pseudonyms(self) -> set[str]:
        """Pseudonyms implied by the identifiers alone: an account's name, ``sha1:`` of a mailbox (what the LRS
        bridge names a feedback actor), an LTI user id (what LTI launches put in ``solves.learner``)."""
        found = set(self.lti_users)
        for key in self.agent_keys:
            if key.startswith("account:"):
                found.add(key.rsplit("|", 1)[1])
            elif key.startswith("mbox:"):
                found.add("sha1:" + hashlib.sha1(key[5:].encode()).hexdigest())
        return found

    def derived_agent_keys(self) -> set[str]:
        """Agent keys implied by the identifiers alone: the ``mbox_sha1sum`` form of each mailbox."""
        return {
            "sha1:" + hashlib.sha1(key[5:].encode()).hexdigest() for key in self.agent_keys if key.startswith("mbox:")
        }


@runtime_checkable
class PersonalDataProvider(Protocol):
    """What the core and each plugin implement for learners' data (``trm_privacy_providers``)."""

    name: str

    def declare(self) -> list[PersonalData]:
        """What this provider keeps about learners."""
        ...

    def link(self, connection: Connection, subject: Subject) -> Subject:
        """Identifiers this provider knows to belong to ``subject`` (may be empty)."""
        ...

    def export(self, connection: Connection, subject: Subject) -> dict[str, list[Any]]:
        """What this provider keeps about ``subject``: place → JSON-ready rows."""
        ...

    def erase(self, connection: Connection, subject: Subject) -> dict[str, int]:
        """Remove what this provider keeps about ``subject``; place → rows removed (idempotent)."""
        ...

    def expire(self, connection: Connection, before: datetime) -> dict[str, int]:
        """Remove personal data recorded before ``before``; place → rows removed."""
        ...


def jsonable(row: Any) -> dict[str, Any]:
    """A database row as a JSON-ready dict (datetimes as ISO 8601, bytes as text or hex)."""
    out = {}
    for key, value in row._mapping.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, (bytes, memoryview)):
            raw = bytes(value)
            try:
                value = raw.decode("utf-8")
            except UnicodeDecodeError:
                value = raw.hex()
        out[str(key)] = value
    return out


def mentions_learner(document: Any, subject: Subject) -> bool:
    """Whether any agent anywhere in a JSON document (an xAPI statement: actor, object, context, authority…)
    is ``subject``."""
    stack = [document]
    while stack:
        part = stack.pop()
        if isinstance(part, dict):
            if subject.mentions_agent(part):
                return True
            stack.extend(part.values())
        elif isinstance(part, list):
            stack.extend(part)
    return False


def _record_mentions(document: Any, subject: Subject) -> bool:
    """Whether a journaled / dead-lettered item (``{"t": …, "r": record}``) is about ``subject``."""
    if not isinstance(document, dict):
        return False
    record = document.get("r")
    if not isinstance(record, dict):
        return False
    found = record.get("context")
    context: dict[str, Any] = found if isinstance(found, dict) else {}
    if context.get("learner") in subject.pseudonyms or subject.mentions_agent(context.get("actor")):
        return True
    return record.get("actor") in subject.pseudonyms or record.get("learner") in subject.pseudonyms  # feedback, outcome


def line_mentions(line: str, subject: Subject) -> bool:
    """Whether a journal line or a dead letter's entry is about ``subject`` (parsed; text as a fallback)."""
    try:
        document = json.loads(line)
    except ValueError:
        document = None
    if isinstance(document, dict) and "line" in document and "r" not in document:  # a rejected-file wrapper
        return line_mentions(str(document["line"]), subject)
    if _record_mentions(document, subject):
        return True
    return document is None and any(value in line for value in subject.values() if len(value) >= 3)


class CorePersonalData:
    """The core's personal data: solves (learner pseudonym, xAPI actor in the context, the learner's input),
    feedback (actor pseudonym, corrections), learner outcomes (pseudonym, course, activity, score, and the
    solves asked for), dead letters (whole items) and the journal files."""

    name = "core"

    def declare(self) -> list[PersonalData]:
        return [
            PersonalData(
                "solves",
                ("learner", "input", "output", "created_at"),
                "Each use of a module by a learner: what they asked, what the module answered.",
            ),
            PersonalData(
                "feedback",
                ("actor", "value", "corrected_output", "created_at"),
                "Outcome feedback on a solve, from the learner, a teacher or a platform.",
            ),
            PersonalData(
                "learner_outcomes",
                (
                    "learner",
                    "course",
                    "activity",
                    "score",
                    "max_score",
                    "normalised_score",
                    "success",
                    "asked",
                    "created_at",
                ),
                "A learner's own result on an activity, to relate learning to asking a module.",
            ),
            PersonalData(
                "learner_outcome_solves",
                ("outcome_id", "solve_id"),
                "Which solves the learner asked for while doing the activity of an outcome.",
            ),
            PersonalData(
                "dead_letters", ("entry",), "Solves, feedback and outcomes the database refused, kept with the reason."
            ),
            PersonalData(
                "journal files (data directory)",
                ("solve, feedback and outcome records",),
                "Items waiting for the database while it was away.",
            ),
        ]

    def link(self, connection: Connection, subject: Subject) -> Subject:
        return Subject(pseudonyms=subject.derived_pseudonyms(), agent_keys=subject.derived_agent_keys())

    def _solve_ids(self, connection: Connection, subject: Subject) -> list[str]:
        if not subject.pseudonyms:
            return []
        return list(connection.scalars(select(Solve.id).where(Solve.learner.in_(subject.pseudonyms))))

    def _feedback_filter(self, solve_ids: list[str], subject: Subject) -> Any:
        clauses = []
        if solve_ids:
            clauses.append(Feedback.solve_id.in_(solve_ids))
        if subject.pseudonyms:
            clauses.append(Feedback.actor.in_(subject.pseudonyms))
        return or_(*clauses) if clauses else None

    def _outcome_ids(self, connection: Connection, subject: Subject) -> list[str]:
        if not subject.pseudonyms:
            return []
        return list(connection.scalars(select(LearnerOutcome.id).where(LearnerOutcome.learner.in_(subject.pseudonyms))))

    def _dead_letters(self, connection: Connection, subject: Subject) -> list[Any]:
        rows = connection.execute(select(DeadLetter.__table__)).all()
        return [row for row in rows if line_mentions(row.entry, subject)]

    def export(self, connection: Connection, subject: Subject) -> dict[str, list[Any]]:
        solve_ids = self._solve_ids(connection, subject)
        found: dict[str, list[Any]] = {
            "solves": [
                jsonable(row) for row in connection.execute(select(Solve.__table__).where(Solve.id.in_(solve_ids)))
            ]
            if solve_ids
            else []
        }
        where = self._feedback_filter(solve_ids, subject)
        found["feedback"] = (
            [jsonable(row) for row in connection.execute(select(Feedback.__table__).where(where))]
            if where is not None
            else []
        )
        outcome_ids = self._outcome_ids(connection, subject)
        asked: dict[str, list[str]] = {}
        for chunk in _chunks(outcome_ids):
            for link in connection.execute(
                select(LearnerOutcomeSolve.__table__).where(LearnerOutcomeSolve.outcome_id.in_(chunk))
            ):
                asked.setdefault(link.outcome_id, []).append(link.solve_id)
        found["learner_outcomes"] = [
            {**jsonable(row), "solve_ids": sorted(asked.get(row.id, []))}
            for chunk in _chunks(outcome_ids)
            for row in connection.execute(select(LearnerOutcome.__table__).where(LearnerOutcome.id.in_(chunk)))
        ]
        found["dead_letters"] = [jsonable(row) for row in self._dead_letters(connection, subject)]
        return found

    def erase(self, connection: Connection, subject: Subject) -> dict[str, int]:
        solve_ids = self._solve_ids(connection, subject)
        removed = {"solves": 0, "feedback": 0, "learner_outcomes": 0, "dead_letters": 0}
        where = self._feedback_filter(solve_ids, subject)
        if where is not None:
            removed["feedback"] = _delete_feedback(
                connection, list(connection.scalars(select(Feedback.id).where(where)))
            )
        for chunk in _chunks(solve_ids):
            removed["solves"] += connection.execute(delete(Solve).where(Solve.id.in_(chunk))).rowcount or 0
        removed["learner_outcomes"] = _delete_outcomes(connection, self._outcome_ids(connection, subject))
        letters = [row.id for row in self._dead_letters(connection, subject)]
        for chunk in _chunks(letters):
            removed["dead_letters"] += (
                connection.execute(delete(DeadLetter).where(DeadLetter.id.in_(chunk))).rowcount or 0
            )
        return removed

    def expire(self, connection: Connection, before: datetime) -> dict[str, int]:
        old_solves = list(connection.scalars(select(Solve.id).where(Solve.created_at < before)))
        feedback_ids = list(
            connection.scalars(
                select(Feedback.id).where(
                    or_(Feedback.created_at < before, Feedback.solve_id.in_(old_solves))
                    if old_solves
                    else Feedback.created_at < before
                )
            )
        )
        removed = {"feedback": _delete_feedback(connection, feedback_ids), "solves": 0}
        for chunk in _chunks(old_solves):
            removed["solves"] += connection.execute(delete(Solve).where(Solve.id.in_(chunk))).rowcount or 0
        removed["learner_outcomes"] = _delete_outcomes(
            connection, list(connection.scalars(select(LearnerOutcome.id).where(LearnerOutcome.created_at < before)))
        )
        removed["dead_letters"] = (
            connection.execute(delete(DeadLetter).where(DeadLetter.created_at < before)).rowcount or 0
        )
        return removed


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _delete_feedback(connection: Connection, ids: list[str]) -> int:
    """Delete feedback rows ``ids`` and the retractions (``void``) naming them (foreign key ``voids``)."""
    removed = 0
    pending = list(ids)
    while pending:
        voiding = list(connection.scalars(select(Feedback.id).where(Feedback.voids.in_(pending[:500]))))
        pending = [entry for entry in voiding if entry not in ids]
        ids = ids + pending
    for chunk in _chunks(list(reversed(ids))):
        removed += connection.execute(delete(Feedback).where(Feedback.id.in_(chunk))).rowcount or 0
    return removed


def _delete_outcomes(connection: Connection, ids: list[str]) -> int:
    """Delete learner outcomes ``ids`` with their links to solves (no reliance on ``ON DELETE CASCADE``)."""
    removed = 0
    for chunk in _chunks(ids):
        connection.execute(delete(LearnerOutcomeSolve).where(LearnerOutcomeSolve.outcome_id.in_(chunk)))
        removed += connection.execute(delete(LearnerOutcome).where(LearnerOutcome.id.in_(chunk))).rowcount or 0
    return removed


def parse_duration(text: str) -> timedelta:
    """``365d``, ``12w``, ``48h`` or a plain number of days."""
    text = text.strip().lower()
    units = {"d": 1.0, "w": 7.0, "h": 1 / 24}
    unit = text[-1] if text and text[-1] in units else "d"
    number = text[:-1] if text and text[-1] in units else text
    try:
        days = float(number) * units[unit]
    except ValueError:
        raise PrivacyError(f"{text!r} is not a duration; expected e.g. 365d, 12w or 48h") from None
    if days <= 0:
        raise PrivacyError(f"{text!r}: the duration must be positive")
    return timedelta(days=days)


@dataclass
class PrivacyReport:
    """What one request did: its audit id, the providers' counts (place → rows), and the export if any."""

    request_id: str
    action: str
    counts: dict[str, dict[str, int]]
    document: dict[str, Any] | None = None


class PrivacyService:
    """Export, erase and expire learners' data across the core and every plugin of a store.

    ``journal_paths``: journal files to sweep (default: the store's default journal and its rejected file).
    """

    def __init__(
        self,
        store: Any,
        providers: list[PersonalDataProvider] | None = None,
        journal_paths: Iterable[Path] | None = None,
    ) -> None:
        self.store = store
        self.providers = providers if providers is not None else privacy_providers(store)
        if journal_paths is None:
            from .journal import default_journal_path

            journal = default_journal_path(store.url)
            journal_paths = [journal, journal.with_name(journal.stem + ".rejected.jsonl")]
        self.journal_paths = [Path(path) for path in journal_paths]

    def declarations(self) -> dict[str, list[PersonalData]]:
        return {provider.name: provider.declare() for provider in self.providers}

    def resolve(self, connection: Connection, identifier: str) -> Subject:
        """Every identifier the providers link to ``identifier``."""
        subject = Subject.parse(identifier)
        for _ in range(_MAX_LINK_ROUNDS):
            grew = False
            for provider in self.providers:
                grew |= subject.merge(provider.link(connection, subject))
            if not grew:
                break
        return subject

    def export(self, identifier: str) -> PrivacyReport:
        """One JSON-ready document of everything kept about the learner ``identifier``."""
        self.store.ensure_schema()
        with self.store.engine.begin() as connection:
            subject = self.resolve(connection, identifier)
            data = {provider.name: provider.export(connection, subject) for provider in self.providers}
            journal = [line for line in self._journal_lines() if line_mentions(line, subject)]
            data.setdefault("core", {})["journal"] = [json.loads(line) for line in journal if _is_json(line)]
            counts = {name: {place: len(rows) for place, rows in places.items()} for name, places in data.items()}
            request_id = self._audit(connection, "export", counts)
        document = {
            "request": request_id,
            "exported_at": utcnow().isoformat(),
            "identifiers": {
                "pseudonyms": sorted(subject.pseudonyms),
                "xapi_agents": sorted(subject.agent_keys),
                "lti_users": sorted(subject.lti_users),
            },
            "declared": {name: [vars(item) for item in items] for name, items in self.declarations().items()},
            "data": data,
        }
        return PrivacyReport(request_id, "export", counts, document)

    def erase(self, identifier: str) -> PrivacyReport:
        """Remove everything kept about the learner ``identifier`` (every table, journal, dead letters, outbox).
        Idempotent: erasing again removes nothing and still records the request."""
        self.store.ensure_schema()
        with self.store.engine.begin() as connection:
            subject = self.resolve(connection, identifier)
            counts = {provider.name: provider.erase(connection, subject) for provider in self.providers}
            counts.setdefault("core", {})["journal"] = self._sweep_journals(lambda line: line_mentions(line, subject))
            request_id = self._audit(connection, "erase", counts)
        forget_deleted_pages(self.store.engine)
        return PrivacyReport(request_id, "erase", counts)

    def expire(self, older_than: timedelta, now: datetime | None = None) -> PrivacyReport:
        """Remove personal data recorded more than ``older_than`` ago, in every provider."""
        before = (now or utcnow()) - older_than
        self.store.ensure_schema()
        with self.store.engine.begin() as connection:
            counts = {provider.name: provider.expire(connection, before) for provider in self.providers}
            request_id = self._audit(
                connection, "expire", counts, {"older_than_days": older_than.total_seconds() / 86400}
            )
        forget_deleted_pages(self.store.engine)
        return PrivacyReport(request_id, "expire", counts)

    def _audit(
        self,
        connection: Connection,
        action: str,
        counts: dict[str, dict[str, int]],
        extra: dict[str, Any] | None = None,
    ) -> str:
        request_id = uuid.uuid4().hex
        connection.execute(
            insert(PrivacyAudit).values(
                id=request_id,
                action=action,
                created_at=utcnow(),
                counts={**counts, **({"request": extra} if extra else {})},
            )
        )
        log.info("privacy %s %s: %s", action, request_id, counts)
        return request_id

    def _journal_lines(self) -> list[str]:
        lines: list[str] = []
        for path in self.journal_paths:
            try:
                lines.extend(line for line in path.read_text("utf-8", "backslashreplace").splitlines() if line.strip())
            except FileNotFoundError:
                continue
        return lines

    def _sweep_journals(self, matches: Any) -> int:
        from .journal import Journal

        removed = 0
        for path in self.journal_paths:
            if path.exists():
                removed += Journal(path).remove_lines(matches, path)
        return removed


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def privacy_providers(store: Any) -> list[PersonalDataProvider]:
    """The core's provider, then those of the store's plugins (``trm_privacy_providers``)."""
    from ..plugins import call_hook

    providers: list[PersonalDataProvider] = [CorePersonalData()]
    pm = store.plugin_manager()
    for plugin_name, found in reversed(call_hook(pm, "trm_privacy_providers", with_plugin=True)):
        for provider in found or []:
            if not isinstance(provider, PersonalDataProvider):
                raise StoreError(
                    f"plugin {plugin_name!r} returned {type(provider).__name__} from "
                    "trm_privacy_providers; expected PersonalDataProvider objects"
                )
            providers.append(provider)
    return providers


def records_mention(item: StoreItem, subject: Subject) -> bool:
    """Whether a store item (solve, feedback, outcome) is about ``subject`` (for callers holding items in memory)."""
    document = {"t": item_type_tag(item), "r": item.model_dump(mode="json")}
    return _record_mentions(document, subject)


__all__ = [
    "CorePersonalData",
    "PersonalData",
    "PersonalDataProvider",
    "PrivacyError",
    "PrivacyReport",
    "PrivacyService",
    "Subject",
    "jsonable",
    "line_mentions",
    "mentions_learner",
    "parse_duration",
    "privacy_providers",
    "records_mention",
]
