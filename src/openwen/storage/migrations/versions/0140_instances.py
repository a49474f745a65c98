"""Several instances over one database: instance heartbeats, answer owners (with a cancel
flag), and rate-limit events shared by all instances.

Revision ID: 0140_instances
Revises: 0110_key_scopes
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0140_instances"
down_revision = "0110_key_scopes"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        _time("started_at"),
        _time("heartbeat_at"),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.create_index("ix_instances_heartbeat_at", "instances", ["heartbeat_at"])
    op.create_table(
        "answer_owners",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        _time("cancel_requested_at", nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="CASCADE",
                                name="fk_answer_owners_message_id_messages"),
        sa.PrimaryKeyConstraint("message_id", name="pk_answer_owners"),
    )
    op.create_index("ix_answer_owners_instance_id", "answer_owners", ["instance_id"])
    op.create_table(
        "rate_limit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        _time("at"),
        sa.PrimaryKeyConstraint("id", name="pk_rate_limit_events"),
    )
    op.create_index("ix_rate_limit_events_key", "rate_limit_events", ["key"])
    op.create_index("ix_rate_limit_events_at", "rate_limit_events", ["at"])


def downgrade() -> None:
    op.drop_table("rate_limit_events")
    op.drop_table("answer_owners")
    op.drop_table("instances")
