"""Several session-managers on one PostgreSQL store as one cluster (CONTRACT §4); inactive on SQLite.

    config.py       settings and the node id
    schema.py       node and lease tables, lease-fenced inserts
    leases.py       the SQL of heartbeats, claims, takeovers, releases
    placement.py    least-loaded placement and bounded rebalancing
    coordinator.py  one node: heartbeat loop, fencing, takeover, drain
    forwarding.py   one hop to the owner (the only outbound HTTP, to peers only)
    middleware.py   ASGI routing by instance id, X-Served-By
    routes.py       GET /api/session-manager/cluster
"""

from __future__ import annotations

from dataclasses import dataclass

from leadmaster.session_manager.cluster.config import ClusterSettings, node_id_for
from leadmaster.session_manager.cluster.coordinator import Cluster
from leadmaster.session_manager.cluster.forwarding import Forwarder
from leadmaster.session_manager.cluster.leases import Leases
from leadmaster.session_manager.cluster.schema import LeaseGuard, metadata
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.service import SessionService
from leadmaster.session_manager.store import create_schema

__all__ = ["Node", "node_for"]


@dataclass
class Node:
    node_id: str
    url: str
    cluster: Cluster | None  # None: SQLite, a single node
    forwarder: Forwarder | None


def node_for(settings: Settings, service: SessionService) -> Node:
    """This process as a cluster node; with a PostgreSQL store, joins the cluster (hooks into the service)."""
    cs = ClusterSettings()
    node_id = node_id_for(settings.data_dir, cs.node_id)
    url = cs.node_url or f"http://{settings.host}:{settings.port}"
    store = service.store
    if not store.url.startswith("postgresql"):
        return Node(node_id, url, None, None)
    create_schema(store.engine, metadata)
    # Which node resumes what is the cluster's decision (coordinator._run), not every node's at start-up.
    service.settings = settings.model_copy(update={"connect_on_start": False})
    cluster = Cluster(service, Leases(store.engine, node_id, url, cs.lease_seconds), settings.connect_on_start)
    store.guard = LeaseGuard(node_id, cluster.token_of)
    service.fence = cluster.fence
    return Node(node_id, url, cluster, Forwarder(node_id, cs.forward_timeout_seconds))
