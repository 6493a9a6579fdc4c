"""Delivery truth routes (CONTRACT §5): message status, polling for changes, number check."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from leadmaster.common.asgi import json_response
from leadmaster.contract.status import MessageStatus
from leadmaster.session_manager import errors
from leadmaster.session_manager.api.deps import Target, path_target
from leadmaster.session_manager.api.schemas import errors as errs
from leadmaster.session_manager.api.schemas import json_body
from leadmaster.session_manager.messages import parse_since
from leadmaster.session_manager.parsing import json_object

router = APIRouter(prefix="/api/session-manager/sessions/{instance_id}", tags=["delivery"])
On = Annotated[Target, Depends(path_target)]
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class MessageState(BaseModel):
    message_id: str
    to: str
    status: MessageStatus
    sent_at: str
    delivered_at: str | None
    read_at: str | None
    updated_at: str = Field(description="Microsecond UTC time of the last change: the polling cursor")


class MessageChanges(BaseModel):
    messages: list[MessageState]


class CheckRequest(BaseModel):
    phones: list[str] = Field(min_length=1, max_length=50, examples=[["5491123456789", "+5491198765432"]])


class CheckResult(BaseModel):
    phone: str
    on_whatsapp: bool
    jid: str | None


class CheckResults(BaseModel):
    results: list[CheckResult]


@router.get("/messages/{message_id}", response_model=MessageState, responses=errs(400, 404))
async def message(on: On, message_id: str) -> Response:
    """Delivery status of one message this instance sent (404 MESSAGE_NOT_FOUND when unknown)."""
    found = await asyncio.to_thread(on.svc.messages.get, on.instance_id, message_id)
    if found is None:
        raise errors.MessageNotFoundError(
            f"No message {message_id[:128]!r} sent by instance {on.instance_id!r} (or older than the retention)."
        )
    return json_response(200, found)


@router.get("/messages", response_model=MessageChanges, responses=errs(400))
async def changes(
    request: Request,
    on: On,
    since: Annotated[str | None, Query(description="ISO 8601; only changes strictly after it")] = None,
    limit: Annotated[str | None, Query(description=f"1-{MAX_LIMIT}, default {DEFAULT_LIMIT}")] = None,
) -> Response:
    """Messages whose status changed after `since`, oldest change first: poll with the last `updated_at` seen."""
    since_us = None
    if since is not None:
        try:
            since_us = parse_since(since)
        except (ValueError, OverflowError):
            raise errors.InvalidSinceError(f"since {since[:64]!r} is not an ISO 8601 time.") from None
    count = DEFAULT_LIMIT
    if limit is not None:
        if not limit.isascii() or not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise errors.InvalidLimitError(f"limit {limit[:32]!r} must be an integer from 1 to {MAX_LIMIT}.")
        count = int(limit)
    rows = await asyncio.to_thread(on.svc.messages.changes, on.instance_id, since_us, count)
    return json_response(200, {"messages": rows})


@router.post(
    "/contacts/check",
    response_model=CheckResults,
    responses=errs(400, 429, 500, 503),
    openapi_extra=json_body(CheckRequest),
)
async def check_contacts(request: Request, on: On) -> Response:
    """Which of 1-50 phone numbers are on WhatsApp (READY only; cached, and lookups limited per hour)."""
    data = json_object(await request.body())
    return json_response(200, await on.svc.contacts.check(on.instance_id, data))
