"""PostgreSQL's writer lanes on the event loop (writer_loop.py): no caller is ever left waiting — not after a
bug in the lane, not for a write queued after shutdown — and shutdown writes what is queued, lazy jobs too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from leadmaster.session_manager import writer_pg
from leadmaster.session_manager.store import sqlalchemy_url
from leadmaster.session_manager.writer import GroupCommitWriter

INSERT = "INSERT INTO probe (n) VALUES (%(n)s) ON CONFLICT DO NOTHING"


def written(db: str) -> list[int]:
    with psycopg.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT n FROM probe ORDER BY n")]


@pytest.fixture
def engine(cluster_db: str) -> Any:
    engine = sa.create_engine(sqlalchemy_url(cluster_db, Path(".")))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (n integer PRIMARY KEY)")
    yield engine
    engine.dispose()


async def test_a_bug_in_a_lane_fails_its_batch_and_the_lane_lives_on(
        engine: sa.Engine, cluster_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = GroupCommitWriter(engine)
    real_plan = writer_pg.plan
    calls = 0

    def plan_failing_once(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("a bug")
        return real_plan(*args)

    monkeypatch.setattr(writer_pg, "plan", plan_failing_once)
    try:
        with pytest.raises(RuntimeError, match="store write failed"):
            await asyncio.wait_for(writer.write((INSERT, {"n": 1})), 5)
        assert await asyncio.wait_for(writer.write((INSERT, {"n": 2})), 5)
    finally:
        await writer.aclose()
        writer.close()
    assert written(cluster_db) == [2]


async def test_shutdown_writes_what_is_queued_and_a_later_write_is_still_written(
        engine: sa.Engine, cluster_db: str) -> None:
    writer = GroupCommitWriter(engine)
    lazy = writer.submit((INSERT, {"n": 1}), lazy=True)  # held for up to 50 ms
    eager = writer.submit((INSERT, {"n": 2}))
    await writer.aclose()
    assert lazy.done() and eager.done() and lazy.result() and eager.result()
    assert written(cluster_db) == [1, 2]
    assert await asyncio.wait_for(writer.write((INSERT, {"n": 3})), 5)  # after shutdown, on a lane it closed
    await writer.aclose()
    writer.close()
    assert written(cluster_db) == [1, 2, 3]
