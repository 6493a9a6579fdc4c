"""Credentials follow the user: users.credentials_version, login_failures, and (PostgreSQL) change notices.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHANNEL = "leadmaster_hub_changed"  # also in central_hub/auth/coherence.py
WATCHED = ("users", "api_keys", "clientes")


def upgrade() -> None:
    # SQLite reuses the highest rowid after a delete: a deleted user's token (same id, version 0) would pass
    # as a new user's. AUTOINCREMENT (a table rebuild on SQLite) never reuses ids; PostgreSQL sequences don't.
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("users", recreate="always" if sqlite else "auto",
                              table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("credentials_version", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_login_failures_username_at", "login_failures", ["username", "at"])
    op.create_index("ix_login_failures_at", "login_failures", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        # Every committed change of a user, an API key or a cliente, by any hub process or by hand in psql,
        # tells every hub process to drop its caches (delivered at commit, in commit order).
        op.execute(f"""
            CREATE FUNCTION leadmaster_hub_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$""")
        for table in WATCHED:
            op.execute(f"""
                CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION leadmaster_hub_changed()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_changed ON {table}")
        op.execute("DROP FUNCTION IF EXISTS leadmaster_hub_changed()")
    op.drop_table("login_failures")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("credentials_version")
