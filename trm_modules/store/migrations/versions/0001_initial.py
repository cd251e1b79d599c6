"""Initial schema: installed packages, contexts, solves, feedback, raw xAPI statements.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "installed_packages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("codec", sa.String(100), nullable=False),
        sa.Column("codec_params", JSON_DOCUMENT, nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version", "digest", name="uq_installed_packages_name_version_digest"),
    )
    op.create_index("ix_installed_packages_name", "installed_packages", ["name"])
    op.create_table(
        "contexts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("platform", sa.String(200), nullable=False),
        sa.Column("course", sa.String(200), nullable=False),
        sa.Column("activity", sa.String(200), nullable=False),
        sa.UniqueConstraint("platform", "course", "activity", name="uq_contexts_platform_course_activity"),
    )
    op.create_table(
        "solves",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("module", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column(
            "context_id", sa.Integer(), sa.ForeignKey("contexts.id", name="fk_solves_context_id"), nullable=False
        ),
        sa.Column("learner", sa.String(200), nullable=True),
        sa.Column("input", JSON_DOCUMENT, nullable=False),
        sa.Column("output", JSON_DOCUMENT, nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("device", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_solves_module_created_at", "solves", ["module", "created_at"])
    op.create_index("ix_solves_context_id", "solves", ["context_id"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("solve_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", JSON_DOCUMENT, nullable=True),
        sa.Column("corrected_output", JSON_DOCUMENT, nullable=True),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("voids", sa.String(128), sa.ForeignKey("feedback.id", name="fk_feedback_voids"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('correct', 'incorrect', 'rating', 'correction', 'comment', 'void')", name="ck_feedback_kind"
        ),
    )
    op.create_index("ix_feedback_solve_id", "feedback", ["solve_id"])
    op.create_index("ix_feedback_voids", "feedback", ["voids"])
    op.create_table(
        "xapi_statements",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("statement", JSON_DOCUMENT, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("xapi_statements")
    op.drop_index("ix_feedback_voids", table_name="feedback")
    op.drop_index("ix_feedback_solve_id", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_solves_context_id", table_name="solves")
    op.drop_index("ix_solves_module_created_at", table_name="solves")
    op.drop_table("solves")
    op.drop_table("contexts")
    op.drop_index("ix_installed_packages_name", table_name="installed_packages")
    op.drop_table("installed_packages")
