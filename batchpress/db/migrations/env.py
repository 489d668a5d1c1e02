from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

import batchpress.models  # noqa: F401  (registers the tables on the metadata)
from batchpress.db.base import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or ""


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def migrate_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        migrate_with(given)
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        migrate_with(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
