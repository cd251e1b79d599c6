"""Insights: the solve's course (repeated from its context), cohort, input digest and effective verdict (kept by the store), a covering
index for reports, and learner outcomes with the solves each learner asked for.

``verdict`` is backfilled from the effective feedback already stored; ``input_digest`` of existing
solves stays NULL (their failing inputs are grouped by the input itself, see ``store.insights``).

Revision ID: 0011_insights
Revises: 0010_privacy_audit
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_insights"
down_revision = "0010_privacy_audit"
branch_labels = None
depends_on = None

#: The latest effective verdict of the solve in the outer query (as ``store.queries`` defines it).
BACKFILL = """
UPDATE solves SET verdict = (
    SELECT CASE f.kind WHEN 'correct' THEN 1 ELSE 0 END FROM feedback f
    WHERE f.solve_id = solves.id AND f.kind IN ('correct', 'incorrect', 'correction')
      AND NOT EXISTS (SELECT 1 FROM feedback v WHERE v.kind = 'void' AND v.voids = f.id)
    ORDER BY f.created_at DESC, f.id DESC LIMIT 1)
WHERE id IN (SELECT solve_id FROM feedback)
"""


def upgrade() -> None:
    with op.batch_alter_table("solves") as batch:
        batch.add_column(sa.Column("course", sa.String(200), nullable=True))
        batch.add_column(sa.Column("cohort", sa.String(200), nullable=True))
        batch.add_column(sa.Column("input_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("verdict", sa.SmallInteger(), nullable=True))
    op.execute(BACKFILL)
    op.execute("UPDATE solves SET course = (SELECT c.course FROM contexts c WHERE c.id = solves.context_id)")
    op.create_index(
        "ix_solves_report", "solves", ["module", "version", "course", "cohort", "learner", "verdict", "created_at"]
    )
    op.create_table(
        "learner_outcomes",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("learner", sa.String(200), nullable=False),
        sa.Column("course", sa.String(200), nullable=False),
        sa.Column("activity", sa.String(200), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("max_score", sa.Float(), nullable=True),
        sa.Column("normalised_score", sa.Float(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("asked", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_learner_outcomes_course_learner", "learner_outcomes", ["course", "learner"])
    op.create_index("ix_learner_outcomes_learner", "learner_outcomes", ["learner"])
    op.create_table(
        "learner_outcome_solves",
        sa.Column(
            "outcome_id",
            sa.String(128),
            sa.ForeignKey("learner_outcomes.id", name="fk_learner_outcome_solves_outcome_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("solve_id", sa.String(128), primary_key=True),
    )
    op.create_index("ix_learner_outcome_solves_solve_id", "learner_outcome_solves", ["solve_id"])


def downgrade() -> None:
    op.drop_table("learner_outcome_solves")
    op.drop_table("learner_outcomes")
    op.drop_index("ix_solves_report", table_name="solves")
    with op.batch_alter_table("solves") as batch:
        batch.drop_column("verdict")
        batch.drop_column("input_digest")
        batch.drop_column("cohort")
        batch.drop_column("course")
