"""status read indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:10:00

A status page's progress sums each state's image bytes: with the bytes in the index it reads no image row (on
SQLite those rows carry URLs and errors of kilobytes, and it read ~60 MB for a 24,000-image request). Products are
listed by id within a request, which the (request_id, serial_number) constraint's index cannot give in order.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_image_request_state_bytes", "image", ["request_id", "state", "input_bytes", "output_bytes"])
    op.drop_index("ix_image_request_state", table_name="image")
    op.create_index("ix_product_request_id", "product", ["request_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_product_request_id", table_name="product")
    op.create_index("ix_image_request_state", "image", ["request_id", "state"])
    op.drop_index("ix_image_request_state_bytes", table_name="image")
