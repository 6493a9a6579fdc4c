"""Alembic environment: always driven programmatically with an open connection (see db/migrate.py)."""

from alembic import context

from leadmaster.central_hub.db.models import Base

connection = context.config.attributes["connection"]
# render_as_batch: SQLite cannot ALTER most things; batch mode makes future migrations portable.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
