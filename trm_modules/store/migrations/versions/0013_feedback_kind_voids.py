"""Feedback indexed by (kind, voids) instead of (kind, solve_id).

With ``ix_feedback_kind_solve_id`` (0012), SQLite without statistics answered "is this event voided"
(``kind = 'void' AND voids = ?``) from the ``kind`` prefix, stepping through every void event for
each rating or verdict checked: quadratic in a large store, on the report and on the write path
(``refresh_verdicts``). ``(kind, voids)`` serves the ratings (by kind) and the void check (both columns).

Revision ID: 0013_feedback_kind_voids
Revises: 0012_report_indexes
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0013_feedback_kind_voids"
down_revision = "0012_report_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_feedback_kind_solve_id", table_name="feedback")
    op.create_index("ix_feedback_kind_voids", "feedback", ["kind", "voids"])


def downgrade() -> None:
    op.drop_index("ix_feedback_kind_voids", table_name="feedback")
    op.create_index("ix_feedback_kind_solve_id", "feedback", ["kind", "solve_id"])
