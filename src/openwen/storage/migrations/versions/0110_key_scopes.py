"""API key scopes: what a key may do (``inference``; ``tools`` for server-side tools).

Existing keys get ``inference`` only: server-side tools over the API now need a key with the
``tools`` scope (and the admin's ``api_server_tools``).

Revision ID: 0110_key_scopes
Revises: 0100_knowledge
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0110_key_scopes"
down_revision = "0100_knowledge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(200), nullable=False,
                                   server_default="inference"))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
