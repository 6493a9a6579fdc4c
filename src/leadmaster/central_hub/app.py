"""Composition root: create_app(settings) wires the Hub, the routes, the middleware and the dashboard."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from leadmaster.central_hub.api.deps import document_bearer_auth
from leadmaster.central_hub.api.routes import admin, auth, me, system, users, whatsapp
from leadmaster.central_hub.api.send import error_response, shortcut_routes
from leadmaster.central_hub.config import Settings
from leadmaster.central_hub.errors import HubError, install_error_handler
from leadmaster.central_hub.hub import Hub
from leadmaster.central_hub.web import mount_dashboard
from leadmaster.common.asgi import RequestContextMiddleware, install_json_errors
from leadmaster.common.docs import install_docs
from leadmaster.common.logs import request_id_var
from leadmaster.common.shortcut import Shortcut
from leadmaster.contract.codes import ErrorCode

VERSION = "0.1.0"


def create_app(
    settings: Settings, *, logger: logging.Logger | None = None, send_shortcut: bool = True
) -> FastAPI:
    logger = logger or logging.getLogger("leadmaster.central_hub")
    hub = Hub(settings, logger)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(
        title="LeadMaster central hub",
        version=VERSION,
        description="Business API over the session-manager: auth, tenant isolation, error mapping, "
        "interaction log. Every error body is `{success:false, code, message, request_id, ...}`.",
        lifespan=lifespan,
        # No 307 to the Host header's origin for a trailing slash: an unknown path is a JSON 404 (issue 11).
        redirect_slashes=False,
        # Served by common/docs.py from packaged assets (no CDN), with a CSP.
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = hub
    # Route matching is linear and costs ~µs per route tried: the send path and /health go first.
    for module in (whatsapp, system, me, auth, admin, users):
        app.include_router(module.router)
    app.include_router(users.admin_router)

    def request_extra(_: Request) -> dict[str, Any]:
        return {"request_id": request_id_var.get()}

    install_json_errors(app, ErrorCode.VALIDATION_ERROR, request_extra)
    install_error_handler(app)
    # Pure ASGI (not BaseHTTPMiddleware): they sit on every send. Auth is per route, so no api_key here.
    # Added last = outermost: the request context wraps the send shortcut too.
    if send_shortcut:
        app.add_middleware(Shortcut, routes=shortcut_routes(hub), error_type=HubError, error_response=error_response)
    app.add_middleware(RequestContextMiddleware, logger=logger, observe=hub.observe_request)
    install_docs(app)
    document_bearer_auth(app)
    mount_dashboard(app)
    return app
