"""The writer's one-statement form on PostgreSQL (writer_pg.py): a batch of fenced inserts is one
autocommitted INSERT joined to the leases it locks. It must mean exactly what the transaction meant: a job
whose lease is lost writes nothing and is told so, a key already there is reported, lazy jobs beside it still
commit, and it never deadlocks with the heartbeat's renewal."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from leadmaster.session_manager import writer_pg
from leadmaster.session_manager.cluster.leases import Leases
from leadmaster.session_manager.cluster.schema import LeaseGuard, metadata
from leadmaster.session_manager.store import Store, sqlalchemy_url
from leadmaster.session_manager.writer_loop import LoopLane
from leadmaster.session_manager.writes import FenceRejected, Job
from tests.cluster.test_lock_order import INSTANCES, rounds_beside_renewals


def record(instance_id: str, key: str) -> dict[str, Any]:
    return {"instance_id": instance_id, "key": key, "body_hash": "h", "status": 0, "response": "{}",
            "created_at": time.time(), "state": "pending"}


def keys(db: str) -> set[tuple[str, str]]:
    with psycopg.connect(db) as conn:
        return {(r[0], r[1]) for r in conn.execute("SELECT instance_id, key FROM sm_idempotency")}


@pytest.fixture
def store(cluster_db: str) -> Any:
    store = Store(sqlalchemy_url(cluster_db, Path(".")))
    metadata.create_all(store.engine)
    yield store
    store.close()


async def test_a_batch_of_fenced_inserts_is_one_statement_that_refuses_only_the_lost(
        store: Store, cluster_db: str) -> None:
    leases = Leases(store.engine, "node-a", "http://a", 60.0)
    for instance_id in INSTANCES[:4]:
        assert leases.claim(instance_id) is not None
    tokens = leases.beat()
    with psycopg.connect(cluster_db, autocommit=True) as conn:  # another node took inst-02 (token + 1)
        conn.execute("UPDATE sm_cluster_leases SET owner = 'node-b', token = token + 1 WHERE instance_id = 'inst-02'")
        conn.execute("INSERT INTO sm_idempotency VALUES ('inst-03', 'taken', 'h', 200, '{}', 0, 'done')")
    guard = LeaseGuard("node-a", tokens.get)
    loop = asyncio.get_running_loop()
    eager = [Job([guard.fence(i)[0], (store._begin_key, record(i, f"k-{i}"))], loop.create_future())
             for i in reversed(INSTANCES[:4])]
    eager.append(Job([guard.fence("inst-03")[0], (store._begin_key, record("inst-03", "taken"))],
                      loop.create_future()))
    finish = sa.text("UPDATE sm_idempotency SET state = 'done' WHERE key = 'taken'")
    lazy = Job([(finish, {})], loop.create_future(), lazy=True)
    batch = [eager[0], lazy, *eager[1:]]
    plan = writer_pg.plan(batch, relaxed=False)
    assert plan is not None and plan.jobs == eager  # the eager five as one statement; the lazy one after
    through_sqlalchemy: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *a: through_sqlalchemy.append(a[2]))
    lane = store.writer.durable
    assert isinstance(lane, LoopLane)
    await lane._commit(batch)  # the lane's own commit, driven here without its task
    assert through_sqlalchemy == [str(finish)]  # the fenced inserts went as one driver statement
    outcomes = [job.future.exception() or job.future.result() for job in eager]
    assert outcomes[0] is True and outcomes[2] is True and outcomes[3] is True  # inst-03, -01, -00
    assert isinstance(outcomes[1], FenceRejected)  # inst-02: lost, nothing written
    assert outcomes[4] is False  # the key was there already
    assert lazy.future.result() is True
    assert keys(cluster_db) == {("inst-03", "k-inst-03"), ("inst-01", "k-inst-01"), ("inst-00", "k-inst-00"),
                                ("inst-03", "taken")}


async def test_one_statement_fenced_inserts_never_deadlock_with_renewals(store: Store, cluster_db: str) -> None:
    leases = Leases(store.engine, "node-a", "http://a", 60.0)
    for instance_id in INSTANCES:
        assert leases.claim(instance_id) is not None
    guard = LeaseGuard("node-a", leases.beat().get)

    def one_round(n: int) -> list[asyncio.Future[bool]]:
        # Many jobs per batch, queued in the reverse of the renewal's lock order.
        return [store.writer.submit(guard.fence(i)[0], (store._begin_key, record(i, f"r{n}")))
                for i in reversed(INSTANCES)]

    rounds = await rounds_beside_renewals(cluster_db, leases, 3.0, one_round)
    assert len(keys(cluster_db)) == rounds * len(INSTANCES)


async def test_a_lone_fenced_insert_has_its_own_form_with_the_same_outcomes(store: Store, cluster_db: str) -> None:
    leases = Leases(store.engine, "node-a", "http://a", 60.0)
    for instance_id in INSTANCES[:3]:
        assert leases.claim(instance_id) is not None
    tokens = leases.beat()
    with psycopg.connect(cluster_db, autocommit=True) as conn:
        # inst-01 taken over by another node; inst-02 back to this node under a newer token (a stale one here).
        conn.execute("UPDATE sm_cluster_leases SET owner = 'node-b', token = token + 1 WHERE instance_id = 'inst-01'")
        conn.execute("UPDATE sm_cluster_leases SET token = token + 1 WHERE instance_id = 'inst-02'")
    guard = LeaseGuard("node-a", tokens.get)
    loop = asyncio.get_running_loop()

    def lone(instance_id: str, key: str, fenced: bool = True) -> Job:
        insert = (store._begin_key, record(instance_id, key))
        return Job([guard.fence(instance_id)[0], insert] if fenced else [insert], loop.create_future())

    cases = {"passes": lone("inst-00", "a"), "again": lone("inst-00", "a"), "lost": lone("inst-01", "b"),
             "stale": lone("inst-02", "c"), "unfenced": lone("inst-09", "d", fenced=False),
             "unfenced again": lone("inst-09", "d", fenced=False)}
    raw = await psycopg.AsyncConnection.connect(cluster_db, autocommit=True)
    try:
        for job in cases.values():
            plan = writer_pg.plan([job], relaxed=False)
            assert plan is not None and plan.lone
            await writer_pg.run_async(raw.cursor(), plan)
    finally:
        await raw.close()
    outcomes = {name: (job.fenced_out, job.inserted) for name, job in cases.items()}
    assert outcomes == {"passes": (False, True), "again": (False, False), "lost": (True, False),
                        "stale": (True, False), "unfenced": (False, True), "unfenced again": (False, False)}
    assert keys(cluster_db) == {("inst-00", "a"), ("inst-09", "d")}
