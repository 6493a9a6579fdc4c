"""Hot routes served straight from ASGI, by the very endpoint function their FastAPI route calls.

Routing, dependency solving and FastAPI's exception layers were most of each service's own cost per send
(bench/). A `Shortcut` matches a small table of (method, path pattern) and awaits the route's endpoint
function itself; anything else falls through to FastAPI, which keeps the routes in the OpenAPI document
and serves them when the shortcut is off. So there is one pipeline per route: a check added to it (a rate
limit, say) belongs in the endpoint function, never in a FastAPI dependency the shortcut would skip.
It runs inside RequestContextMiddleware (request id, body limit, API key, access log), as FastAPI does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.responses import Response
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request, "re.Match[str]"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class FastRoute:
    method: str
    pattern: re.Pattern[str]  # matched against the whole path
    path: str  # the FastAPI route's template: the access log and metrics label requests by it
    endpoint: Endpoint


class Shortcut:
    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[FastRoute],
        error_type: type[Exception],
        error_response: Callable[[Any], Response],
    ) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.error_type = error_type
        self.error_response = error_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for route in self.routes:
                if route.method == scope["method"] and (match := route.pattern.fullmatch(path)) is not None:
                    scope["route"] = route
                    try:
                        response = await route.endpoint(Request(scope, receive), match)
                    except self.error_type as exc:
                        response = self.error_response(exc)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
