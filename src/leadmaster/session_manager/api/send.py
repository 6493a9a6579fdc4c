"""The session-manager's one send pipeline: the FastAPI routes and the ASGI shortcut both call `send`.

The shortcut (common/shortcut.py) serves `POST /send` and `POST /api/session-manager/sessions/{id}/send`
in the running app; the FastAPI routes document them and serve them when the shortcut is off.
tests/session_manager/test_fast_send.py holds both entries to one behaviour.
"""

from __future__ import annotations

import re

from fastapi.responses import Response
from starlette.requests import Request

from leadmaster.common.asgi import json_response
from leadmaster.common.shortcut import FastRoute
from leadmaster.session_manager.errors import ServiceError
from leadmaster.session_manager.service import SessionService


async def send(service: SessionService, instance_id: str, request: Request) -> Response:
    """Send a text message on `instance_id` (already checked) and answer as CONTRACT §2.5 says."""
    reply = await service.send(instance_id, await request.body(), request.headers.get("idempotency-key"))
    return json_response(reply.status, reply.body, reply.headers)


def error_response(exc: ServiceError) -> Response:
    return json_response(exc.status, exc.body(), exc.headers)


def shortcut_routes(service: SessionService) -> list[FastRoute]:
    """The send routes for `common.shortcut.Shortcut`; the canonical one first (the hub's send path)."""

    async def canonical(request: Request, match: re.Match[str]) -> Response:
        return await send(service, SessionService.check_instance_id(match.group(1)), request)

    async def single_admin(request: Request, _match: re.Match[str]) -> Response:
        return await send(service, service.settings.default_instance, request)

    return [
        FastRoute("POST", re.compile(r"/api/session-manager/sessions/([^/]+)/send"),
                  "/api/session-manager/sessions/{instance_id}/send", canonical),
        FastRoute("POST", re.compile(r"/send"), "/send", single_admin),
    ]
