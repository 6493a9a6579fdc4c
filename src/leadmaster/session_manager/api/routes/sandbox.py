"""Sandbox-only routes (CONTRACT §2.1): scan, outbox, faults. Mounted only with the sandbox engine."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from leadmaster.common.asgi import json_response
from leadmaster.contract.status import SessionStatus
from leadmaster.session_manager import errors
from leadmaster.session_manager.api.deps import Target, path_target
from leadmaster.session_manager.api.schemas import errors as errs
from leadmaster.session_manager.api.schemas import json_body
from leadmaster.session_manager.engines.sandbox import NoQrToScan, SandboxEngine
from leadmaster.session_manager.parsing import json_object, parse_phone

router = APIRouter(prefix="/api/session-manager/sandbox/{instance_id}", tags=["sandbox"])
On = Annotated[Target, Depends(path_target)]


class ScanResult(BaseModel):
    success: bool = True
    status: SessionStatus


class OutboxMessage(BaseModel):
    message_id: str
    cliente_id: int
    to: str
    jid: str
    message: str
    timestamp: str


class Outbox(BaseModel):
    messages: list[OutboxMessage]


class Faults(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    send_error: int | None = Field(None, ge=0, le=600_000, description="The next N sends fail with SEND_FAILED")
    send_delay_ms: int | None = Field(None, ge=0, le=600_000, description="Every send takes M ms (0 clears)")
    drop_connection: bool | None = Field(None, description="READY -> DISCONNECTED, back to READY by itself")
    reconnect_after_ms: int | None = Field(None, ge=0, le=600_000)
    logout: bool | None = Field(None, description="Unlinked from the phone: ERROR LOGGED_OUT")
    undelivered: bool | None = Field(None, description="Later messages get no receipts and stay SENT (false clears)")
    not_on_whatsapp: list[str] | None = Field(
        None, max_length=10_000, description="These numbers check as not on WhatsApp (replaces the list; [] clears)"
    )


class Ok(BaseModel):
    success: bool = True


def _engine(svc: Any) -> SandboxEngine:
    engine = svc.engine
    assert isinstance(engine, SandboxEngine)
    return engine


@router.post("/scan", response_model=ScanResult, responses=errs(400, 409))
async def scan(request: Request, on: On) -> Response:
    """The sandbox phone scans the live QR (optional body `{"phone": "..."}` picks the account number)."""
    raw = await request.body()
    data = json_object(raw) if raw.strip() else {}  # the body is optional here
    phone = None
    if data.get("phone") is not None:
        phone = parse_phone(data["phone"])
        if phone is None:
            raise errors.InvalidPhoneError("phone must be 7-15 digits, optional leading +.")
    try:
        _engine(on.svc).scan(on.instance_id, phone)
    except NoQrToScan:
        status = on.svc.status(on.instance_id)["status"]
        raise errors.NoQrToScanError(f"No QR to scan: the session is {status}.", status=status) from None
    return json_response(200, {"success": True, "status": on.svc.status(on.instance_id)["status"]})


@router.get("/outbox", response_model=Outbox, responses=errs(400))
async def outbox(on: On) -> Response:
    """Every message the sandbox 'sent' for this instance, oldest first."""
    return json_response(200, {"messages": await _engine(on.svc).outbox(on.instance_id)})


@router.post("/faults", response_model=Ok, responses=errs(400), openapi_extra=json_body(Faults))
async def faults(request: Request, on: On) -> Response:
    """Inject faults: failing or slow sends, a dropped connection, an unlink from the phone."""
    data = json_object(await request.body())
    try:
        faults = Faults.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']} (got {e.get('input')!r:.40})" for e in exc.errors()
        )
        raise errors.InvalidFaultError(f"Invalid faults: {problems}. Known: {sorted(Faults.model_fields)}.") from None
    fields = faults.model_dump(exclude_unset=True)
    if (null := next((k for k, v in fields.items() if v is None), None)) is not None:
        raise errors.InvalidFaultError(f"Fault {null!r} must have a value, got null.")
    if fields.get("not_on_whatsapp") is not None:
        digits = [parse_phone(p) for p in fields["not_on_whatsapp"]]
        bad = [p for p, d in zip(fields["not_on_whatsapp"], digits, strict=True) if d is None]
        if bad:
            raise errors.InvalidFaultError(f"not_on_whatsapp holds {bad[0][:40]!r}, not a phone number (7-15 digits).")
        fields["not_on_whatsapp"] = digits
    data = fields
    await _engine(on.svc).inject(on.instance_id, data)
    return json_response(200, {"success": True})
