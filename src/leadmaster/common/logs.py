"""Structured JSON logging: one object per line, request id attached, phones masked.

Callers pass data as `extra={"fields": {...}}`; never a message body, password, token or key.
"""

import contextvars
import functools
import logging
import re
import sys
import time
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Digit runs long enough to be a phone number (7+), optionally inside a JID.
_PHONE_RE = re.compile(r"\+?\d{7,15}(?=@|\b)")


def mask_phone(value: str | None) -> str | None:
    """Keep only the last 4 digits of a phone number or JID (CONTRACT §1)."""
    if value is None:
        return None
    return _PHONE_RE.sub(lambda m: "***" + m.group(0)[-4:], value)


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second))


def _timestamp(created: float, msecs: float) -> str:
    # Many lines share a second: format it once.
    return f"{_second(int(created))}.{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            # Masked here, once, so that no code path can leak a full number through a message.
            "msg": mask_phone(record.getMessage()),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            entry["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, val in fields.items():
                entry[key] = mask_phone(val) if isinstance(val, str) else val
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, third parties') through one JSON handler on stderr."""
    # Our lines never show caller, thread or process fields: skip collecting them on every record
    # (finding the caller's frame alone was the most expensive part of a log call on the send path).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # Our own middleware logs each request once; uvicorn's access log would double it.
    logging.getLogger("uvicorn.access").disabled = True


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})
