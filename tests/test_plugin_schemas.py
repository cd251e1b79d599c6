"""Plugins own their tables: each contributes SQLAlchemy metadata and Alembic migrations with its own version
table (``trm_store_schemas``); the core's migrations create no adapter table; a clash is refused; a database
written by the release before this (core revision 0007) upgrades in place with every row."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from fixtures.store import BACKENDS, POSTGRES_ENV, database_url
from plugins.notes_plugin import MIGRATIONS, NotesPlugin
from trm_modules.plugins import TRMPluginManager, build_plugin_manager
from trm_modules.store import Store
from trm_modules.store.database import create_store_engine, head_revision, upgrade_schema
from trm_modules.store.schema import (
    CORE_SCHEMA,
    PluginSchema,
    SchemaClash,
    all_metadata,
    schema_head,
    schema_revision,
    store_schemas,
)

DATA = Path(__file__).parent / "data"
CORE_TABLES = {"installed_packages", "contexts", "solves", "feedback", "api_tokens", "dead_letters", "routing_state"}
ADAPTER_SCHEMAS = {"lrs", "lti", "xapi_outbox"}


def table_names(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def manager_with(*plugins) -> TRMPluginManager:
    pm = TRMPluginManager()
    for index, plugin in enumerate(plugins):
        pm.register(plugin, name=f"test-plugin-{index}")
    return pm


def test_the_core_migrations_create_no_adapter_table_in_a_new_database(tmp_path):
    engine = create_store_engine(f"sqlite:///{tmp_path / 'core.sqlite3'}")
    upgrade_schema(engine, schemas=[CORE_SCHEMA])
    names = table_names(engine)
    assert CORE_SCHEMA.table_names <= names and CORE_TABLES <= names
    assert {name for name in names if name.startswith(("lrs_", "lti_", "xapi_"))} == set()
    engine.dispose()


def test_the_built_in_adapters_contribute_their_own_schemas():
    schemas = {schema.name: schema for schema in store_schemas(build_plugin_manager())}
    assert ADAPTER_SCHEMAS <= set(schemas)
    assert {"lrs_statements", "lrs_documents"} <= set(schemas["lrs"].metadata.tables)
    assert set(schemas["lti"].metadata.tables) == {
        "lti_platforms",
        "lti_tool_keys",
        "lti_states",
        "lti_nonces",
        "lti_launches",
    }
    assert set(schemas["xapi_outbox"].metadata.tables) == {"xapi_outbox"}
    assert schemas["lrs"].version_table == "alembic_version_lrs"
    tables = [name for metadata in all_metadata() for name in metadata.tables]
    assert len(tables) == len(set(tables)) and "lrs_statements" in tables and "solves" in tables


@pytest.mark.parametrize("name", sorted(ADAPTER_SCHEMAS))
def test_each_adapter_migration_creates_exactly_its_tables(tmp_path, name):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(str(tmp_path / "store.sqlite3"))
    store.ensure_schema()
    (schema,) = [schema for schema in store.schemas() if schema.name == name]
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"include_name": lambda table, type_, _parent: type_ != "table" or table in schema.metadata.tables},
        )
        assert compare_metadata(context, schema.metadata) == []
        assert schema_revision(connection, schema) == schema_head(schema)
    store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_third_party_plugin_adds_a_table_whose_rows_survive_its_later_upgrade(backend, tmp_path):
    first_release = tmp_path / "notes_migrations"
    first_release.mkdir()
    shutil.copy(MIGRATIONS / "notes_0001_entries.py", first_release)
    with database_url(backend, tmp_path) as url:
        store = Store(url, plugins=manager_with(NotesPlugin(first_release)))
        store.ensure_schema()
        with store.engine.begin() as connection:
            connection.execute(text("INSERT INTO notes_entries (solve_id, text) VALUES ('s-1', 'kept')"))
        store.close()

        later = Store(url, plugins=manager_with(NotesPlugin(MIGRATIONS)))
        assert later.upgrade() == head_revision()
        with later.engine.connect() as connection:
            assert connection.execute(text("SELECT solve_id, text, learner FROM notes_entries")).all() == [
                ("s-1", "kept", None)
            ]
            assert connection.execute(text("SELECT version_num FROM alembic_version_notes")).scalar() == "notes_0002"
            # the plugin's history stays out of the core's version table
            assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [(head_revision(),)]
        later.close()


@pytest.mark.parametrize("table", ["solves", "lrs_statements"])
def test_a_plugin_naming_a_table_another_owner_has_is_refused_before_anything_migrates(tmp_path, table):
    from sqlalchemy import Column, Integer, MetaData, Table

    from trm_modules import hookimpl

    metadata = MetaData()
    Table(table, metadata, Column("id", Integer, primary_key=True))

    class Squatter:
        @hookimpl
        def trm_store_schemas(self):
            return [PluginSchema("squatter", metadata, MIGRATIONS)]

    pm = build_plugin_manager(entry_points=True, paths="")
    pm.register(Squatter(), name="squatter")
    store = Store(str(tmp_path / "store.sqlite3"), plugins=pm)
    with pytest.raises(SchemaClash, match=f"table '{table}' of schema 'squatter'.*already owned by schema"):
        store.ensure_schema()
    assert table_names(store.engine) == set()
    store.close()


def test_two_schemas_with_one_name_are_refused(tmp_path):
    store = Store(str(tmp_path / "store.sqlite3"), plugins=manager_with(NotesPlugin(), NotesPlugin()))
    with pytest.raises(SchemaClash, match="two store schemas are named 'notes'"):
        store.ensure_schema()


# ------------------------------------------------------------------ a database written by the release before
def row_counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
            for table in sorted(table_names(engine))
            if not table.startswith("alembic_version")
        }


def restore_yesterday(backend: str, url: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        shutil.copy(DATA / "store-at-0007.sqlite3", tmp_path / "store.sqlite3")
        return
    from sqlalchemy.engine import make_url

    schema = make_url(url).query["options"].split("search_path=")[1]
    sql = (DATA / "store-at-0007.postgresql.sql").read_text().replace("@SCHEMA@", schema)
    sql = "\n".join(
        line
        for line in sql.splitlines()
        if not line.startswith(("CREATE SCHEMA", "\\", "SET ", "SELECT pg_catalog.set_config"))
    )
    engine = create_engine(os.environ[POSTGRES_ENV])
    with engine.begin() as connection:
        connection.exec_driver_sql(f'SET search_path TO "{schema}"')
        connection.connection.driver_connection.execute(sql)
    engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_at_yesterdays_head_upgrades_in_place_with_every_row(backend, tmp_path):
    with database_url(backend, tmp_path) as url:
        restore_yesterday(backend, url, tmp_path)
        engine = create_store_engine(url)
        before = row_counts(engine)
        assert before["xapi_statements"] == 1 and before["lrs_statements"] == 1 and before["lti_launches"] == 1
        assert before["solves"] == 1 and before["xapi_outbox"] == 1 and before["lrs_documents"] == 1, before
        engine.dispose()

        store = Store(url)
        assert store.upgrade() == head_revision()
        after = row_counts(store.engine)
        assert "xapi_statements" not in after  # the unused core table is dropped by a core migration
        # every other table keeps every row (new core tables since then start empty)
        assert {table: after[table] for table in before if table != "xapi_statements"} == {
            table: count for table, count in before.items() if table != "xapi_statements"
        }
        with store.engine.connect() as connection:
            for schema in store.schemas():
                assert schema_revision(connection, schema) == schema_head(schema), schema.name

        from trm_adapters.lrs.statements import StatementStore
        from trm_adapters.lti.storage import LtiStore

        statement, _ = StatementStore(store.engine).get("0a1e2d3c-0000-4000-8000-000000000007", voided=False)
        assert statement["actor"]["mbox"] == "mailto:yesterday@example.com"
        assert LtiStore(store).find_platform("https://moodle.example", "client-1") is not None
        store.close()
