"""The LRS's personal data (``trm_privacy_providers``): statements about a learner (as actor or anywhere
else in the statement), their index rows and attachments, and the State / Agent Profile documents kept
under the learner's agent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, cast, delete, select

from trm_modules.store.privacy import PersonalData, Subject, jsonable, mentions_learner

from . import tables

_S, _A, _D = tables.statements.c, tables.statement_agents.c, tables.documents.c


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class LrsPersonalData:
    """Statements, documents and attachments of the LRS (``adapters/lrs/tables.py``)."""

    name = "lrs"

    def declare(self) -> list[PersonalData]:
        return [
            PersonalData(
                "lrs_statements",
                ("statement.actor", "statement.result", "statement.context"),
                "xAPI statements learning content sent about the learner (answers, scores, progress).",
            ),
            PersonalData("lrs_statement_agents", ("agent_key",), "Which agents each statement mentions (queries)."),
            PersonalData(
                "lrs_documents",
                ("agent_key", "content"),
                "State and Agent Profile documents content keeps per learner (e.g. progress).",
            ),
            PersonalData("lrs_attachments", ("content",), "Files attached to the learner's statements."),
        ]

    def link(self, connection: Connection, subject: Subject) -> Subject:
        """An account under any homePage whose name is one of the learner's pseudonyms is the learner."""
        keys: set[str] = set()
        for pseudonym in subject.pseudonyms:
            pattern = "account:%|" + _escape_like(pseudonym)
            for column in (_A.agent_key, _D.agent_key):
                keys |= set(connection.scalars(select(column).where(column.like(pattern, escape="\\")).distinct()))
        return Subject(agent_keys=keys)

    def _statement_seqs(self, connection: Connection, subject: Subject) -> list[int]:
        if not subject.agent_keys:
            return []
        indexed = set(connection.scalars(select(_A.statement_seq).where(_A.agent_key.in_(subject.agent_keys))))
        return sorted(indexed)

    def _documents(self, subject: Subject) -> Any:
        return _D.agent_key.in_(subject.agent_keys) if subject.agent_keys else None

    def export(self, connection: Connection, subject: Subject) -> dict[str, list[Any]]:
        seqs = self._statement_seqs(connection, subject)
        statements = [row.statement for row in connection.execute(select(_S.statement).where(_S.seq.in_(seqs)))]
        where = self._documents(subject)
        documents = (
            [
                jsonable(row)
                for row in connection.execute(
                    select(
                        _D.kind,
                        _D.activity_id,
                        _D.agent_key,
                        _D.registration,
                        _D.document_id,
                        _D.content_type,
                        _D.content,
                        _D.updated,
                    ).where(where)
                )
            ]
            if where is not None
            else []
        )
        return {"lrs_statements": statements, "lrs_documents": documents}

    def _erase_statements(self, connection: Connection, seqs: list[int]) -> dict[str, int]:
        removed = {"lrs_statements": 0, "lrs_attachments": 0}
        if not seqs:
            return removed
        statements = [row.statement for row in connection.execute(select(_S.statement).where(_S.seq.in_(seqs)))]
        hashes = {
            attachment.get("sha2")
            for statement in statements
            for attachment in (statement.get("attachments") or [])
            if isinstance(attachment, dict)
        }
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            connection.execute(delete(tables.statement_agents).where(_A.statement_seq.in_(chunk)))
            connection.execute(
                delete(tables.statement_activities).where(tables.statement_activities.c.statement_seq.in_(chunk))
            )
            removed["lrs_statements"] += (
                connection.execute(delete(tables.statements).where(_S.seq.in_(chunk))).rowcount or 0
            )
        for sha2 in filter(None, hashes):  # an attachment no remaining statement refers to goes too
            still_used = connection.execute(
                select(_S.seq)
                .where(cast(_S.statement, String).like(f"%{_escape_like(str(sha2))}%", escape="\\"))
                .limit(1)
            ).first()
            if still_used is None:
                removed["lrs_attachments"] += (
                    connection.execute(delete(tables.attachments).where(tables.attachments.c.sha2 == sha2)).rowcount
                    or 0
                )
        return removed

    def erase(self, connection: Connection, subject: Subject) -> dict[str, int]:
        seqs = self._statement_seqs(connection, subject)
        # a statement naming the learner only where the index does not look (e.g. an extension) goes too
        seqs += [
            row.seq
            for row in connection.execute(select(_S.seq, _S.statement).where(_S.seq.not_in(seqs)))
            if mentions_learner(row.statement, subject)
        ]
        removed = self._erase_statements(connection, sorted(set(seqs)))
        where = self._documents(subject)
        removed["lrs_documents"] = (
            connection.execute(delete(tables.documents).where(where)).rowcount or 0 if where is not None else 0
        )
        return removed

    def expire(self, connection: Connection, before: datetime) -> dict[str, int]:
        seqs = list(connection.scalars(select(_S.seq).where(_S.stored < before)))
        removed = self._erase_statements(connection, seqs)
        removed["lrs_documents"] = connection.execute(delete(tables.documents).where(_D.updated < before)).rowcount or 0
        return removed
