"""The send routes without FastAPI's per-request machinery: same behaviour, a fraction of the CPU.

Routing, dependency solving and FastAPI's exception layers were the largest part of the session-manager's
own cost per send (bench/bench_sm_send.py). This ASGI shortcut serves exactly `POST /send` and
`POST /api/session-manager/sessions/{instance_id}/send` by calling the very service method the FastAPI
routes call; anything else (another path or method) falls through to FastAPI, which also keeps the
routes in the OpenAPI document. It sits inside RequestContextMiddleware (API key, request id, body limit,
access log), as the FastAPI routes do. tests/session_manager/test_fast_send.py holds both paths to one
behaviour.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from leadmaster.common.asgi import json_response
from leadmaster.session_manager.errors import ServiceError
from leadmaster.session_manager.service import SessionService

_CANONICAL = re.compile(r"/api/session-manager/sessions/([^/]+)/send")


class _RouteLabel:
    # Metrics and the access log label requests by route template, as FastAPI's routes do.
    def __init__(self, path: str) -> None:
        self.path = path


_SINGLE = _RouteLabel("/send")
_PER_INSTANCE = _RouteLabel("/api/session-manager/sessions/{instance_id}/send")


class FastSend:
    def __init__(self, app: ASGIApp, service: SessionService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/send":
            instance_id, label = self.service.settings.default_instance, _SINGLE
        elif (match := _CANONICAL.fullmatch(path)) is not None:
            instance_id, label = match.group(1), _PER_INSTANCE
        else:
            await self.app(scope, receive, send)
            return
        scope["route"] = label
        request = Request(scope, receive)
        try:
            SessionService.check_instance_id(instance_id)
            reply = await self.service.send(instance_id, await request.body(), request.headers.get("idempotency-key"))
            response = json_response(reply.status, reply.body, reply.headers)
        except ServiceError as exc:
            response = json_response(exc.status, exc.body(), exc.headers)
        await response(scope, receive, send)
