"""The node's PostgreSQL connection budget (issue 9: at most 20 for the whole node): the session-manager's own
share is a hard 12 (the whatsmeow worker's pool takes the other 8), however many reads run at once while the
writer's three lanes write."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import sqlalchemy as sa

from leadmaster.session_manager.store import Store, sqlalchemy_url

READERS = 40  # anyio's default thread limit: the most reads the service can run at once


def test_the_store_keeps_to_twelve_postgresql_connections_under_forty_reads_and_three_lanes(cluster_db: str) -> None:
    # Only this store's connections count: an autovacuum worker visiting the fresh database shows in
    # pg_stat_activity under its name too (a CI run's "13"), so the store's connections carry a name of their own.
    name = f"budget-{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in cluster_db else "?"
    store = Store(sqlalchemy_url(f"{cluster_db}{separator}application_name={name}", Path(".")))
    peak = 0
    done = threading.Event()

    def count() -> None:
        nonlocal peak
        with psycopg.connect(cluster_db, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                   (name,)).fetchone()
                assert row is not None
                peak = max(peak, int(row[0]))
                time.sleep(0.01)

    def read(_n: int) -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT 1 FROM pg_sleep(0.2)")).scalar_one())

    writes = 0

    async def write() -> None:
        # Each lane (durable, relaxed, message status) holds a connection of its own while it writes.
        nonlocal writes
        while not done.is_set():
            await asyncio.gather(store.writer.write(("SELECT pg_sleep(0.01)", {})),
                                 store.writer.write(("SELECT pg_sleep(0.01)", {}), relaxed=True),
                                 store.writer.write(("SELECT pg_sleep(0.01)", {}), status=True))
            writes += 3
        await store.writer.aclose()

    counter = threading.Thread(target=count)
    writer = threading.Thread(target=asyncio.run, args=(write(),))
    counter.start()
    writer.start()
    try:
        with ThreadPoolExecutor(READERS) as pool:
            assert sum(pool.map(read, range(READERS * 2))) == READERS * 2  # every read served, none refused
    finally:
        done.set()
        counter.join(10)
        writer.join(10)
        store.close()
    assert writes > 0
    assert 9 < peak <= 12, f"peak {peak} server connections"
