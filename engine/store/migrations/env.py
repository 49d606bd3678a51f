"""Alembic environment: nudge always hands in an open connection (see engine.store.db.migrate)."""

from alembic import context

from engine.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, transaction_per_migration=False
)
with context.begin_transaction():
    context.run_migrations()
