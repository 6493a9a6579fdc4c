"""Service routes: health (never needs auth, never blocks on WhatsApp) and Prometheus metrics."""

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response

from leadmaster import __version__
from leadmaster.common.asgi import json_response
from leadmaster.session_manager.api.deps import AppSettings, Service
from leadmaster.session_manager.api.schemas import Health
from leadmaster.session_manager.service import iso

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health)
async def health(settings: AppSettings) -> Response:
    """Liveness: answers from memory, whatever WhatsApp is doing."""
    body = {
        "status": "ok",
        "service": "session-manager",
        "timestamp": iso(datetime.now(UTC)),
        "engine": settings.engine,
        "version": __version__,
    }
    return json_response(200, body)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(svc: Service) -> Response:
    """Prometheus text format: sessions by status, sends by outcome, send latency."""
    return PlainTextResponse(svc.metrics.registry.render(), media_type="text/plain; version=0.0.4")
