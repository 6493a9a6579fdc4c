"""Identifier rules shared by both services (CONTRACT §1)."""

import re

INSTANCE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
IDEMPOTENCY_KEY_MAX = 255
# The largest id a cliente can have: the hub's INTEGER column (32-bit signed on PostgreSQL).
CLIENTE_ID_MAX = 2**31 - 1


def is_valid_instance_id(value: object) -> bool:
    return isinstance(value, str) and INSTANCE_ID_RE.fullmatch(value) is not None


def default_instance_id(cliente_id: int) -> str:
    """The hub's default instance for cliente N (CONTRACT §1)."""
    return f"sender_{cliente_id}"


def is_valid_idempotency_key(value: str) -> bool:
    # Printable ASCII but space (33-126) only: the key travels in an HTTP header and into logs/DB keys. String
    # methods rather than a generator over the characters: this runs on every keyed send.
    return 0 < len(value) <= IDEMPOTENCY_KEY_MAX and value.isascii() and value.isprintable() and " " not in value
