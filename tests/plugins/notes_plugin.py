"""A third-party plugin that keeps its own table in the store: tutors' notes on solves (``notes_entries``).

It lives outside ``trm_modules`` and ``adapters`` and plugs in only through the public hooks, as a plugin
from another distribution would. ``MIGRATIONS`` holds its Alembic history: ``notes_0001`` creates the table,
``notes_0002`` (a later release of the plugin) adds a column.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, Text

from trm_modules import hookimpl
from trm_modules.store.schema import PluginSchema

MIGRATIONS = Path(__file__).parent / "notes_migrations"
metadata = MetaData()
entries = Table(
    "notes_entries", metadata,
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
