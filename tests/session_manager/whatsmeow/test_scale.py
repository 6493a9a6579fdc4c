"""1,000 sessions on one worker through the refusing proxy: every one reaches ERROR/CONNECT_FAILED, none
stays INIT, dials in flight stay bounded, and on PostgreSQL the node holds a bounded pool of connections."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from leadmaster.contract.status import Reason, SessionStatus
from leadmaster.session_manager.engines.whatsmeow.credentials import go_postgres_url

from .conftest import Recorder, make_engine

SESSIONS = 1000
MAX_DIALS = 16
POOL = 8
PG_CONNECTION_GOAL = 20


def pg_connections(url: str) -> int:
    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(go_postgres_url(url).rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone()
        return int(row[0]) if row else 0


@pytest.mark.asyncio
async def test_a_thousand_sessions_settle_with_bounded_dials_and_connections(tmp_path, wm_store_url):
    engine = make_engine(tmp_path, wm_store_url, backoff_base=5, backoff_cap=20, max_dials=MAX_DIALS,
                         db_connections=POOL)
    rec = Recorder()
    await engine.start(rec)
    peak_pg = 0
    try:
        await engine.wait_ready()
        ids = [f"s{n}" for n in range(SESSIONS)]
        for instance_id in ids:
            await engine.connect(instance_id)

        def settled() -> bool:
            return all(rec.statuses(i) and rec.statuses(i)[-1] == (SessionStatus.ERROR, Reason.CONNECT_FAILED)
                       for i in ids)

        async with asyncio.timeout(60):
            while not settled():
                if wm_store_url:
                    peak_pg = max(peak_pg, await asyncio.to_thread(pg_connections, wm_store_url))
                await asyncio.sleep(0.2)
        stuck = [i for i in ids if not rec.statuses(i) or rec.statuses(i)[-1][0] is SessionStatus.INIT]
        assert stuck == []
        info = await engine.call_worker("ping")
        assert info["sessions"] == SESSIONS
        assert 1 <= info["max_dials_in_flight"] <= MAX_DIALS
        assert info["db_max_open"] == POOL
        if wm_store_url:
            peak_pg = max(peak_pg, await asyncio.to_thread(pg_connections, wm_store_url))
            assert 1 <= peak_pg <= PG_CONNECTION_GOAL
    finally:
        await engine.stop()
