"""The cluster's two tables in PostgreSQL (nodes and leases) and the lease fence of the send path's writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadmaster.session_manager.writes import Checked, FenceRejected

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

_DB_NOW = sa.literal_column(DB_NOW, sa.Float)


class LeaseGuard:
    """Fences the store's send-path writes: they happen only while this node holds a live lease."""

    def __init__(self, node_id: str, token_of: Callable[[str], int | None]) -> None:
        self.node_id = node_id
        self._token_of = token_of  # instance_id -> fencing token this node holds, or None
        # SELECT ... FOR SHARE: the lease row stays locked until the guarded writes commit, so a takeover
        # (an UPDATE of that row) waits for them, and writes after it see the new owner and are refused.
        self._check = Checked(
            sa.select(sa.literal_column("1"))
            .select_from(leases)
            .where(
                leases.c.instance_id == sa.bindparam("fence_i"),
                leases.c.owner == sa.bindparam("fence_n"),
                leases.c.token == sa.bindparam("fence_t"),
                leases.c.expires_at > _DB_NOW,
            )
            .with_for_update(read=True),
            lock_key="fence_i",
            many=self._check_many,
            passing=(
                "SELECT instance_id AS fence_i, token AS fence_t FROM sm_cluster_leases WHERE owner = %(fence_n)s "
                "AND instance_id = ANY(%(fence_ids)s::text[]) AND expires_at > $now "
                'ORDER BY instance_id COLLATE "C" FOR SHARE'
            ).replace("$now", DB_NOW),
        )
        # The same check for a whole batch in one statement; ORDER BY under FOR SHARE locks in that order.
        self._check_all = sa.text(
            "SELECT instance_id, token FROM sm_cluster_leases WHERE owner = :n "
            "AND instance_id = ANY(CAST(:ids AS text[])) AND expires_at > $now "
            'ORDER BY instance_id COLLATE "C" FOR SHARE'.replace("$now", DB_NOW)
        )

    def _check_many(self, conn: Connection, params: list[dict[str, Any]]) -> list[bool]:
        rows = conn.execute(self._check_all, {"n": self.node_id, "ids": [p["fence_i"] for p in params]}).all()
        held = {str(r.instance_id): int(r.token) for r in rows}
        return [p["fence_n"] == self.node_id and held.get(p["fence_i"]) == p["fence_t"] for p in params]

    def fence(self, instance_id: str) -> tuple[tuple[Any, dict[str, Any]], int]:
        """The fence write to put first in a job, and the token it checks; FenceRejected when none is held."""
        token = self._token_of(instance_id)
        if token is None:
            raise FenceRejected(f"node {self.node_id} does not hold {instance_id!r}")
        return (self._check, {"fence_i": instance_id, "fence_n": self.node_id, "fence_t": token}), token
