"""Open tool confirmations, so that any instance can answer one.

Revision ID: 0150_tool_confirmations
Revises: 0130_chinese_fulltext
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0150_tool_confirmations"
down_revision = "0130_chinese_fulltext"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_confirmations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_tool_confirmations_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_tool_confirmations"),
    )
    op.create_index("ix_tool_confirmations_user_id", "tool_confirmations", ["user_id"])


def downgrade() -> None:
    op.drop_table("tool_confirmations")
