"""`GET /api/session-manager/cluster`: the nodes of the cluster, their liveness and load (CONTRACT §4)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from leadmaster.common.asgi import json_response

router = APIRouter(prefix="/api/session-manager", tags=["cluster"])


class NodeView(BaseModel):
    node_id: str
    url: str
    alive: bool
    instances: int


class ClusterView(BaseModel):
    self: str
    nodes: list[NodeView]


@router.get("/cluster", response_model=ClusterView)
async def cluster_view(request: Request) -> Response:
    """Every node that ever joined this store, whether it is alive, and how many instances it runs."""
    cluster = request.app.state.cluster
    if cluster is None:
        # SQLite: one node, this one.
        service = request.app.state.service
        node = {"node_id": request.app.state.node_id, "url": request.app.state.node_url, "alive": True,
                "instances": sum(1 for s in service.sessions.values() if s.status.value != "DISCONNECTED")}
        return json_response(200, {"self": node["node_id"], "nodes": [node]})
    loads = await cluster.loads()
    nodes = [{"node_id": n.node_id, "url": n.url, "alive": n.alive, "instances": n.instances} for n in loads]
    return json_response(200, {"self": cluster.node_id, "nodes": nodes})
