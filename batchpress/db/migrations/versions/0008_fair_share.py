"""fair share and status read indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:00:00

Workers claim images from the open request that was served least recently (processing/fair_share.py): each request
keeps when it was last served and how many images it holds, which sizes its chunks. The (request, state) image index
gets the id, for a claim's "next pending images of this request, in order", and the byte counts, so a status page's
progress reads no image row (on SQLite those rows carry URLs and errors of kilobytes). Products are listed by id
within a request, which the (request_id, serial_number) constraint's index cannot give in order.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_image_request_state_id", "image", ["request_id", "state", "id", "input_bytes", "output_bytes"])
    op.drop_index("ix_image_request_state", table_name="image")
    op.create_index("ix_product_request_id", "product", ["request_id", "id"])
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_count", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("served_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE processing_request SET image_count = "
        "(SELECT count(*) FROM image WHERE image.request_id = processing_request.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.drop_column("served_at")
        batch_op.drop_column("image_count")
    op.drop_index("ix_product_request_id", table_name="product")
    op.create_index("ix_image_request_state", "image", ["request_id", "state"])
    op.drop_index("ix_image_request_state_id", table_name="image")
