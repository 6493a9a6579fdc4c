"""One session-manager call on behalf of a caller: authorize, resolve, call, log, pass the answer through."""

import time
from typing import Any

from fastapi.responses import Response

from leadmaster.central_hub import errors
from leadmaster.central_hub.auth.principal import Principal
from leadmaster.central_hub.hub import Hub
from leadmaster.central_hub.session_manager_client import Operation
from leadmaster.common.logs import request_id_var

# Upstream headers a caller needs to see on success (the body is passed through byte for byte).
_PASS_HEADERS = ("Idempotent-Replayed", "Retry-After", "Cache-Control")


async def authorize(hub: Hub, principal: Principal, cliente_id: int) -> str:
    """The cliente's instance_id, once the caller may act on it (403 before 404: no existence leak)."""
    principal.require_cliente(cliente_id)
    return await hub.clientes.instance_id(cliente_id)


async def forward(
    hub: Hub,
    principal: Principal,
    cliente_id: int,
    op: Operation,
    *,
    json_body: dict[str, Any] | None = None,
    fmt: str | None = None,
    idempotency_key: str | None = None,
    sub: str | None = None,
    query: dict[str, str] | None = None,
    instance_id: str | None = None,
) -> Response:
    """Call the session-manager for `op`; `instance_id` is what `authorize` returned, if it already ran."""
    if instance_id is None:
        instance_id = await authorize(hub, principal, cliente_id)
    client = hub.client
    method, path = client.route(op, instance_id, sub)  # NotSupported here, before any call
    logged_instance = instance_id if client.api == "instances" else None
    request_id = request_id_var.get()
    started = time.perf_counter()
    upstream_status: int | None = None
    outcome = "INTERNAL_ERROR"
    try:
        resp = await client.call(
            op, instance_id, json_body=json_body, fmt=fmt, request_id=request_id,
            idempotency_key=idempotency_key, sub=sub, query=query,
        )
        upstream_status, outcome = resp.status, "OK"
    except errors.UpstreamError as exc:
        upstream_status, outcome = exc.upstream_status, exc.code
        if isinstance(exc, (errors.SessionManagerUnreachableError, errors.SessionManagerTimeoutError)):
            hub.note_reachability(False)
        raise
    finally:
        hub.interactions.record(
            request_id=request_id, actor=principal.name, cliente_id=cliente_id, instance_id=logged_instance,
            operation=op, method=method, path=path, upstream_status=upstream_status, outcome=outcome,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    if hub.sm_reachable is not True:
        hub.note_reachability(True)
    headers = {h: v for h in _PASS_HEADERS if (v := resp.headers.get(h)) is not None}
    return Response(resp.body, status_code=resp.status, headers=headers,
                    media_type=resp.content_type or "application/json")
