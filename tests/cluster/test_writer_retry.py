"""A writer lane whose PostgreSQL connection the server ended (a node frozen past the idle-in-transaction
limit, a restarted database): message-status writes, which may run twice, are written again on a new
connection; any other write fails and says so (a fenced one as FenceRejected, the others as an error)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from leadmaster.session_manager.store import sqlalchemy_url
from leadmaster.session_manager.writer import GroupCommitWriter

INSERT = "INSERT INTO probe (n) VALUES (%(n)s) ON CONFLICT DO NOTHING"


def end_other_connections(db: str) -> int:
    with psycopg.connect(db, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return len(rows)


async def test_a_status_write_survives_its_connection_being_ended_and_others_report_it(cluster_db: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(cluster_db, Path(".")))
    writer = GroupCommitWriter(engine)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (n integer PRIMARY KEY)")
        assert await writer.write((INSERT, {"n": 1}), status=True)
        assert await writer.write((INSERT, {"n": 2}))
        engine.dispose()  # the pool's idle connection too: only the lanes' connections remain
        assert end_other_connections(cluster_db) >= 2
        assert await writer.write((INSERT, {"n": 3}), status=True)  # written again on a new connection
        with pytest.raises(RuntimeError, match="store write failed"):
            await writer.write((INSERT, {"n": 4}))  # durable lane: not retried, the caller is told
        assert await writer.write((INSERT, {"n": 5}))  # and the lane works again on a new connection
        with engine.connect() as conn:
            assert [r[0] for r in conn.exec_driver_sql("SELECT n FROM probe ORDER BY n")] == [1, 2, 3, 5]
    finally:
        writer.close()
        engine.dispose()
