"""The hub's own database: clientes, users, API keys, interaction log (SQLAlchemy 2 + Alembic)."""
