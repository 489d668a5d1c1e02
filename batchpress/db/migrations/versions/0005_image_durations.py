"""image durations

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 09:14:03.201544
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.add_column(sa.Column("download_ms", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("process_ms", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_column("process_ms")
        batch_op.drop_column("download_ms")
