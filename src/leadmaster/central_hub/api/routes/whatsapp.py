"""Per-cliente WhatsApp operations (CONTRACT §3.3), forwarded to the session-manager."""

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.deps import CurrentPrincipal, hub_of
from leadmaster.central_hub.api.forward import authorize, forward
from leadmaster.central_hub.errors import UPSTREAM_RESPONSES
from leadmaster.contract.ids import IDEMPOTENCY_KEY_MAX, is_valid_idempotency_key

router = APIRouter(prefix="/api/whatsapp", tags=["whatsapp"], responses=UPSTREAM_RESPONSES)


def _body_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


_SEND_BODY = _body_schema(
    {"to": {"type": "string", "example": "5491123456789", "description": "passed through untouched"},
     "message": {"type": "string", "example": "Hola"}},
    ["to", "message"],
)
_PAIR_BODY = _body_schema({"phone": {"type": "string", "example": "5491123456789"}}, ["phone"])


async def _json_object(request: Request) -> dict[str, Any]:
    # Parsed by hand (orjson) instead of a pydantic model: this is the hot path of every send.
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise errors.ValidationFailedError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.ValidationFailedError(f"The request body must be a JSON object, not {type(body).__name__}.")
    return body


def _require_str(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise errors.ValidationFailedError(f"Field {field!r} must be a string, got {value!r}.", details=[
            {"loc": ["body", field], "msg": "must be a string"}])
    return value


async def parse_send(request: Request, cliente_id: int) -> tuple[dict[str, Any], str | None]:
    """The upstream body and Idempotency-Key of a send, or ValidationFailed (shared with api/fast_send.py)."""
    body = await _json_object(request)
    to, message = _require_str(body, "to"), _require_str(body, "message")
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not is_valid_idempotency_key(idempotency_key):
        raise errors.ValidationFailedError(
            f"Idempotency-Key {idempotency_key!r} must be 1-255 printable ASCII characters."
        )
    return {"cliente_id": cliente_id, "to": to, "message": message}, idempotency_key


# Served by api/fast_send.py in the running app; this route documents it and is the fallback.
@router.post("/{cliente_id}/send", openapi_extra=_SEND_BODY)
async def send(
    cliente_id: int, request: Request, principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header(
        description=f"1-{IDEMPOTENCY_KEY_MAX} printable ASCII chars; makes a retry after a timeout safe (24 h)",
    )] = None,
) -> Response:
    """Send a text message from the cliente's WhatsApp; the session-manager's answer is returned unchanged."""
    hub = hub_of(request)
    await authorize(hub, principal, cliente_id)  # refuse before even reading the body
    body, key = await parse_send(request, cliente_id)
    return await forward(hub, principal, cliente_id, "send", json_body=body, idempotency_key=key)


@router.get("/{cliente_id}/status")
async def status(cliente_id: int, principal: CurrentPrincipal, request: Request) -> Response:
    """Session status of the cliente's WhatsApp instance, as the session-manager reports it."""
    return await forward(hub_of(request), principal, cliente_id, "status")


@router.get("/{cliente_id}/qr", responses={200: {"content": {
    "application/json": {}, "image/png": {}, "image/svg+xml": {}}}})
async def qr(
    cliente_id: int, principal: CurrentPrincipal, request: Request,
    fmt: Annotated[Literal["png", "svg"] | None, Query(alias="format")] = None,
) -> Response:
    """Current QR code: JSON (data URL + raw payload), or the image itself with ?format=png|svg."""
    return await forward(hub_of(request), principal, cliente_id, "qr", fmt=fmt)


@router.post("/{cliente_id}/connect")
async def connect(cliente_id: int, principal: CurrentPrincipal, request: Request) -> Response:
    """Start (or keep) the cliente's WhatsApp session; returns at once."""
    return await forward(hub_of(request), principal, cliente_id, "connect")


@router.post("/{cliente_id}/disconnect")
async def disconnect(cliente_id: int, principal: CurrentPrincipal, request: Request) -> Response:
    """Controlled disconnect: the device stays linked, connect resumes without a QR."""
    return await forward(hub_of(request), principal, cliente_id, "disconnect")


@router.post("/{cliente_id}/logout")
async def logout(cliente_id: int, principal: CurrentPrincipal, request: Request) -> Response:
    """Unlink the device and delete its credentials (a new QR scan is needed)."""
    return await forward(hub_of(request), principal, cliente_id, "logout")


@router.post("/{cliente_id}/pair-code", openapi_extra=_PAIR_BODY)
async def pair_code(cliente_id: int, request: Request, principal: CurrentPrincipal) -> Response:
    """Pair by phone number instead of QR: returns the code to type on the phone."""
    hub = hub_of(request)
    await authorize(hub, principal, cliente_id)
    phone = _require_str(await _json_object(request), "phone")
    return await forward(hub, principal, cliente_id, "pair_code", json_body={"phone": phone})


@router.get("/{cliente_id}/account")
async def account(cliente_id: int, principal: CurrentPrincipal, request: Request) -> Response:
    """The linked WhatsApp account (jid, phone, push name); only when READY."""
    return await forward(hub_of(request), principal, cliente_id, "account")
