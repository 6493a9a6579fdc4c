"""The lease table's statements: heartbeat and renew, claim, take over, release, look up (PostgreSQL).

Every statement is one short transaction judged by the database's clock (`DB_NOW`): PostgreSQL is the
only coordinator, and a lease is live while `expires_at > now()` there. A change of owner always bumps
the fencing token, so writes fenced with the previous token are refused (schema.LeaseGuard).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine as SqlEngine

from leadmaster.session_manager.cluster.schema import DB_NOW

logger = logging.getLogger("leadmaster.session_manager.cluster")

_DEADLOCK_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class NodeLoad:
    node_id: str
    url: str
    alive: bool
    instances: int


@dataclass(frozen=True, slots=True)
class Owner:
    owner: str | None
    url: str | None
    live: bool


def _sql(statement: str) -> sa.TextClause:
    """A statement judged by the database's clock: `$now` is its current time in epoch seconds."""
    return sa.text(statement.replace("$now", DB_NOW))


_BEAT = _sql(
    "INSERT INTO sm_cluster_nodes (node_id, url, heartbeat_at, started_at, draining) "
    "VALUES (:n, :u, $now, $now, false) "
    "ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, heartbeat_at = excluded.heartbeat_at, draining = false"
)
# A lease that expired while this node was frozen (SIGSTOP, a stalled loop) is up for grabs while another node
# is alive: renewing it on waking would take it back from under that node (or keep it from ever moving). With
# no other live node there is nobody to hand it to, and a node alone that fell behind under load keeps it.
_RENEW = _sql(
    "UPDATE sm_cluster_leases SET expires_at = $now + :l WHERE owner = :n AND (expires_at > $now OR NOT EXISTS ("
    "  SELECT 1 FROM sm_cluster_nodes WHERE node_id <> :n AND heartbeat_at > $now - :l AND NOT draining)) "
    "RETURNING instance_id, token"
)
# The renewal locks every lease row this node owns. It takes them first, in the one order every such locker
# uses (the writer's lease fences too, writer.Checked), or a renewal and a group commit fencing two of the
# same instances deadlock, and the heartbeat that PostgreSQL picks as the victim loses every lease it renews.
_LOCK_OWN = _sql(
    'SELECT instance_id FROM sm_cluster_leases WHERE owner = :n ORDER BY instance_id COLLATE "C" FOR UPDATE'
)
# A restarted node is a new incarnation: what it still owns gets a new token before it runs again.
_ADOPT = _sql(
    "UPDATE sm_cluster_leases SET token = token + 1, expires_at = $now + :l WHERE owner = :n "
    "RETURNING instance_id, token"
)
_CLAIM = _sql(
    "INSERT INTO sm_cluster_leases AS l (instance_id, owner, token, expires_at) VALUES (:i, :n, 1, $now + :l) "
    "ON CONFLICT (instance_id) DO UPDATE SET owner = :n, token = l.token + 1, expires_at = $now + :l "
    "WHERE l.owner IS NULL OR l.expires_at < $now RETURNING token"
)
# Released leases first (a node handing over), then the longest-expired (a dead node's); SKIP LOCKED keeps
# two claiming nodes from waiting on each other.
_TAKEOVER = _sql(
    "UPDATE sm_cluster_leases AS l SET owner = :n, token = l.token + 1, expires_at = $now + :l "
    "WHERE l.instance_id IN ("
    "  SELECT instance_id FROM sm_cluster_leases WHERE (owner IS NULL OR expires_at < $now) "
    # The cooldown skips only leases this node released that nobody took yet; once another node took one and
    # died, it is a dead node's lease like any other (else a node alone could not take back what it handed to
    # a node that then died, for the whole cooldown).
    "  AND NOT (owner IS NULL AND instance_id = ANY(CAST(:skip AS text[]))) "
    "  ORDER BY owner NULLS FIRST, expires_at, instance_id "
    "  LIMIT :k FOR UPDATE SKIP LOCKED"
    ") AND (l.owner IS NULL OR l.expires_at < $now) RETURNING l.instance_id, l.token"
)
_RELEASE = _sql(
    "UPDATE sm_cluster_leases SET owner = NULL, expires_at = 0 WHERE instance_id = :i AND owner = :n AND token = :t"
)
_FORGET = _sql("DELETE FROM sm_cluster_leases WHERE instance_id = :i AND (owner = :n OR owner IS NULL)")
_LOOKUP = _sql(
    "SELECT l.owner, n.url, (l.owner IS NOT NULL AND l.expires_at > $now) AS live "
    "FROM sm_cluster_leases l LEFT JOIN sm_cluster_nodes n ON n.node_id = l.owner WHERE l.instance_id = :i"
)
_LOADS = _sql(
    "SELECT n.node_id, n.url, (n.heartbeat_at > $now - :l AND NOT n.draining) AS alive, "
    "count(l.instance_id) FILTER (WHERE l.expires_at > $now) AS instances "
    "FROM sm_cluster_nodes n LEFT JOIN sm_cluster_leases l ON l.owner = n.node_id "
    "GROUP BY n.node_id, n.url, n.heartbeat_at, n.draining ORDER BY n.node_id"
)
_ORPHANS = _sql(
    "SELECT count(*) FILTER (WHERE owner IS NOT NULL AND expires_at < $now) AS dead, "
    "count(*) FILTER (WHERE owner IS NULL) AS released, count(*) AS total FROM sm_cluster_leases"
)
# Paired instances (and the single-admin one) get a lease row, so that some node resumes them.
_SEED = _sql(
    "INSERT INTO sm_cluster_leases (instance_id, owner, token, expires_at) "
    "SELECT instance_id, NULL, 0, 0 FROM sm_instances WHERE paired ON CONFLICT (instance_id) DO NOTHING"
)
_SEED_ONE = _sql(
    "INSERT INTO sm_cluster_leases (instance_id, owner, token, expires_at) VALUES (:i, NULL, 0, 0) "
    "ON CONFLICT (instance_id) DO NOTHING"
)
_DRAIN = _sql("UPDATE sm_cluster_nodes SET draining = true WHERE node_id = :n")


class Leases:
    """Synchronous statements on the lease tables; the coordinator runs them in a thread."""

    def __init__(self, engine: SqlEngine, node_id: str, url: str, lease_seconds: float) -> None:
        self.engine = engine
        self.node_id = node_id
        self.url = url
        self.lease = lease_seconds

    def beat(self, adopt: bool = False) -> dict[str, int]:
        """Record this node alive and renew every lease it owns; returns {instance_id: token} it owns."""
        for attempt in range(_DEADLOCK_ATTEMPTS):
            try:
                with self.engine.begin() as conn:
                    conn.execute(_BEAT, {"n": self.node_id, "u": self.url})
                    conn.execute(_LOCK_OWN, {"n": self.node_id})
                    rows = conn.execute(_ADOPT if adopt else _RENEW, {"n": self.node_id, "l": self.lease}).all()
                return {r.instance_id: int(r.token) for r in rows}
            except sa.exc.OperationalError as exc:
                # A lock taken outside the one order (a row that became ours between the two statements) can
                # still deadlock; PostgreSQL rolled the renewal back whole, so running it again is safe.
                if not isinstance(exc.orig, psycopg.errors.DeadlockDetected) or attempt == _DEADLOCK_ATTEMPTS - 1:
                    raise
                logger.warning("lease renewal deadlocked; renewing again", extra={"fields": {"attempt": attempt}})
        raise AssertionError("unreachable")

    def claim(self, instance_id: str) -> int | None:
        """Own an unowned or expired instance; the new token, or None when a live node owns it."""
        with self.engine.begin() as conn:
            row = conn.execute(_CLAIM, {"i": instance_id, "n": self.node_id, "l": self.lease}).first()
        return int(row.token) if row else None

    def take_over(self, limit: int, skip: list[str]) -> dict[str, int]:
        if limit <= 0:
            return {}
        with self.engine.begin() as conn:
            rows = conn.execute(_TAKEOVER, {"n": self.node_id, "l": self.lease, "k": limit, "skip": skip}).all()
        return {r.instance_id: int(r.token) for r in rows}

    def release(self, instance_id: str, token: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(_RELEASE, {"i": instance_id, "n": self.node_id, "t": token})

    def forget(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(_FORGET, {"i": instance_id, "n": self.node_id})

    def drain(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(_DRAIN, {"n": self.node_id})

    def lookup(self, instance_id: str) -> Owner | None:
        with self.engine.connect() as conn:
            row = conn.execute(_LOOKUP, {"i": instance_id}).first()
        return Owner(row.owner, row.url, bool(row.live)) if row else None

    def loads(self) -> list[NodeLoad]:
        with self.engine.connect() as conn:
            rows = conn.execute(_LOADS, {"l": self.lease}).all()
        return [NodeLoad(r.node_id, r.url, bool(r.alive), int(r.instances)) for r in rows]

    def orphans(self) -> tuple[int, int, int]:
        """(leases of dead owners, released leases, all leases)."""
        with self.engine.connect() as conn:
            row = conn.execute(_ORPHANS).one()
        return int(row.dead), int(row.released), int(row.total)

    def seed(self, default_instance: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(_SEED)
            if default_instance:
                conn.execute(_SEED_ONE, {"i": default_instance})
