"""Two small JSON routes only the dashboard needs: which engine runs, and the sandbox "phone scan".

Both go through the hub's one session-manager client (CONTRACT §3.2: same pool, timeouts, API key,
error mapping); the hub still calls nothing but the session-manager.
"""

import time
from typing import Any

import orjson
from fastapi import APIRouter

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.deps import CurrentPrincipal, HubDep
from leadmaster.central_hub.api.forward import authorize
from leadmaster.central_hub.hub import Hub
from leadmaster.central_hub.session_manager_client import UpstreamResponse, map_error_status
from leadmaster.common.logs import request_id_var

router = APIRouter(prefix="/dashboard/api", tags=["dashboard"], include_in_schema=False)


async def _raw(hub: Hub, method: str, path: str) -> UpstreamResponse:
    return await hub.client.request(method, path, request_id=request_id_var.get())


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@router.get("/info")
async def info(_: CurrentPrincipal, hub: HubDep) -> dict[str, Any]:
    """The session-manager's engine (from its /health), so the dashboard shows sandbox-only buttons."""
    try:
        resp = await _raw(hub, "GET", "/health")
    except errors.UpstreamError:
        return {"reachable": False, "engine": None, "sandbox": False}
    engine = _object(resp.body).get("engine") if resp.status == 200 else None
    return {"reachable": resp.status == 200, "engine": engine, "sandbox": engine == "sandbox"}


@router.post("/clientes/{cliente_id}/simulate-scan")
async def simulate_scan(cliente_id: int, principal: CurrentPrincipal, hub: HubDep) -> dict[str, Any]:
    """Sandbox engine only: the simulated phone scans the cliente's current QR code."""
    instance_id = await authorize(hub, principal, cliente_id)
    if hub.client.api != "instances":
        raise errors.NotSupportedError(
            "Simulate scan needs the canonical session-manager routes; set SESSION_MANAGER_API=instances."
        )
    path = f"/api/session-manager/sandbox/{instance_id}/scan"
    request_id = request_id_var.get()
    started = time.perf_counter()
    upstream_status: int | None = None
    outcome = "INTERNAL_ERROR"
    try:
        resp = await _raw(hub, "POST", path)
        upstream_status = resp.status
        if resp.status == 404:
            # The sandbox routes do not exist on the real engine (CONTRACT §2.1).
            raise errors.NotSupportedError(
                "Simulate scan works only when the session-manager runs SESSION_MANAGER_ENGINE=sandbox.",
                upstream_status=404,
            )
        if not 200 <= resp.status <= 299:
            raise map_error_status(resp.status, resp.body, resp.headers, f"POST {path}")
        outcome = "OK"
        return _object(resp.body)
    except errors.HubError as exc:
        outcome = exc.code
        raise
    finally:
        # Logged like every other session-manager call (CONTRACT §3.5).
        hub.interactions.record(
            request_id=request_id, actor=principal.name, cliente_id=cliente_id, instance_id=instance_id,
            operation="sandbox_scan", method="POST", path=path, upstream_status=upstream_status,
            outcome=outcome, duration_ms=(time.perf_counter() - started) * 1000,
        )
