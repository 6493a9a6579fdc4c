"""Session routes, declared once and mounted twice: single-admin (§2.3) and per-instance (§2.4)."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from leadmaster.common.asgi import json_response
from leadmaster.session_manager import errors, qr
from leadmaster.session_manager.api.deps import Service, Target, default_target, path_target
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
from leadmaster.session_manager.api.send import send as send_endpoint
from leadmaster.session_manager.service import iso

IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def session_router(prefix: str, target: Callable[..., Awaitable[Target]], canonical: bool) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["sessions" if canonical else "single-admin"])
    On = Annotated[Target, Depends(target)]
    bad_id = (400,) if canonical else ()

    @router.get("/status", response_model=SessionState, responses=errs(*bad_id))
    async def status(on: On) -> Response:
        """Current session state; `status` is the contract's enum."""
        return json_response(200, on.svc.status(on.instance_id))

    @router.get(
        "/qr",
        response_model=QrAvailable | NoQr,
        responses={
            **errs(*bad_id, 404),
            200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "QR as JSON or image"},
        },
    )
    async def get_qr(
        on: On,
        format: Literal["json", "png", "svg"] = Query("json"),
    ) -> Response:
        """The live QR code: JSON with a PNG data URL, or the image itself with `?format=png|svg`."""
        found = on.svc.qr(on.instance_id)
        if isinstance(found, tuple):
            payload, expires_at = found
            if format == "json":
                return json_response(200, _qr_body(payload, expires_at))
            image = qr.png(payload) if format == "png" else qr.svg(payload)
            return Response(image, media_type=IMAGE_TYPES[format], headers={"Cache-Control": "no-store"})
        if format == "json":
            return json_response(200, {"status": "NO_QR", "session_status": found.value})
        raise errors.QrNotAvailableError(f"No QR code to show: the session is {found.value}.", status=found.value)

    @router.post("/connect", response_model=ConnectResult, responses=errs(*bad_id))
    async def connect(on: On) -> Response:
        """Start or resume the session; returns at once, never waits for the phone."""
        return json_response(200, await on.svc.connect(on.instance_id))

    @router.post("/disconnect", response_model=StatusResult, responses=errs(*bad_id))
    async def disconnect(on: On) -> Response:
        """Close the session; credentials are kept, so `/connect` resumes without a QR."""
        return json_response(200, await on.svc.disconnect(on.instance_id))

    @router.post("/logout", response_model=StatusResult, responses=errs(*bad_id))
    async def logout(on: On) -> Response:
        """Unlink the device from the phone and delete its credentials."""
        return json_response(200, await on.svc.logout(on.instance_id))

    @router.post(
        "/send",
        response_model=SendResult,
        responses=errs(400, 413, 500, 503),
        openapi_extra=json_body(SendRequest),
    )
    async def send(
        request: Request,
        on: On,
        idempotency_key: Annotated[str | None, Header()] = None,  # documented here, read by api/send.py
    ) -> Response:
        """Send a text message; one send at a time per instance. `Idempotency-Key` makes retries safe."""
        return await send_endpoint(on.svc, on.instance_id, request)

    if canonical:
        _canonical_only(router, On)
    return router


def _canonical_only(router: APIRouter, On: Any) -> None:
    @router.get("", response_model=SessionState, responses=errs(400))
    async def session(on: On) -> Response:
        """Current session state (same as `/status`)."""
        return json_response(200, on.svc.status(on.instance_id))

    @router.delete("", response_model=StatusResult, responses=errs(400))
    async def delete(on: On) -> Response:
        """Log out and forget the instance."""
        return json_response(200, await on.svc.delete(on.instance_id))

    @router.post(
        "/pair-code",
        response_model=PairCode,
        responses=errs(400, 503),
        openapi_extra=json_body(PairCodeRequest),
    )
    async def pair_code(request: Request, on: On) -> Response:
        """Pair by phone number instead of QR: returns the 8-character code to type on the phone."""
        return json_response(200, await on.svc.pair_code(on.instance_id, await request.body()))

    @router.get("/account", response_model=AccountInfo, responses=errs(400, 503))
    async def account(on: On) -> Response:
        """The linked WhatsApp account (only when READY)."""
        return json_response(200, await on.svc.account(on.instance_id))


def _qr_body(payload: str, expires_at: datetime) -> dict[str, Any]:
    return {
        "status": "QR_AVAILABLE",
        "qr": qr.png_data_url(payload),
        "raw": payload,
        "expires_at": iso(expires_at),
    }


single_admin = session_router("", default_target, canonical=False)
instances = session_router("/api/session-manager/sessions/{instance_id}", path_target, canonical=True)
listing = APIRouter(prefix="/api/session-manager", tags=["sessions"])


@listing.get("/sessions", response_model=list[SessionState], responses=errs())
async def list_sessions(svc: Service) -> Response:
    """Every known instance with its status."""
    return json_response(200, svc.list())
