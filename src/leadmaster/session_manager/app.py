"""Composition root of the session-manager: `create_app(settings, engine=None)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from leadmaster import __version__
from leadmaster.common.asgi import RequestContextMiddleware, install_json_errors, json_response
from leadmaster.contract.codes import ErrorCode
from leadmaster.session_manager.api.fast_send import FastSend
from leadmaster.session_manager.api.routes import meta, sandbox, sessions
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines import build_engine
from leadmaster.session_manager.engines.base import Engine
from leadmaster.session_manager.errors import ServiceError
from leadmaster.session_manager.metrics import Metrics
from leadmaster.session_manager.service import SessionService
from leadmaster.session_manager.store import Store

logger = logging.getLogger("leadmaster.session_manager")


def create_app(
    settings: Settings, engine: Engine | None = None, store: Store | None = None, send_shortcut: bool = True
) -> FastAPI:
    store = store or Store.open(settings.store_url, settings.data_dir)
    engine = engine or build_engine(settings, store)
    metrics = Metrics()
    service = SessionService(settings, engine, store, metrics)
    metrics.track_sessions(lambda: [s.status.value for s in service.sessions.values()])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        logger.info(
            "session-manager ready",
            extra={"fields": {"engine": engine.name, "host": settings.host, "port": settings.port}},
        )
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="LeadMaster session-manager",
        version=__version__,
        description="One WhatsApp session per instance_id (CONTRACT.md §2). "
        "When SESSION_MANAGER_API_KEY is set, every route but /health needs `Authorization: Bearer <key>`.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service

    async def service_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return json_response(exc.status, exc.body(), exc.headers)

    app.add_exception_handler(ServiceError, service_error)
    install_json_errors(app, ErrorCode.BAD_REQUEST)
    # Route matching is linear: the canonical routes (the hub's send path) are tried first.
    app.include_router(sessions.instances)
    app.include_router(meta.router)
    app.include_router(sessions.single_admin)
    app.include_router(sessions.listing)
    if engine.name == "sandbox":
        app.include_router(sandbox.router)
    if send_shortcut:
        # Added before the request context, so it runs inside it (API key, request id, limits, access log).
        app.add_middleware(FastSend, service=service)
    app.add_middleware(
        RequestContextMiddleware,
        logger=logging.getLogger("leadmaster.session_manager.http"),
        api_key=settings.api_key,
        open_paths=("/health",),
        observe=metrics.observe_request,
    )
    return app
