"""Parsing of the `to` field (CONTRACT §1): only the session-manager interprets phone numbers."""

import re

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
