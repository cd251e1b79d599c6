"""LTI 1.3 tool: platform registrations, the tool's signing keys, login states, used nonces, launches
(read and written by the LTI adapter, adapters/lti/storage.py).

Revision ID: 0006_lti
Revises: 0005_xapi_outbox
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_lti"
down_revision = "0005_xapi_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    op.create_table(
        "lti_tool_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lti_states",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "lti_nonces",
        sa.Column("platform_id", sa.Integer, primary_key=True),
        sa.Column("nonce", sa.String(200), primary_key=True),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
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
    for table in ("lti_launches", "lti_nonces", "lti_states", "lti_tool_keys", "lti_platforms"):
        op.drop_table(table)
