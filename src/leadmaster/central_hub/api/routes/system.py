"""Liveness and metrics."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.deps import AdminPrincipal, HubDep

router = APIRouter(tags=["system"])


@router.get("/health")
async def health(hub: HubDep) -> dict[str, Any]:
    """The hub's own liveness plus the last known session-manager reachability (no auth)."""
    checked = hub.sm_checked_at
    checked_at = checked.isoformat(timespec="milliseconds").replace("+00:00", "Z") if checked else None
    return {
        "status": "ok",
        "service": "central-hub",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "session_manager": {
            "reachable": hub.sm_reachable,
            "checked_at": checked_at,
            "api": hub.settings.sm_api,
        },
    }


@router.get("/metrics", responses={**errors.AUTH_RESPONSES, 200: {"content": {"text/plain": {}}}})
async def metrics(_: AdminPrincipal, hub: HubDep) -> Response:
    """Prometheus metrics: requests, upstream calls by operation and outcome, latencies (admin)."""
    return Response(hub.registry.render(), media_type="text/plain; version=0.0.4")
