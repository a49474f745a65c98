"""The instance that runs a stored response (``api_responses.instance_id``), so that an instance
opening the store fails only the unfinished responses of instances that are gone.

Revision ID: 0210_response_instances
Revises: 0150_tool_confirmations
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0210_response_instances"
down_revision = "0150_tool_confirmations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_responses") as batch:
        batch.add_column(sa.Column("instance_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_responses") as batch:
        batch.drop_column("instance_id")
