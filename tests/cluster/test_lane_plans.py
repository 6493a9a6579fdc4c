"""The writer lanes' many-row statements find their rows by key even where the planner has no statistics.

A batch of receipts (or of finished idempotency ANSWERS) is one UPDATE joined to its rows as JSON
(writer_pg.py). On a table autovacuum has not analyzed yet — every fresh deployment's first minute, every
benchmark — the planner hashed that join over a full scan of the table: a cost per batch that grows with the
table (2 ms for 60 receipts at 13,000 messages). The lanes' connections turn seq scans off (writer_loop.py).
And such a statement, once prepared, kept the generic plan chosen while its table was small (a whole index
read per batch) until the next ANALYZE: the lanes never prepare it (writer_pg.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from leadmaster.contract.status import MessageStatus
from leadmaster.session_manager.messages import MessageLog
from leadmaster.session_manager.store import Store, sqlalchemy_url
from leadmaster.session_manager.writer_loop import LoopLane
from leadmaster.session_manager.writes import Rows

ROWS = 13_000  # where the hash join showed up in the benchmarks (it stays with more rows until an ANALYZE)
# A receipt batch (60 DELIVERED or READ) and a batch of finished answers (117), as the lanes write them.
RECEIPTS = json.dumps([{"i": f"i{n % 16}", "m": f"m{n}", "at_": n, "u": ROWS + n} for n in range(1, 61)])
ANSWERS = json.dumps([{"i": f"i{n % 16}", "k": f"k{n}", "status": 200, "response": "{}", "state": "done"}
                      for n in range(1, 118)])


@pytest.fixture
async def store(cluster_db: str) -> AsyncIterator[Store]:
    store = Store(sqlalchemy_url(cluster_db, Path(".")))
    MessageLog(store)  # its table
    with store.engine.begin() as conn:
        for table in ("sm_messages", "sm_idempotency"):
            # No ANALYZE may come along during the test: the case is a table the planner knows nothing about.
            conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
        conn.exec_driver_sql(
            "INSERT INTO sm_messages SELECT 'i' || (n %% 16), 'm' || n, '5491123456789', 'SENT', n, NULL, NULL, n "
            f"FROM generate_series(1, {ROWS}) AS n")
        conn.exec_driver_sql(
            "INSERT INTO sm_idempotency SELECT 'i' || (n %% 16), 'k' || n, 'h', 0, '{}', n, 'pending' "
            f"FROM generate_series(1, {ROWS}) AS n")
    yield store
    await store.aclose()


async def _connection(lane: object) -> psycopg.AsyncConnection[Any]:
    """The lane's own connection: its settings are the point."""
    assert isinstance(lane, LoopLane)
    return await lane._connection()


async def _plan(lane: object, sql: str, rows: str) -> str:
    """EXPLAIN `sql` on the lane's connection."""
    cursor = await (await _connection(lane)).execute(f"EXPLAIN {sql}", {"rows": rows})
    return "\n".join(str(r[0]) for r in await cursor.fetchall())


async def _run(lane: object, sql: str, rows: str) -> None:
    await (await _connection(lane)).execute(sql, {"rows": rows})


@pytest.mark.parametrize("status", [MessageStatus.DELIVERED, MessageStatus.READ])
async def test_a_receipt_batch_updates_its_messages_through_the_key(store: Store, status: MessageStatus) -> None:
    log = MessageLog(store)
    sql = log._updates[status].many
    assert sql is not None
    plan = await _plan(store.writer.status, sql, RECEIPTS)
    assert "Index Scan using sm_messages_pkey" in plan, plan
    assert "Seq Scan on sm_messages" not in plan, plan


async def test_a_batch_of_finished_answers_updates_its_records_through_the_key(store: Store) -> None:
    sql = store._finish.many
    assert sql is not None
    plan = await _plan(store.writer.relaxed, sql, ANSWERS)
    assert "Index Scan using sm_idempotency_pkey" in plan, plan
    assert "Seq Scan on sm_idempotency" not in plan, plan


async def test_the_batches_write_what_they_say(store: Store) -> None:
    """The plan changed, not the outcome: the receipts and answers land on their rows and only there."""
    log = MessageLog(store)
    delivered, finish = log._updates[MessageStatus.DELIVERED].many, store._finish.many
    assert delivered is not None and finish is not None
    await _run(store.writer.status, delivered, RECEIPTS)
    await _run(store.writer.relaxed, finish, ANSWERS)
    with store.engine.connect() as conn:
        count = "SELECT {0}, count(*) FROM {1} GROUP BY {0}"
        by_status: dict[str, int] = dict(conn.exec_driver_sql(count.format("status", "sm_messages")).all())
        by_state: dict[str, int] = dict(conn.exec_driver_sql(count.format("state", "sm_idempotency")).all())
    assert by_status == {"DELIVERED": 60, "SENT": ROWS - 60}
    assert by_state == {"done": 117, "pending": ROWS - 117}


@pytest.mark.parametrize("batch", ["receipts", "answers"])
async def test_a_batch_statement_is_planned_for_its_batch_never_prepared(store: Store, batch: str) -> None:
    """psycopg prepares a statement once it has run five times, and PostgreSQL then keeps one generic plan for
    it until the table is next analyzed. Chosen while the table was small and had no statistics, that plan
    read the whole table's index for every batch as the table grew (receipt batches 1.4 -> 7.7 ms, measured).
    A lane runs its batch statements unprepared, so each is planned for the table as it is."""
    log = MessageLog(store)
    rows: Rows = log._updates[MessageStatus.DELIVERED] if batch == "receipts" else store._finish
    lane = store.writer.status if batch == "receipts" else store.writer.relaxed
    for n in range(0, 400, 40):  # ten batches of 40 rows, each one statement (the `many` form)
        if batch == "receipts":
            writes = [(rows, {"i": f"i{m % 16}", "m": f"m{m}", "at_": m, "u": ROWS + m}) for m in range(n + 1, n + 41)]
            await store.writer.write(*writes, status=True)
        else:
            writes = [(rows, {"i": f"i{m % 16}", "k": f"k{m}", "status": 200, "response": "{}", "state": "done"})
                      for m in range(n + 1, n + 41)]
            await store.writer.write(*writes, relaxed=True)
    cursor = await (await _connection(lane)).execute("SELECT statement FROM pg_prepared_statements")
    prepared = [str(r[0]) for r in await cursor.fetchall()]
    assert rows.many is not None and rows.many.split("%(rows)s")[0] not in "\n".join(prepared), prepared
    with store.engine.connect() as conn:
        done = "SELECT count(*) FROM sm_messages WHERE status = 'DELIVERED'" if batch == "receipts" else (
            "SELECT count(*) FROM sm_idempotency WHERE state = 'done'")
        assert conn.exec_driver_sql(done).scalar() == 400
