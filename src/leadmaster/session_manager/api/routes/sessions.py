"""Session routes, declared once and mounted twice: single-admin (§2.3) and per-instance (§2.4)."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from leadmaster.common.asgi import json_response
from leadmaster.session_manager import errors, qr
from leadmaster.session_manager.api.deps import Service, default_instance, path_instance
from leadmaster.session_manager.api.schemas import (
    AccountInfo,
    ConnectResult,
    NoQr,
    PairCode,
    PairCodeRequest,
    QrAvailable,
    SendRequest,
    SendResult,
    SessionState,
    StatusResult,
    json_body,
)
from leadmaster.session_manager.api.schemas import errors as errs
from leadmaster.session_manager.service import iso

IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def session_router(prefix: str, instance: Callable[..., Awaitable[str]], canonical: bool) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["sessions" if canonical else "single-admin"])
    InstanceId = Annotated[str, Depends(instance)]
    bad_id = (400,) if canonical else ()

    @router.get("/status", response_model=SessionState, responses=errs(*bad_id))
    async def status(svc: Service, instance_id: InstanceId) -> Response:
        """Current session state; `status` is the contract's enum."""
        return json_response(200, svc.status(instance_id))

    @router.get(
        "/qr",
        response_model=QrAvailable | NoQr,
        responses={
            **errs(*bad_id, 404),
            200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "QR as JSON or image"},
        },
    )
    async def get_qr(
        svc: Service,
        instance_id: InstanceId,
        format: Literal["json", "png", "svg"] = Query("json"),
    ) -> Response:
        """The live QR code: JSON with a PNG data URL, or the image itself with `?format=png|svg`."""
        found = svc.qr(instance_id)
        if isinstance(found, tuple):
            payload, expires_at = found
            if format == "json":
                return json_response(200, _qr_body(payload, expires_at))
            image = qr.png(payload) if format == "png" else qr.svg(payload)
            return Response(image, media_type=IMAGE_TYPES[format], headers={"Cache-Control": "no-store"})
        if format == "json":
            return json_response(200, {"status": "NO_QR", "session_status": found.value})
        raise errors.QrNotAvailable(f"No QR code to show: the session is {found.value}.", status=found.value)

    @router.post("/connect", response_model=ConnectResult, responses=errs(*bad_id))
    async def connect(svc: Service, instance_id: InstanceId) -> Response:
        """Start or resume the session; returns at once, never waits for the phone."""
        return json_response(200, await svc.connect(instance_id))

    @router.post("/disconnect", response_model=StatusResult, responses=errs(*bad_id))
    async def disconnect(svc: Service, instance_id: InstanceId) -> Response:
        """Close the session; credentials are kept, so `/connect` resumes without a QR."""
        return json_response(200, await svc.disconnect(instance_id))

    @router.post("/logout", response_model=StatusResult, responses=errs(*bad_id))
    async def logout(svc: Service, instance_id: InstanceId) -> Response:
        """Unlink the device from the phone and delete its credentials."""
        return json_response(200, await svc.logout(instance_id))

    @router.post(
        "/send",
        response_model=SendResult,
        responses=errs(400, 413, 500, 503),
        openapi_extra=json_body(SendRequest),
    )
    async def send(
        request: Request,
        svc: Service,
        instance_id: InstanceId,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Send a text message; one send at a time per instance. `Idempotency-Key` makes retries safe."""
        reply = await svc.send(instance_id, await request.body(), idempotency_key)
        return json_response(reply.status, reply.body, reply.headers)

    if canonical:
        _canonical_only(router, InstanceId)
    return router


def _canonical_only(router: APIRouter, InstanceId: Any) -> None:
    @router.get("", response_model=SessionState, responses=errs(400))
    async def session(svc: Service, instance_id: InstanceId) -> Response:
        """Current session state (same as `/status`)."""
        return json_response(200, svc.status(instance_id))

    @router.delete("", response_model=StatusResult, responses=errs(400))
    async def delete(svc: Service, instance_id: InstanceId) -> Response:
        """Log out and forget the instance."""
        return json_response(200, await svc.delete(instance_id))

    @router.post(
        "/pair-code",
        response_model=PairCode,
        responses=errs(400, 503),
        openapi_extra=json_body(PairCodeRequest),
    )
    async def pair_code(request: Request, svc: Service, instance_id: InstanceId) -> Response:
        """Pair by phone number instead of QR: returns the 8-character code to type on the phone."""
        return json_response(200, await svc.pair_code(instance_id, await request.body()))

    @router.get("/account", response_model=AccountInfo, responses=errs(400, 503))
    async def account(svc: Service, instance_id: InstanceId) -> Response:
        """The linked WhatsApp account (only when READY)."""
        return json_response(200, await svc.account(instance_id))


def _qr_body(payload: str, expires_at: datetime) -> dict[str, Any]:
    return {
        "status": "QR_AVAILABLE",
        "qr": qr.png_data_url(payload),
        "raw": payload,
        "expires_at": iso(expires_at),
    }


single_admin = session_router("", default_instance, canonical=False)
instances = session_router("/api/session-manager/sessions/{instance_id}", path_instance, canonical=True)
listing = APIRouter(prefix="/api/session-manager", tags=["sessions"])


@listing.get("/sessions", response_model=list[SessionState], responses=errs())
async def list_sessions(svc: Service) -> Response:
    """Every known instance with its status."""
    return json_response(200, svc.list())
