"""previews: whether an output has its small previews stored beside it

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 22:30:00

An output compressed from now on has two small WebP previews, of its input and of itself, under keys derived from its
own (processing/reuse.py ``preview_keys``). Outputs made before, and results reported by an external processor, have
none: ``previews`` says which is which, on the image that lists the output and on the recipe that later images reuse.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("image", "stored_output"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("previews", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for table in ("stored_output", "image"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("previews")
