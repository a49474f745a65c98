"""Thumbs up/down and edited answers (``message_feedback``), one row per answer and user.

Revision ID: 0220_message_feedback
Revises: 0210_response_instances
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0220_message_feedback"
down_revision = "0210_response_instances"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_feedback",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("rating", sa.String(8), nullable=True),
        sa.Column("edited_content", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating IN ('good', 'bad')", name="ck_message_feedback_rating"),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE",
                                name="fk_message_feedback_message_id_messages"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_message_feedback_user_id_users"),
        sa.PrimaryKeyConstraint("message_id", "user_id", name="pk_message_feedback"),
    )
    op.create_index("ix_message_feedback_user_id", "message_feedback", ["user_id"])


def downgrade() -> None:
    op.drop_table("message_feedback")
