"""Stored responses of the OpenAI Responses API (``POST /v1/responses`` with ``store``).

Revision ID: 0200_responses
Revises: 0140_instances
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0200_responses"
down_revision = "0140_instances"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "api_responses",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("background", sa.Boolean(), nullable=False),
        sa.Column("input_items", JSON, nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_api_responses_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_api_responses"),
    )
    op.create_index("ix_api_responses_user_created", "api_responses", ["user_id", "created_at"])
    op.create_index("ix_api_responses_created_at", "api_responses", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_api_responses_created_at", table_name="api_responses")
    op.drop_index("ix_api_responses_user_created", table_name="api_responses")
    op.drop_table("api_responses")
