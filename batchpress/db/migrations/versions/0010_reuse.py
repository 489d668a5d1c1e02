"""reuse: repeats inside a request, outputs by content, origin validators

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 20:00:00

An image whose URL appeared earlier in its request waits for that image (``repeat_of``) and takes its result. An
output is stored once per recipe (the source's SHA-256 and the options that change the output), under a key that
names its content, and reused by any later image with the same recipe (``stored_output``). What an origin said
about a URL last time (``ETag``, ``Last-Modified``) is kept per API key for conditional downloads
(``source_validator``). ``reused`` says why an image took an existing output; the (request, state) index gains it so
progress counts reused images without reading image rows. Outputs are found by key for deletion: an output is
removed only when no image lists it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LISTED = sa.text("output_key IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repeat_of", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reused", sa.String(length=16), nullable=True))
    op.create_index(
        "ix_image_request_state_bytes",
        "image",
        ["request_id", "state", "id", "input_bytes", "output_bytes", "reused"],
    )
    op.drop_index("ix_image_request_state_id", table_name="image")
    op.create_index("ix_image_output_key", "image", ["output_key"], sqlite_where=_LISTED, postgresql_where=_LISTED)
    op.create_table(
        "stored_output",
        sa.Column("recipe", sa.String(length=64), primary_key=True),
        sa.Column("output_key", sa.Text(), nullable=False),
        sa.Column("output_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_stored_output_output_key", "stored_output", ["output_key"])
    op.create_table(
        "source_validator",
        sa.Column("scope", sa.String(length=16), primary_key=True),
        sa.Column("url_hash", sa.String(length=64), primary_key=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("source_bytes", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("source_validator")
    op.drop_index("ix_stored_output_output_key", table_name="stored_output")
    op.drop_table("stored_output")
    op.drop_index("ix_image_output_key", table_name="image")
    op.create_index("ix_image_request_state_id", "image", ["request_id", "state", "id", "input_bytes", "output_bytes"])
    op.drop_index("ix_image_request_state_bytes", table_name="image")
    with op.batch_alter_table("image", schema=None) as batch_op:
        batch_op.drop_column("reused")
        batch_op.drop_column("repeat_of")
