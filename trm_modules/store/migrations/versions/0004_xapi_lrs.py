"""The xAPI LRS (adapter ``adapters/lrs``): statements with their filter indexes, attachments,
activities, and State / Activity Profile / Agent Profile documents.

Revision ID: 0004_xapi_lrs
Revises: 0003_dead_letters
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_xapi_lrs"
down_revision = "0003_dead_letters"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
IRI = 2048
KEY = 512


def upgrade() -> None:
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
        op.create_table(
            f"lrs_statement_{name}",
            sa.Column("statement_seq", sa.Integer(),
                      sa.ForeignKey("lrs_statements.seq", name=f"fk_lrs_statement_{name}_seq"), nullable=False),
            sa.Column(column, sa.String(length), nullable=False),
            sa.Column("related", sa.Boolean(), nullable=False),
        )
        op.create_index(f"ix_lrs_statement_{name}_{'key' if name == 'agents' else 'id'}", f"lrs_statement_{name}",
                        [column, "statement_seq"])
    op.create_table(
        "lrs_attachments",
        sa.Column("sha2", sa.String(128), primary_key=True),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "lrs_activities",
        sa.Column("id", sa.String(IRI), primary_key=True),
        sa.Column("definition", JSON_DOCUMENT, nullable=True),
    )
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
        sa.UniqueConstraint("kind", "activity_id", "agent_key", "registration", "document_id",
                            name="uq_lrs_documents_key"),
    )


def downgrade() -> None:
    for table in ("lrs_documents", "lrs_activities", "lrs_attachments", "lrs_statement_activities",
                  "lrs_statement_agents", "lrs_statements"):
        op.drop_table(table)
