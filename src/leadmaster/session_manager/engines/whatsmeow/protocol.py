"""The pipe protocol between the engine (API process) and its Go worker: length-prefixed JSON frames.

Parent → worker, on the worker's stdin: `{"id": n, "op": "...", "args": {...}}`.
Worker → parent, on a duplicate of the worker's original stdout (fd 1 itself is pointed at stderr so that
raw Go output can never corrupt a frame):
  replies `{"id": n, "ok": true, "result": ...}`
       or `{"id": n, "ok": false, "error": <kind>, "message": "..."}`,
  events  `{"ev": "status"|"qr"|"paired"|"unpaired"|"ended"|"receipt", "instance": ..., "gen": ..., ...}`.
The Go side is engine-worker/protocol.go.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

HEADER = struct.Struct(">I")
MAX_FRAME = 8 * 1024 * 1024

# Error kinds a reply may carry; the engine maps them onto the port's exceptions.
NOT_READY = "not_ready"
SEND_FAILED = "send_failed"
SEND_OUTCOME_UNKNOWN = "send_outcome_unknown"  # no ack in time / connection lost while waiting for it
FAILED = "failed"
BAD_REQUEST = "bad_request"


def encode(message: dict[str, Any]) -> bytes:
    body = orjson.dumps(message)
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise ValueError(f"frame is not a JSON object: {body[:80]!r}")
    return value
