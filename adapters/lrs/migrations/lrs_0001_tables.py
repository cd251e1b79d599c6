"""The LRS's tables: statements with their filter indexes, attachments, activities, and State / Activity
Profile / Agent Profile documents.

The first revision of the store schema ``lrs``. A database migrated by a release before issue #21 already has
these tables (the core's revision 0004_xapi_lrs created them): they are adopted as they are, with every row,
and only missing ones are created.

Revision ID: lrs_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from trm_modules.store.schema import missing_tables

revision = "lrs_0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
IRI = 2048
KEY = 512
TABLES = (
    "lrs_statements",
    "lrs_statement_agents",
    "lrs_statement_activities",
    "lrs_attachments",
    "lrs_activities",
    "lrs_documents",
)


def upgrade() -> None:
    missing = set(missing_tables(op.get_bind(), TABLES))
    if "lrs_statements" in missing:
        op.create_table(
            "lrs_statements",
            sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("id", sa.String(36), nullable=False),
            sa.Column("stored", sa.DateTime(timezone=True), nullable=False),
            sa.Column("verb_id", sa.String(IRI), nullable=False),
            sa.Column("registration", sa.String(36), nullable=True),
            sa.Column("voided", sa.Boolean(), nullable=False),
            sa.Column("voiding_target", sa.String(36), nullable=True),
            sa.Column("ref_target", sa.String(36), nullable=True),
            sa.Column("statement", JSON_DOCUMENT, nullable=False),
            sa.Column("signature_sha2", sa.String(128), nullable=True),
            sa.UniqueConstraint("id", name="uq_lrs_statements_id"),
        )
        op.create_index("ix_lrs_statements_verb_id", "lrs_statements", ["verb_id"])
        op.create_index("ix_lrs_statements_registration", "lrs_statements", ["registration"])
        op.create_index("ix_lrs_statements_ref_target", "lrs_statements", ["ref_target"])
        op.create_index("ix_lrs_statements_stored", "lrs_statements", ["stored"])
    for name, column, length in (("agents", "agent_key", KEY), ("activities", "activity_id", IRI)):
        if f"lrs_statement_{name}" not in missing:
            continue
        op.create_table(
            f"lrs_statement_{name}",
            sa.Column(
                "statement_seq",
                sa.Integer(),
                sa.ForeignKey("lrs_statements.seq", name=f"fk_lrs_statement_{name}_seq"),
                nullable=False,
            ),
            sa.Column(column, sa.String(length), nullable=False),
            sa.Column("related", sa.Boolean(), nullable=False),
        )
        op.create_index(
            f"ix_lrs_statement_{name}_{'key' if name == 'agents' else 'id'}",
            f"lrs_statement_{name}",
            [column, "statement_seq"],
        )
    if "lrs_attachments" in missing:
        op.create_table(
            "lrs_attachments",
            sa.Column("sha2", sa.String(128), primary_key=True),
            sa.Column("content_type", sa.String(255), nullable=False),
            sa.Column("content", sa.LargeBinary(), nullable=False),
        )
    if "lrs_activities" in missing:
        op.create_table(
            "lrs_activities",
            sa.Column("id", sa.String(IRI), primary_key=True),
            sa.Column("definition", JSON_DOCUMENT, nullable=True),
        )
    if "lrs_documents" in missing:
        op.create_table(
            "lrs_documents",
            sa.Column("pk", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("activity_id", sa.String(IRI), nullable=False),
            sa.Column("agent_key", sa.String(KEY), nullable=False),
            sa.Column("registration", sa.String(36), nullable=False),
            sa.Column("document_id", sa.String(IRI), nullable=False),
            sa.Column("content_type", sa.String(255), nullable=False),
            sa.Column("content", sa.LargeBinary(), nullable=False),
            sa.Column("etag", sa.String(64), nullable=False),
            sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
            sa.UniqueConstraint(
                "kind", "activity_id", "agent_key", "registration", "document_id", name="uq_lrs_documents_key"
            ),
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
