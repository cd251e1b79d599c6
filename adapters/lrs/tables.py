"""The LRS's tables (SQLAlchemy Core), created by migration ``0004_xapi_lrs`` of the store.

Statements are kept whole (``statement``, as the LRS returns them) next to the columns the
Statement API filters on; ``lrs_statement_agents`` / ``lrs_statement_activities`` index every
agent and activity a statement mentions, with ``related = False`` for the actor / object (the
``agent`` / ``activity`` filters) and ``True`` for the rest (``related_agents`` / ``related_activities``).
``seq`` orders statements by storage: ``stored`` times come from it and paging cursors name it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB

from trm_modules.store.models import UTCDateTime

JsonDocument = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
IRI_LENGTH = 2048
KEY_LENGTH = 512  # an agent's identifying key: "mbox:…", "account:homePage|name", …

metadata = MetaData()

statements = Table(
    "lrs_statements",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False),
    Column("stored", UTCDateTime(), nullable=False),
    Column("verb_id", String(IRI_LENGTH), nullable=False),
    Column("registration", String(36), nullable=True),
    Column("voided", Boolean, nullable=False, default=False),
    Column("voiding_target", String(36), nullable=True),
    Column("ref_target", String(36), nullable=True),
    Column("statement", JsonDocument, nullable=False),
    Column("signature_sha2", String(128), nullable=True),
    UniqueConstraint("id", name="uq_lrs_statements_id"),
    Index("ix_lrs_statements_verb_id", "verb_id"),
    Index("ix_lrs_statements_registration", "registration"),
    Index("ix_lrs_statements_ref_target", "ref_target"),
    Index("ix_lrs_statements_stored", "stored"),
)

statement_agents = Table(
    "lrs_statement_agents",
    metadata,
    Column(
        "statement_seq", Integer, ForeignKey("lrs_statements.seq", name="fk_lrs_statement_agents_seq"), nullable=False
    ),
    Column("agent_key", String(KEY_LENGTH), nullable=False),
    Column("related", Boolean, nullable=False),
    Index("ix_lrs_statement_agents_key", "agent_key", "statement_seq"),
)

statement_activities = Table(
    "lrs_statement_activities",
    metadata,
    Column(
        "statement_seq",
        Integer,
        ForeignKey("lrs_statements.seq", name="fk_lrs_statement_activities_seq"),
        nullable=False,
    ),
    Column("activity_id", String(IRI_LENGTH), nullable=False),
    Column("related", Boolean, nullable=False),
    Index("ix_lrs_statement_activities_id", "activity_id", "statement_seq"),
)

attachments = Table(
    "lrs_attachments",
    metadata,
    Column("sha2", String(128), primary_key=True),
    Column("content_type", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
)

activities = Table(
    "lrs_activities",
    metadata,
    Column("id", String(IRI_LENGTH), primary_key=True),
    Column("definition", JsonDocument, nullable=True),
)

#: State, Activity Profile and Agent Profile documents; missing key parts are "" (UNIQUE needs values).
documents = Table(
    "lrs_documents",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # state | activity-profile | agent-profile
    Column("activity_id", String(IRI_LENGTH), nullable=False),
    Column("agent_key", String(KEY_LENGTH), nullable=False),
    Column("registration", String(36), nullable=False),
    Column("document_id", String(IRI_LENGTH), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("etag", String(64), nullable=False),
    Column("updated", UTCDateTime(), nullable=False),
    UniqueConstraint("kind", "activity_id", "agent_key", "registration", "document_id", name="uq_lrs_documents_key"),
)
