"""Parsing of request bodies: JSON objects, the send body (CONTRACT §2.5) and phone numbers (§1).

Only the session-manager interprets phone numbers; the hub passes `to` through untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from leadmaster.session_manager import errors

MAX_MESSAGE_CHARS = 65_536

_DIGITS_RE = re.compile(r"\+?([0-9]{7,15})")
_JID_RE = re.compile(r"([0-9]{7,15})@(s\.whatsapp\.net|c\.us)")
USER_SERVER = "s.whatsapp.net"


def parse_to(value: object) -> str | None:
    """Return the user JID for a phone number or user JID, or None when it is neither."""
    if not isinstance(value, str):
        return None
    # ASCII digits only: str.isdigit() and \d would also accept other scripts' digits.
    match = _DIGITS_RE.fullmatch(value) or _JID_RE.fullmatch(value)
    if match is None:
        return None
    return f"{match.group(1)}@{USER_SERVER}"


def parse_phone(value: object) -> str | None:
    """Digits of a phone number for pairing (same rule as `to`, but no JID)."""
    if not isinstance(value, str):
        return None
    match = _DIGITS_RE.fullmatch(value)
    return match.group(1) if match else None


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400 INVALID_JSON."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.InvalidJsonError("Request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise errors.InvalidJsonError(f"Request body must be a JSON object, not {type(data).__name__}.")
    return data


@dataclass(frozen=True, slots=True)
class SendBody:
    cliente_id: int
    to: str  # as the caller wrote it
    jid: str
    message: str


def parse_send(body: bytes) -> SendBody:
    """Validate a send body in the order of CONTRACT §2.5."""
    data = json_object(body)
    cliente_id = data.get("cliente_id")
    if type(cliente_id) is not int or cliente_id <= 0:
        raise errors.InvalidClienteIdError(f"cliente_id must be a positive integer, got {cliente_id!r:.40}.")
    to = data.get("to")
    jid = parse_to(to)
    if jid is None:
        raise errors.InvalidToError(
            f"to {str(to)[:40]!r} is not a phone number (7-15 digits, optional +) or a user JID."
        )
    assert isinstance(to, str)
    message = data.get("message")
    if not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE_CHARS:
        raise errors.InvalidMessageError(
            f"message must be a non-blank string of at most {MAX_MESSAGE_CHARS} characters."
        )
    return SendBody(cliente_id, to, jid, message)
