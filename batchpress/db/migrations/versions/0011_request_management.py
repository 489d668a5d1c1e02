"""request management: list newest first, cancel, retry, delete

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 21:00:00

Requests are listed newest first, all of them or one API key's, a page at a time: (created_at, id) orders them and
the key's index starts with the key; retention finds the oldest finished ones by ``finished_at``. ``cancelled_at``
records a cancel: the request's images not yet started fail as cancelled, and its terminal move then says
``cancelled``. A retried request gets a new webhook event, so a request may have several (the unique constraint on
``webhook_event.request_id`` becomes an index). Outputs no request lists any more are recorded in ``doomed_output``
in the transaction that deletes their last request, then removed from storage (docs/reuse.md): a crash in between
leaves a row to finish the job, never an orphan file for ever.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_request_created", "processing_request", ["created_at", "id"])
    op.create_index("ix_request_key_created", "processing_request", ["api_key_id", "created_at", "id"])
    op.create_index("ix_request_finished", "processing_request", ["finished_at"])
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.drop_constraint("uq_webhook_event_request_id", type_="unique")
        batch_op.create_index("ix_webhook_event_request_id", ["request_id"], unique=False)
    op.create_table(
        "doomed_output",
        sa.Column("output_key", sa.Text(), primary_key=True),
        sa.Column("doomed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("doomed_output")
    with op.batch_alter_table("webhook_event", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_event_request_id")
        batch_op.create_unique_constraint("uq_webhook_event_request_id", ["request_id"])
    op.drop_index("ix_request_finished", table_name="processing_request")
    op.drop_index("ix_request_key_created", table_name="processing_request")
    op.drop_index("ix_request_created", table_name="processing_request")
    with op.batch_alter_table("processing_request", schema=None) as batch_op:
        batch_op.drop_column("cancelled_at")
