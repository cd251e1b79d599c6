"""LTI 1.3 tool: platform registrations, the tool's signing keys, login states, used nonces, launches.

The first revision of the store schema ``lti``. A database migrated by a release before issue #21 already has
these tables (the core's revision 0006_lti created them): they are adopted as they are, with every row, and
only missing ones are created.

Revision ID: lti_0001
Revises:
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trm_modules.store.schema import missing_tables

revision = "lti_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("lti_platforms", "lti_tool_keys", "lti_states", "lti_nonces", "lti_launches")


def upgrade() -> None:
    missing = set(missing_tables(op.get_bind(), TABLES))
    if "lti_platforms" in missing:
        op.create_table(
            "lti_platforms",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("issuer", sa.String(500), nullable=False),
            sa.Column("client_id", sa.String(200), nullable=False),
            sa.Column("deployment_ids", sa.JSON, nullable=False),
            sa.Column("auth_login_url", sa.String(1000), nullable=False),
            sa.Column("auth_token_url", sa.String(1000), nullable=False),
            sa.Column("jwks_url", sa.String(1000), nullable=False),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.UniqueConstraint("issuer", "client_id", name="uq_lti_platforms_issuer_client"),
        )
    if "lti_tool_keys" in missing:
        op.create_table(
            "lti_tool_keys",
            sa.Column("kid", sa.String(64), primary_key=True),
            sa.Column("private_pem", sa.Text, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "lti_states" in missing:
        op.create_table(
            "lti_states",
            sa.Column("state", sa.String(64), primary_key=True),
            sa.Column("nonce", sa.String(64), nullable=False),
            sa.Column("platform_id", sa.Integer, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "lti_nonces" in missing:
        op.create_table(
            "lti_nonces",
            sa.Column("platform_id", sa.Integer, primary_key=True),
            sa.Column("nonce", sa.String(200), primary_key=True),
            sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "lti_launches" in missing:
        op.create_table(
            "lti_launches",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("platform_id", sa.Integer, nullable=False),
            sa.Column("deployment_id", sa.String(200), nullable=False),
            sa.Column("context_id", sa.String(200), nullable=True),
            sa.Column("resource_link_id", sa.String(200), nullable=True),
            sa.Column("user_id", sa.String(200), nullable=False),
            sa.Column("module", sa.String(200), nullable=True),
            sa.Column("version", sa.String(100), nullable=True),
            sa.Column("claims", sa.JSON, nullable=False),
            sa.Column("activity", sa.JSON, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
