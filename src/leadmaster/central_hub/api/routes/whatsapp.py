"""Per-cliente WhatsApp operations (CONTRACT §3.3), forwarded to the session-manager."""

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.bodies import json_object, require_str
from leadmaster.central_hub.api.deps import CurrentPrincipal, hub_of
from leadmaster.central_hub.api.forward import authorize, forward
from leadmaster.central_hub.api.send import send as send_endpoint
from leadmaster.central_hub.errors import UPSTREAM_RESPONSES
from leadmaster.contract.ids import IDEMPOTENCY_KEY_MAX

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


# Served by the send shortcut in the running app (app.py); both call api/send.py.
@router.post("/{cliente_id}/send", openapi_extra=_SEND_BODY)
async def send(
    cliente_id: int, request: Request,
    idempotency_key: Annotated[str | None, Header(
        description=f"1-{IDEMPOTENCY_KEY_MAX} printable ASCII chars; makes a retry after a timeout safe (24 h)",
    )] = None,  # documented here, read by api/send.py
) -> Response:
    """Send a text message from the cliente's WhatsApp; the session-manager's answer is returned unchanged."""
    return await send_endpoint(hub_of(request), request, cliente_id)


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
    instance_id = await authorize(hub, principal, cliente_id)
    phone = require_str(await json_object(request), "phone")
    return await forward(hub, principal, cliente_id, "pair_code", json_body={"phone": phone}, instance_id=instance_id)


@router.get("/{cliente_id}/account")
async def account(cliente_id: int, principal: CurrentPrincipal, request: Request) -> Response:
    """The linked WhatsApp account (jid, phone, push name); only when READY."""
    return await forward(hub_of(request), principal, cliente_id, "account")


# -- CONTRACT §5: delivery truth ----------------------------------------------------------------------------

_CHECK_BODY = _body_schema(
    {"phones": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 50,
                "example": ["5491123456789", "+5491198765432"], "description": "passed through untouched"}},
    ["phones"],
)

# WhatsApp message IDs are short ASCII tokens; the rule keeps the logged path bounded and unescaped.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@router.get("/{cliente_id}/messages/{message_id}")
async def message_status(cliente_id: int, message_id: str, principal: CurrentPrincipal, request: Request) -> Response:
    """Delivery status of one sent message: SENT, DELIVERED, READ or FAILED, with the time of each step."""
    hub = hub_of(request)
    await authorize(hub, principal, cliente_id)  # 401/403/404 before any complaint about the input
    if not _MESSAGE_ID.fullmatch(message_id):
        raise errors.ValidationFailedError(f"message_id {message_id[:64]!r} must be 1-128 of A-Z a-z 0-9 . _ : -.")
    return await forward(hub, principal, cliente_id, "message", sub=message_id)


@router.get("/{cliente_id}/messages")
async def message_changes(
    cliente_id: int, principal: CurrentPrincipal, request: Request,
    since: Annotated[str | None, Query(description="ISO 8601: only changes after it (the last `updated_at` seen)")]
    = None,
    limit: Annotated[str | None, Query(description="1-1000, default 100")] = None,
) -> Response:
    """Sent messages whose status changed after `since`, oldest change first: poll with the last `updated_at`."""
    query = {k: v for k, v in (("since", since), ("limit", limit)) if v is not None}
    return await forward(hub_of(request), principal, cliente_id, "messages", query=query)


@router.post("/{cliente_id}/contacts/check", openapi_extra=_CHECK_BODY)
async def contacts_check(cliente_id: int, request: Request, principal: CurrentPrincipal) -> Response:
    """Which of 1-50 phone numbers are on WhatsApp (cached 24 h; uncached lookups limited per hour: 429)."""
    hub = hub_of(request)
    await authorize(hub, principal, cliente_id)
    phones = (await json_object(request)).get("phones")
    return await forward(hub, principal, cliente_id, "contacts_check", json_body={"phones": phones})
