"""Response and request shapes of CONTRACT §2, for the OpenAPI document (bodies are built as dicts)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from leadmaster.contract.status import SessionStatus


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    success: Literal[False] = False
    code: str = Field(examples=["SESSION_NOT_READY"])
    message: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    service: Literal["session-manager"] = "session-manager"
    timestamp: str
    engine: str
    version: str


class SessionState(BaseModel):
    instance_id: str
    status: SessionStatus
    reason: str | None = None
    updated_at: str


class QrAvailable(BaseModel):
    status: Literal["QR_AVAILABLE"]
    qr: str = Field(description="PNG image as a data URL")
    raw: str = Field(description="The QR payload itself")
    expires_at: str


class NoQr(BaseModel):
    status: Literal["NO_QR"]
    session_status: SessionStatus


class ConnectResult(BaseModel):
    success: Literal[True] = True
    status: SessionStatus
    alreadyConnected: bool


class StatusResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    success: Literal[True] = True
    status: SessionStatus


class SendRequest(BaseModel):
    cliente_id: int = Field(gt=0, examples=[51])
    to: str = Field(examples=["5491123456789"], description="7-15 digits (optional +) or a user JID")
    message: str = Field(min_length=1, max_length=65_536, examples=["Hola"])


class SentData(BaseModel):
    message_id: str
    cliente_id: int
    to: str
    jid: str
    timestamp: str


class SendResult(BaseModel):
    success: Literal[True] = True
    message: Literal["Message sent"] = "Message sent"
    data: SentData


class PairCodeRequest(BaseModel):
    phone: str = Field(examples=["5491123456789"])


class PairCode(BaseModel):
    code: str = Field(examples=["ABCD-EFGH"])


class AccountInfo(BaseModel):
    jid: str
    phone: str
    push_name: str | None


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses a route can answer."""
    text = {
        400: "Invalid input (see `code`)",
        401: "Missing or wrong API key",
        404: "Not found",
        409: "Conflict with the session's state",
        413: "Body over 1 MiB",
        429: "Too many number lookups this hour (see `Retry-After`)",
        500: "WhatsApp failed the operation or an unexpected error",
        503: "Session not READY (see `status`, `Retry-After`)",
    }
    return {s: {"model": ErrorBody, "description": text.get(s, "Error")} for s in (401, *statuses)}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for routes that parse their body by hand to keep the contract's check order."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
