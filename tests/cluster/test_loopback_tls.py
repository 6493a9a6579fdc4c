"""No TLS to a PostgreSQL server on this host unless the URL asks for it (common/pgurl.py): Debian's server
offers TLS, and libpq's default took it, so every statement of the writer's lanes and the pool paid for a TLS
record on a loopback socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from leadmaster.common.pgurl import plain_on_loopback
from leadmaster.session_manager.store import Store, sqlalchemy_url

SSL_OF_THIS_BACKEND = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u@127.0.0.1:5432/db", "postgresql://u@127.0.0.1:5432/db?sslmode=disable"),
    ("postgresql+psycopg://u@localhost/db?application_name=a%20b",
     "postgresql+psycopg://u@localhost/db?application_name=a%20b&sslmode=disable"),  # the rest kept as written
    ("postgresql://u@[::1]/db", "postgresql://u@[::1]/db?sslmode=disable"),
    ("postgresql://u@localhost/db?sslmode=require", "postgresql://u@localhost/db?sslmode=require"),
    ("postgresql://u@db.example.com/db", "postgresql://u@db.example.com/db"),  # another host: as given
    ("sqlite:///data/x.sqlite3", "sqlite:///data/x.sqlite3"),  # not PostgreSQL: as given
])
def test_only_a_loopback_url_without_sslmode_gets_sslmode_disable(url: str, expected: str) -> None:
    assert plain_on_loopback(url) == expected


async def test_the_store_pool_and_the_writer_lanes_talk_to_a_local_server_without_tls(cluster_db: str) -> None:
    store = Store(sqlalchemy_url(cluster_db, Path(".")))
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql(SSL_OF_THIS_BACKEND).scalar_one() is False
        writes = [store.writer.write(("SELECT 1", {})), store.writer.write(("SELECT 1", {}), relaxed=True),
                  store.writer.write(("SELECT 1", {}), status=True)]
        await asyncio.gather(*writes)
        with store.engine.connect() as conn:
            # Every session-manager backend of this database: the pool's and the three lanes'.
            rows = conn.exec_driver_sql(
                "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                "WHERE a.datname = current_database()").all()
        assert len(rows) >= 4 and not any(r[0] for r in rows)
    finally:
        await store.aclose()
