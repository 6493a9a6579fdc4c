"""The cluster's two tables in PostgreSQL (nodes and leases) and the lease fence of the send path's writes."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from leadmaster.session_manager.store import FenceRejected

metadata = sa.MetaData()

nodes = sa.Table(
    "sm_cluster_nodes",
    metadata,
    sa.Column("node_id", sa.String(64), primary_key=True),
    sa.Column("url", sa.String(512), nullable=False),
    # Times are the database's clock (epoch seconds), never a node's: nodes' clocks may disagree.
    sa.Column("heartbeat_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("draining", sa.Boolean, nullable=False, default=False),
)

leases = sa.Table(
    "sm_cluster_leases",
    metadata,
    sa.Column("instance_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), index=True),  # null: released, free to claim
    # Fencing token: incremented on every change of owner, so a write carrying an old one is refused.
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

# The database's clock, in the same unit as the columns above.
DB_NOW = "extract(epoch from clock_timestamp())::double precision"

# FOR SHARE: a takeover (UPDATE of the same rows) waits until the writes this check guards are committed.
_CHECK = sa.text(
    "SELECT instance_id, token FROM sm_cluster_leases WHERE owner = :n AND instance_id = ANY(CAST(:ids AS text[])) "
    "AND expires_at > $now FOR SHARE".replace("$now", DB_NOW)
)


class LeaseGuard:
    """Makes the store's send-path writes conditional on this node still holding a live lease."""

    def __init__(self, node_id: str, token_of: Callable[[str], int | None]) -> None:
        self.node_id = node_id
        self._token_of = token_of  # instance_id -> fencing token this node holds, or None

    def fence(self, instance_id: str) -> tuple[str, int]:
        token = self._token_of(instance_id)
        if token is None:
            raise FenceRejected(f"node {self.node_id} does not hold {instance_id!r}")
        return instance_id, token

    def check(self, conn: sa.Connection, fences: list[tuple[str, int]]) -> set[tuple[str, int]]:
        ids = sorted({instance_id for instance_id, _ in fences})
        rows = conn.execute(_CHECK, {"n": self.node_id, "ids": ids}).all()
        return {(r.instance_id, int(r.token)) for r in rows}
