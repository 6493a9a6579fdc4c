"""Lease statements on a real PostgreSQL database, without processes or timing luck."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from leadmaster.session_manager.cluster.leases import Leases
from leadmaster.session_manager.cluster.schema import metadata
from leadmaster.session_manager.store import Store, sqlalchemy_url


def _expire(db: str, instance_id: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE sm_cluster_leases SET expires_at = 0 WHERE instance_id = %s", (instance_id,))


def test_a_released_lease_is_taken_back_once_its_new_owner_died(cluster_db: str) -> None:
    engine = sa.create_engine(sqlalchemy_url(cluster_db, Path(".")))
    try:
        metadata.create_all(engine)
        a = Leases(engine, "a", "http://a", 3.0)
        b = Leases(engine, "b", "http://b", 3.0)
        assert a.claim("x") is not None
        a.release("x", a.beat()["x"])
        # Within a's cooldown the released lease is left to the others...
        assert a.take_over(10, skip=["x"]) == {}
        assert set(b.take_over(10, skip=[])) == {"x"}
        # ...but once b took it and died, it is a dead node's lease: a (alone now) takes it back at once.
        _expire(cluster_db, "x")
        assert set(a.take_over(10, skip=["x"])) == {"x"}
    finally:
        engine.dispose()


def test_a_node_frozen_mid_transaction_does_not_keep_its_leases(cluster_db: str) -> None:
    """A writer transaction left open by a frozen node locks its lease rows; the takeover skips locked rows.
    The store's connections end such a transaction after a short idle, so the instance is taken over."""
    store = Store(sqlalchemy_url(cluster_db, Path(".")))
    engine = sa.create_engine(sqlalchemy_url(cluster_db, Path(".")))
    try:
        metadata.create_all(engine)
        frozen = Leases(store.engine, "frozen", "http://frozen", 1.0)
        taker = Leases(engine, "taker", "http://taker", 1.0)
        assert frozen.claim("x") is not None
        conn = store.engine.connect()
        # The fence a send's batch runs, then nothing: the process stopped before its next statement.
        conn.execute(sa.text("SELECT 1 FROM sm_cluster_leases WHERE instance_id = 'x' FOR SHARE")).all()
        deadline = time.monotonic() + 10
        taken: dict[str, int] = {}
        while not taken and time.monotonic() < deadline:
            time.sleep(0.2)
            taken = taker.take_over(10, skip=[])
        assert set(taken) == {"x"}, "the frozen transaction kept the lease row locked"
        with pytest.raises(sa.exc.DBAPIError, match="idle-in-transaction"):  # ended: nothing of it commits
            conn.execute(sa.text("SELECT 1")).all()
        conn.invalidate()
    finally:
        store.close()
        engine.dispose()
