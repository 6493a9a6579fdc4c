"""No write of the session-manager holds a PostgreSQL lock beyond the idle-in-transaction limit when its node
freezes. PostgreSQL arms that limit (store.py: 2 s) only after answering a Sync; psycopg's executemany
pipelines its statements and sends the Sync last, so a node frozen in between (SIGSTOP, a stalled VM) kept
the lease rows its batch had fenced locked for as long as it stayed frozen, and the takeover skipped them
(a CI run: two instances of a paused node never moved). The writer therefore never uses executemany there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from leadmaster.contract.status import MessageStatus
from leadmaster.session_manager.cluster.leases import Leases
from leadmaster.session_manager.cluster.schema import LeaseGuard, metadata
from leadmaster.session_manager.messages import MessageLog
from leadmaster.session_manager.store import Store, sqlalchemy_url


def test_postgresql_keeps_a_pipelines_locks_past_the_idle_limit_until_its_sync(cluster_db: str) -> None:
    """Why: the fact the writer is built around, measured on this PostgreSQL."""
    with psycopg.connect(cluster_db, autocommit=True) as setup:
        setup.execute("CREATE TABLE probe (id int PRIMARY KEY)")
        setup.execute("INSERT INTO probe VALUES (1)")
    frozen = psycopg.connect(cluster_db, autocommit=True)
    try:
        frozen.execute("SET idle_in_transaction_session_timeout = '500ms'")
        frozen.pgconn.enter_pipeline_mode()
        frozen.pgconn.send_query_params(b"SELECT id FROM probe WHERE id = 1 FOR UPDATE", None)
        frozen.pgconn.flush()  # and then nothing: no Sync, as from a client stopped mid-executemany
        time.sleep(1.5)
        with psycopg.connect(cluster_db, autocommit=True) as other, pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SELECT id FROM probe WHERE id = 1 FOR UPDATE NOWAIT")
    finally:
        frozen.close()


@pytest.fixture
def no_executemany(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    calls: list[str] = []

    def refuse(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> None:
        calls.append(str(query))
        raise AssertionError(f"executemany on PostgreSQL: {query}")

    monkeypatch.setattr(psycopg.Cursor, "executemany", refuse)
    yield calls


async def test_the_writer_never_pipelines(cluster_db: str, no_executemany: list[str]) -> None:
    store = Store(sqlalchemy_url(cluster_db, Path(".")))
    try:
        metadata.create_all(store.engine)
        leases = Leases(store.engine, "node-a", "http://a", 60.0)
        instances = [f"inst-{n}" for n in range(8)]
        for instance_id in instances:
            assert leases.claim(instance_id) is not None
        store.guard = LeaseGuard("node-a", leases.beat().get)
        log = MessageLog(store)
        # Everything the send path writes, many at a time, as under load: pending marks, outbox entries,
        # finished answers, SENT rows, receipts (one message twice), and a transaction of mixed writes.
        begun = await asyncio.gather(*(store.begin_idempotency(i, f"k{n}", "h", time.time())
                                       for n, i in enumerate(instances * 2)))
        assert all(begun)
        entry = {"cliente_id": 1, "to": "1", "jid": "j", "message": "x", "timestamp": "t"}
        await asyncio.gather(*(store.add_outbox(i, {**entry, "message_id": f"m{n}"}) for n, i in enumerate(instances)))
        await asyncio.gather(*(store.finish_idempotency(i, f"k{n}", 200, {"ok": n}) for n, i in enumerate(instances)))
        at = datetime.now(UTC)
        await asyncio.gather(*(log.record_sent(i, f"m{n}", "1", at) for n, i in enumerate(instances)))
        for n, i in enumerate(instances):
            log.apply(i, f"m{n}", MessageStatus.DELIVERED, at)
            log.apply(i, f"m{n}", MessageStatus.DELIVERED, at)
            log.apply(i, f"m{n}", MessageStatus.READ, at)
        written = log.flush()
        assert written is not None and await written
        await asyncio.gather(store.drop_idempotency(instances[0], "k8"),
                             store.begin_idempotency(instances[1], "k9", "h", time.time(), replace=True))
        assert not no_executemany
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM sm_messages WHERE status = 'READ'").scalar_one() == 8
            assert conn.exec_driver_sql("SELECT count(*) FROM sm_idempotency WHERE state = 'done'").scalar_one() == 8
    finally:
        store.close()
