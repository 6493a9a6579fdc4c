"""Lease statements on a real PostgreSQL database, without processes or timing luck."""

from __future__ import annotations

from pathlib import Path

import psycopg
import sqlalchemy as sa

from leadmaster.session_manager.cluster.leases import Leases
from leadmaster.session_manager.cluster.schema import metadata
from leadmaster.session_manager.store import sqlalchemy_url


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
