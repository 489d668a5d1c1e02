"""request revision

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 01:30:00

A counter bumped by every change a status answer shows, so the API can cache rendered answers and check them
with one primary-key read.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revision", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.drop_column("revision")
