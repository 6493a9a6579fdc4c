"""The heartbeat's renewal and the writer's fenced group commits lock the same lease rows: they must never
deadlock. A CI run lost every lease of a node under the 10,000-send load because PostgreSQL chose the renewal
as a deadlock's victim three beats in a row (the sends then answered 503 until the node took them back)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import sqlalchemy as sa

from leadmaster.session_manager.cluster.leases import Leases
from leadmaster.session_manager.cluster.schema import LeaseGuard, metadata
from leadmaster.session_manager.store import sqlalchemy_url
from leadmaster.session_manager.writer import GroupCommitWriter
from leadmaster.session_manager.writer_tx import execute
from leadmaster.session_manager.writes import Job

INSTANCES = [f"inst-{n:02d}" for n in range(16)]
SECONDS = 4.0


def deadlocks(db: str) -> int:
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()
    assert row is not None
    return int(row[0])


async def rounds_beside_renewals(db: str, leases: Leases, seconds: float,
                                 one_round: Callable[[int], list[asyncio.Future[bool]]]) -> int:
    """Fenced write rounds for `seconds` while a thread renews every lease of `INSTANCES` without pause; each
    round's writes must all succeed, and PostgreSQL must count no deadlock. Returns the number of rounds."""
    before = deadlocks(db)
    stop = threading.Event()
    renewals = 0
    errors: list[BaseException] = []

    def renew() -> None:
        nonlocal renewals
        while not stop.is_set():
            try:
                assert set(leases.beat()) == set(INSTANCES)
                renewals += 1
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
                return

    renewer = threading.Thread(target=renew)
    renewer.start()
    rounds = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            assert all(await asyncio.gather(*one_round(rounds)))
            rounds += 1
    finally:
        stop.set()
        renewer.join(30)
    assert not errors, errors
    assert renewals > 0 and rounds > 0
    time.sleep(1.2)  # PostgreSQL publishes a backend's statistics at most once a second
    assert deadlocks(db) == before, f"{deadlocks(db) - before} deadlocks in {rounds} rounds"
    return rounds


async def test_renewals_and_fenced_group_commits_never_deadlock(cluster_db: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(cluster_db, Path(".")), pool_size=4)
    writer: GroupCommitWriter | None = None
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (instance_id text NOT NULL, n integer NOT NULL)")
        leases = Leases(engine, "node-a", "http://a", 60.0)
        for instance_id in INSTANCES:
            assert leases.claim(instance_id) is not None
        tokens = leases.beat()
        guard = LeaseGuard("node-a", tokens.get)
        writer = GroupCommitWriter(engine)
        insert = "INSERT INTO probe (instance_id, n) VALUES (%(i)s, %(n)s)"

        def one_round(n: int) -> list[asyncio.Future[bool]]:
            # Jobs that fence the instances in the reverse of the renewal's order, several instances per job,
            # as concurrent sends on many instances do in one batch.
            assert writer is not None
            return [writer.submit(guard.fence(a)[0], guard.fence(b)[0], (insert, {"i": a, "n": n}))
                    for a, b in zip(reversed(INSTANCES), INSTANCES, strict=True)]

        rounds = await rounds_beside_renewals(cluster_db, leases, SECONDS, one_round)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM probe").scalar_one() == rounds * len(INSTANCES)
    finally:
        if writer is not None:
            writer.close()
        engine.dispose()


async def test_one_batch_fences_many_instances_in_one_check_and_refuses_only_the_lost(cluster_db: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(cluster_db, Path(".")))
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE probe (instance_id text NOT NULL, n integer NOT NULL)")
        leases = Leases(engine, "node-a", "http://a", 60.0)
        for instance_id in INSTANCES[:4]:
            assert leases.claim(instance_id) is not None
        tokens = leases.beat()
        with engine.begin() as conn:  # another node took inst-02 (new owner, token + 1)
            conn.exec_driver_sql("UPDATE sm_cluster_leases SET owner = 'node-b', token = token + 1 "
                                 "WHERE instance_id = 'inst-02'")
        guard = LeaseGuard("node-a", tokens.get)
        insert = "INSERT INTO probe (instance_id, n) VALUES (%(i)s, %(n)s)"
        loop = asyncio.get_running_loop()
        batch = [Job([guard.fence(i)[0], (insert, {"i": i, "n": 1})], loop.create_future())
                 for i in reversed(INSTANCES[:4])]
        statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with engine.begin() as conn:
            execute(conn, batch)
        assert [job.fenced_out for job in batch] == [False, True, False, False]  # inst-03, -02, -01, -00
        assert sum("FOR SHARE" in s for s in statements) == 1, statements
        with engine.connect() as conn:
            written = {r[0] for r in conn.exec_driver_sql("SELECT instance_id FROM probe")}
        assert written == {"inst-00", "inst-01", "inst-03"}
    finally:
        engine.dispose()
