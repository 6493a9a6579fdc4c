"""The hub's one send pipeline: authenticate → authorize (once) → parse → forward.

The FastAPI route (api/routes/whatsapp.py) and the ASGI shortcut (common/shortcut.py, installed by app.py)
both call `send`, so a check added here applies to both; tests/central_hub/test_whatsapp_routes.py holds
the two entries to one behaviour.
"""

import re

from fastapi.responses import Response
from starlette.requests import Request

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.bodies import parse_send
from leadmaster.central_hub.api.forward import authorize, forward
from leadmaster.central_hub.hub import Hub
from leadmaster.common.logs import request_id_var
from leadmaster.common.shortcut import FastRoute


async def send(hub: Hub, request: Request, cliente_id: int) -> Response:
    """Send a text message from the cliente's WhatsApp; the session-manager's answer is passed through."""
    principal = await hub.auth.authenticate(request.headers.get("authorization"))
    instance_id = await authorize(hub, principal, cliente_id)  # refuse before even reading the body
    body, key = await parse_send(request, cliente_id)
    return await forward(hub, principal, cliente_id, "send", json_body=body, idempotency_key=key,
                         instance_id=instance_id)


def error_response(exc: errors.HubError) -> Response:
    return errors.error_response(exc, request_id_var.get())


def shortcut_routes(hub: Hub) -> list[FastRoute]:
    """The send route for `common.shortcut.Shortcut` (a malformed cliente id falls through to FastAPI)."""

    async def endpoint(request: Request, match: re.Match[str]) -> Response:
        return await send(hub, request, int(match.group(1)))

    return [FastRoute("POST", re.compile(r"/api/whatsapp/([0-9]{1,18})/send"), "/api/whatsapp/{cliente_id}/send",
                      endpoint)]
