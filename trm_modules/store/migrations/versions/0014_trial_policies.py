"""Trial policies and the audit of the trials they ended (``trm_modules.store.trial_policy``).

``trial_policies``: one analysis policy per module and course (``""``: every course). ``trial_decisions``:
each trial a policy ended (promote or rollback), with its reasons and figures, unique per (module, the
routing revision the trial ended at), so replicas evaluating the same trial record and apply it once.

Revision ID: 0014_trial_policies
Revises: 0013_feedback_kind_voids
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014_trial_policies"
down_revision = "0013_feedback_kind_voids"
branch_labels = None
depends_on = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "trial_policies",
        sa.Column("module", sa.String(200), primary_key=True),
        sa.Column("course", sa.String(200), primary_key=True),
        sa.Column("policy", JSON_DOCUMENT, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "trial_decisions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("module", sa.String(200), nullable=False),
        sa.Column("course", sa.String(200), nullable=False),
        sa.Column("baseline", sa.String(100), nullable=False),
        sa.Column("candidate", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("routing_revision", sa.Integer(), nullable=False),
        sa.Column("applied_revision", sa.Integer(), nullable=False),
        sa.Column("reasons", JSON_DOCUMENT, nullable=False),
        sa.Column("evidence", JSON_DOCUMENT, nullable=False),
        sa.Column("policy", JSON_DOCUMENT, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("module", "routing_revision", name="uq_trial_decisions_module_revision"),
    )
    op.create_index("ix_trial_decisions_decided_at", "trial_decisions", ["decided_at"])


def downgrade() -> None:
    op.drop_index("ix_trial_decisions_decided_at", table_name="trial_decisions")
    op.drop_table("trial_decisions")
    op.drop_table("trial_policies")
