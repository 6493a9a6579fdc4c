"""The cluster's two tables in PostgreSQL (nodes and leases) and the lease-fenced inserts of the send path."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadmaster.session_manager.store import Checked, FenceRejected

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
    """Makes the store's send-path inserts conditional on this node still holding a live lease."""

    def __init__(self, node_id: str, token_of: Any) -> None:
        self.node_id = node_id
        self._token_of = token_of  # instance_id -> fencing token this node holds, or None
        self._statements: dict[str, Any] = {}

    def insert(self, table: sa.Table, instance_id: str, row: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        token = self._token_of(instance_id)
        if token is None:
            raise FenceRejected(f"node {self.node_id} does not hold {instance_id!r}")
        stmt = self._statements.get(table.name)
        if stmt is None:
            stmt = self._statements[table.name] = _guarded(table)
        # A fresh Checked per write: the store's writer never merges these, and checks each one's row count.
        if "lease_token" in row:
            row = {**row, "lease_token": token}
        return Checked(stmt), {**row, "fence_i": instance_id, "fence_n": self.node_id, "fence_t": token}


def _guarded(table: sa.Table) -> Any:
    """INSERT INTO table SELECT <row> WHERE this node's lease with this token is still live."""
    names = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]
    names = [n for n in names if n != "id"]
    values = [sa.cast(sa.bindparam(n), table.c[n].type).label(n) for n in names]
    live = sa.exists().where(
        leases.c.instance_id == sa.bindparam("fence_i"),
        leases.c.owner == sa.bindparam("fence_n"),
        leases.c.token == sa.bindparam("fence_t"),
        leases.c.expires_at > _DB_NOW,
    )
    # RETURNING, because the driver reports no row count for INSERT ... SELECT through SQLAlchemy.
    return table.insert().from_select(names, sa.select(*values).where(live)).returning(sa.literal_column("1"))
