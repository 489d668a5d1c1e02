"""request effort

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00

A request chooses its encoders' effort at upload: ``max`` (the smallest files, slower encoders) or ``fast``.
Requests stored before this revision were asked for nothing, so they read as the default, ``max``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("effort", sa.String(length=8), server_default="max", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.drop_column("effort")
