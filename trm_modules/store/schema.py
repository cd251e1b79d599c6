"""Who owns which tables of the store, and how each owner's migrations run.

The core and every plugin each own a *schema*: SQLAlchemy metadata (the tables it reads and writes)
and a folder of Alembic revision scripts with its own version table, in the manner of Airflow's
external database managers. A plugin contributes one through the ``trm_store_schemas`` hook::

    from pathlib import Path
    from sqlalchemy import MetaData
    from trm_modules import hookimpl
    from trm_modules.store.schema import PluginSchema

    metadata = MetaData()
    ...  # Table("myplugin_things", metadata, ...)

    @hookimpl
    def trm_store_schemas():
        return [PluginSchema("myplugin", metadata, Path(__file__).parent / "migrations")]

``upgrade_all`` (``trm db upgrade``, and a ``Store`` on first use) migrates the core first, then every
plugin schema by name, each to its own head, in one transaction. Two owners naming the same table, or
two schemas with the same name, are refused with ``SchemaClash`` before anything runs. A plugin's
revisions live in its own history (version table ``alembic_version_<name>``), so installing or
removing a plugin never leaves an unknown revision in the core's ``alembic_version``.

``all_metadata`` lists the metadata of the core and every installed plugin: what a backup, a dump
or a privacy sweep must cover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import Connection, MetaData

from .errors import StoreError
from .models import Base

#: Version table of the core's migrations (Alembic's default name; databases already use it).
CORE_VERSION_TABLE = "alembic_version"
CORE_MIGRATIONS = Path(__file__).parent / "migrations" / "versions"
#: Core tables defined outside ``store.models`` (by a higher layer that the store must not import).
CORE_TABLES_ELSEWHERE = frozenset({"api_tokens"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


class SchemaClash(StoreError):
    """Two schema owners name the same table (or the same schema name); nothing was migrated."""


@dataclass(frozen=True)
class PluginSchema:
    """The tables one owner keeps in the store: ``metadata`` and the Alembic ``migrations`` that create them.

    ``name``: lowercase letters, digits and ``_``; it names the version table (``alembic_version_<name>``).
    ``migrations``: a folder of Alembic revision scripts, one linear history whose first revision has
    ``down_revision = None``. A first revision may find its tables already there (created by an older
    release that kept them elsewhere): it should then adopt them (see ``missing_tables``).
    ``extra_tables``: tables this owner creates outside ``metadata`` (counted for clash checks).
    """

    name: str
    metadata: MetaData
    migrations: Path
    extra_tables: frozenset[str] = field(default_factory=frozenset)
    owner: str = ""  # the plugin that contributed it (filled in by ``plugin_schemas``)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise StoreError(f"schema name {self.name!r} must match {_NAME.pattern} (it names a version table)")
        if not Path(self.migrations).is_dir():
            raise StoreError(f"the migrations folder {str(self.migrations)!r} of schema {self.name!r} does not exist")

    @property
    def version_table(self) -> str:
        return CORE_VERSION_TABLE if self.name == "core" else f"{CORE_VERSION_TABLE}_{self.name}"

    @property
    def table_names(self) -> frozenset[str]:
        return frozenset(self.metadata.tables) | self.extra_tables


CORE_SCHEMA = PluginSchema(
    "core", Base.metadata, CORE_MIGRATIONS, extra_tables=CORE_TABLES_ELSEWHERE, owner="trm_modules"
)


def plugin_schemas(pm: Any) -> list[PluginSchema]:
    """The schemas the plugins of ``pm`` contribute (``trm_store_schemas``), ordered by name."""
    from ..plugins import call_hook, has_implementations

    if pm is None or not has_implementations(pm, "trm_store_schemas"):
        return []
    found: list[PluginSchema] = []
    for plugin_name, schemas in call_hook(pm, "trm_store_schemas", with_plugin=True):
        for schema in schemas or []:
            if not isinstance(schema, PluginSchema):
                raise StoreError(
                    f"plugin {plugin_name!r} returned {type(schema).__name__} from trm_store_schemas; "
                    "expected trm_modules.store.schema.PluginSchema objects"
                )
            found.append(
                PluginSchema(
                    schema.name, schema.metadata, schema.migrations, schema.extra_tables, schema.owner or plugin_name
                )
            )
    return sorted(found, key=lambda schema: schema.name)


def store_schemas(pm: Any) -> list[PluginSchema]:
    """The core's schema, then every plugin's; ``SchemaClash`` if two owners name one table or one schema."""
    schemas = [CORE_SCHEMA, *plugin_schemas(pm)]
    check_no_clash(schemas)
    return schemas


def check_no_clash(schemas: Iterable[PluginSchema]) -> None:
    """Refuse two schemas with one name, or one table (version tables included) named by two owners."""
    names: dict[str, PluginSchema] = {}
    tables: dict[str, PluginSchema] = {}
    for schema in schemas:
        if schema.name in names:
            raise SchemaClash(
                f"two store schemas are named {schema.name!r}: one from {names[schema.name].owner!r}, "
                f"one from {schema.owner!r}; rename one (the name keys its version table)"
            )
        names[schema.name] = schema
        for table in sorted(schema.table_names | {schema.version_table}):
            other = tables.get(table)
            if other is not None:
                raise SchemaClash(
                    f"table {table!r} of schema {schema.name!r} (plugin {schema.owner!r}) is already "
                    f"owned by schema {other.name!r} (plugin {other.owner!r}); nothing was migrated. "
                    "A plugin must prefix its tables with its own name"
                )
            tables[table] = schema


def all_metadata(pm: Any = None) -> list[MetaData]:
    """The SQLAlchemy metadata of the core and of every schema the plugins of ``pm`` contribute
    (default: the process's plugin manager): every table a backup or a dump of the store must hold.
    The core's ``api_tokens`` is defined by the server (``trm_modules.server.tokens``)."""
    if pm is None:
        from ..plugins import get_plugin_manager

        pm = get_plugin_manager()
    return [schema.metadata for schema in store_schemas(pm)]


def missing_tables(connection: Connection, names: Iterable[str]) -> list[str]:
    """Of ``names``, the tables not yet in the database at ``connection`` (for first revisions that adopt tables)."""
    from sqlalchemy import inspect

    existing = set(inspect(connection).get_table_names())
    return [name for name in names if name not in existing]


def _script_directory(schema: PluginSchema) -> Any:
    from alembic.script import ScriptDirectory

    folder = str(schema.migrations)
    return ScriptDirectory(folder, version_locations=[folder])


def schema_head(schema: PluginSchema) -> str:
    """The newest revision of ``schema``'s migrations; ``StoreError`` unless its history has exactly one head."""
    heads = _script_directory(schema).get_heads()
    if len(heads) != 1:
        raise StoreError(
            f"the migrations of store schema {schema.name!r} have {len(heads)} heads {heads}; "
            "expected exactly one (re-point a down_revision)"
        )
    return str(heads[0])


def schema_revision(connection: Connection, schema: PluginSchema) -> str | None:
    """The revision ``schema`` is at in the database at ``connection`` (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": schema.version_table})
    return context.get_current_revision()


def schemas_behind(connection: Connection, schemas: Iterable[PluginSchema]) -> list[str]:
    """Names of the schemas not at their head, as ``name (at R, head H)``."""
    behind = []
    for schema in schemas:
        current, head = schema_revision(connection, schema), schema_head(schema)
        if current != head:
            behind.append(f"{schema.name} (at {current or 'nothing'}, head {head})")
    return behind


def migrate_schema(connection: Connection, schema: PluginSchema, revision: str = "head") -> str | None:
    """Run ``schema``'s migrations up to ``revision`` on ``connection`` (inside the caller's transaction)."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    script = _script_directory(schema)
    config = Config()
    config.set_main_option("script_location", str(schema.migrations))

    def upgrade(current: Any, _context: Any) -> Any:
        return script._upgrade_revs(revision, current)

    with EnvironmentContext(config, script, fn=upgrade, destination_rev=revision) as environment:
        environment.configure(
            connection=connection,
            target_metadata=schema.metadata,
            version_table=schema.version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with environment.begin_transaction():
            environment.run_migrations()
    return schema_revision(connection, schema)
