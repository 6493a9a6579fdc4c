"""Composition root of the session-manager: `create_app(settings, engine=None)`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response

from leadmaster import __version__
from leadmaster.common.asgi import RequestContextMiddleware, install_json_errors
from leadmaster.common.docs import install_docs
from leadmaster.common.shortcut import Shortcut
from leadmaster.contract.codes import ErrorCode
from leadmaster.session_manager.api.routes import messages, meta, sandbox, sessions
from leadmaster.session_manager.api.send import error_response, shortcut_routes
from leadmaster.session_manager.cluster import node_for
from leadmaster.session_manager.cluster import routes as cluster_routes
from leadmaster.session_manager.cluster.middleware import ClusterRouter, ServedBy
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engine_storage import StoreSandboxStorage
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
    engine = engine or build_engine(settings, StoreSandboxStorage(store))
    metrics = Metrics()
    service = SessionService(settings, engine, store, metrics)
    metrics.track_sessions(lambda: [s.status.value for s in service.sessions.values()])
    node = node_for(settings, service)  # joins the cluster when the store is PostgreSQL (CONTRACT §4)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        if node.cluster is not None:
            await node.cluster.start()
        logger.info(
            "session-manager ready",
            extra={"fields": {"engine": engine.name, "host": settings.host, "port": settings.port}},
        )
        try:
            yield
        finally:
            if node.cluster is not None:
                await node.cluster.stop()  # hand the leases over before the engine stops
            if node.forwarder is not None:
                await node.forwarder.close()
            await service.stop()

    app = FastAPI(
        title="LeadMaster session-manager",
        version=__version__,
        description="One WhatsApp session per instance_id (CONTRACT.md §2). "
        "When SESSION_MANAGER_API_KEY is set, every route but /health needs `Authorization: Bearer <key>`.",
        lifespan=lifespan,
        # No 307 to the Host header's origin for a trailing slash: an unknown path is a JSON 404 (issue 11).
        redirect_slashes=False,
        # Served by common/docs.py from packaged assets (no CDN), with a CSP.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.cluster, app.state.node_id, app.state.node_url = node.cluster, node.node_id, node.url

    async def service_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return error_response(exc)

    app.add_exception_handler(ServiceError, service_error)
    install_json_errors(app, ErrorCode.BAD_REQUEST)
    # Route matching is linear: the canonical routes (the hub's send path) are tried first.
    app.include_router(sessions.instances)
    app.include_router(messages.router)
    app.include_router(meta.router)
    app.include_router(sessions.single_admin)
    app.include_router(sessions.listing)
    app.include_router(cluster_routes.router)
    if engine.name == "sandbox":
        app.include_router(sandbox.router)
    if send_shortcut:
        # Added before the request context, so it runs inside it (API key, request id, limits, access log).
        app.add_middleware(
            Shortcut, routes=shortcut_routes(service), error_type=ServiceError, error_response=error_response
        )
    if node.cluster is not None and node.forwarder is not None:
        # In front of both send entries (the shortcut and the routes): each request runs on its instance's owner.
        app.add_middleware(ClusterRouter, cluster=node.cluster, forwarder=node.forwarder)
    install_docs(app)
    app.add_middleware(
        RequestContextMiddleware,
        logger=logging.getLogger("leadmaster.session_manager.http"),
        api_key=settings.api_key,
        open_paths=("/health",),
        observe=metrics.observe_request,
    )
    if node.cluster is not None:
        app.add_middleware(ServedBy, node_id=node.node_id)  # outermost: even a 401 names its node
    return app
