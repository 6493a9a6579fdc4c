"""Migration 0002 on a database that already has users (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from leadmaster.central_hub.db.session import MIGRATIONS, make_engine, migrate
from tests.central_hub.conftest import empty_postgres, sqlalchemy_url


def test_upgrade_keeps_users_and_their_tokens_valid(tmp_path: Path, postgres_url: str | None) -> None:
    if postgres_url is not None:
        with make_engine(sqlalchemy_url(postgres_url)).begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        empty_postgres(postgres_url)
    url = sqlalchemy_url(postgres_url) if postgres_url else f"sqlite:///{tmp_path / 'hub.db'}"
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(text("INSERT INTO users (username, password_hash, role, created_at) "
                          "VALUES ('old', 'h', 'admin', CURRENT_TIMESTAMP)"))
    migrate(engine)
    with engine.begin() as conn:
        # 0 is what a token without a `ver` claim (issued before the upgrade) stands for: it stays valid.
        assert conn.execute(text("SELECT username, credentials_version FROM users")).all() == [("old", 0)]
        assert conn.execute(text("SELECT count(*) FROM login_failures")).scalar() == 0
    engine.dispose()
