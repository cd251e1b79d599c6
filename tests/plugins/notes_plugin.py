"""A third-party plugin that keeps its own table in the store: tutors' notes on solves (``notes_entries``).

It lives outside ``trm_modules`` and ``adapters`` and plugs in only through the public hooks, as a plugin
from another distribution would. ``MIGRATIONS`` holds its Alembic history: ``notes_0001`` creates the table,
``notes_0002`` (a later release of the plugin) adds a column.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, Text, delete, select

from trm_modules import hookimpl
from trm_modules.store.privacy import PersonalData, Subject, jsonable
from trm_modules.store.schema import PluginSchema

MIGRATIONS = Path(__file__).parent / "notes_migrations"
metadata = MetaData()
entries = Table(
    "notes_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("solve_id", String(128), nullable=False),
    Column("learner", String(200), nullable=True),
    Column("text", Text, nullable=False),
)


class NotesPlugin:
    """The plugin object; ``migrations`` lets a test install an older release's history."""

    def __init__(self, migrations: Path = MIGRATIONS, name: str = "notes") -> None:
        self.migrations = migrations
        self.name = name

    @hookimpl
    def trm_store_schemas(self) -> list[PluginSchema]:
        return [PluginSchema(self.name, metadata, self.migrations)]

    @hookimpl
    def trm_privacy_providers(self) -> list[Any]:
        return [NotesPersonalData(self.name)]


class NotesPersonalData:
    """The notes a tutor wrote about a learner (by pseudonym, ``notes_0002``); they carry no date, so they
    stay until the learner is erased or the plugin removed."""

    def __init__(self, name: str) -> None:
        self.name = name

    def declare(self) -> list[PersonalData]:
        return [PersonalData("notes_entries", ("learner", "text"), "Tutors' notes on a learner's solves.")]

    def link(self, connection: Connection, subject: Subject) -> Subject:
        return Subject()

    def _about(self, subject: Subject) -> Any:
        return entries.c.learner.in_(sorted(subject.pseudonyms))

    def export(self, connection: Connection, subject: Subject) -> dict[str, list[Any]]:
        rows = connection.execute(select(entries).where(self._about(subject))) if subject.pseudonyms else []
        return {"notes_entries": [jsonable(row) for row in rows]}

    def erase(self, connection: Connection, subject: Subject) -> dict[str, int]:
        if not subject.pseudonyms:
            return {"notes_entries": 0}
        return {"notes_entries": connection.execute(delete(entries).where(self._about(subject))).rowcount or 0}

    def expire(self, connection: Connection, before: datetime) -> dict[str, int]:
        return {"notes_entries": 0}  # undated: kept until erased
