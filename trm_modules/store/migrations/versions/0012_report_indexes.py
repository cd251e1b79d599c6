"""Report indexes: ``ix_solves_report`` covers every column the insights sections read, and feedback is
indexed by kind, so a 1,000,000-solve report is index-only scans (``bench/bench_insights.py``).

Revision ID: 0012_report_indexes
Revises: 0011_insights
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0012_report_indexes"
down_revision = "0011_insights"
branch_labels = None
depends_on = None

REPORT_COLUMNS = ["module", "version", "course", "cohort", "learner", "verdict", "created_at"]
SECTION_COLUMNS = ["valid", "steps", "latency_ms", "confidence", "input_digest"]


def upgrade() -> None:
    op.drop_index("ix_solves_report", table_name="solves")
    op.create_index("ix_solves_report", "solves", REPORT_COLUMNS + SECTION_COLUMNS)
    op.create_index("ix_feedback_kind_solve_id", "feedback", ["kind", "solve_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_kind_solve_id", table_name="feedback")
    op.drop_index("ix_solves_report", table_name="solves")
    op.create_index("ix_solves_report", "solves", REPORT_COLUMNS)
