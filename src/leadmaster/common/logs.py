"""Structured logging: one JSON object per line, request id attached, phones masked; readable lines for people.

Callers pass data as `extra={"fields": {...}}`; never a message body, password, token or key.
LEADMASTER_LOG_FORMAT chooses `json` or `pretty`; unset, a terminal gets `pretty` and anything else `json`.
"""

import contextvars
import functools
import logging
import re
import sys
import time
from typing import IO, Any, Literal

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


LOG_FORMAT_VAR = "LEADMASTER_LOG_FORMAT"
LogFormat = Literal["json", "pretty"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "pretty")


def resolve_log_format(choice: str | None, stream: IO[str]) -> LogFormat:
    """The format asked for, or by default `pretty` on a terminal and `json` for pipes, files and collectors."""
    if not choice:
        return "pretty" if stream.isatty() else "json"
    if choice not in LOG_FORMATS:
        raise ValueError(f"{LOG_FORMAT_VAR}={choice!r} is invalid: use json or pretty")
    return "json" if choice == "json" else "pretty"


# Shown in their own columns (or not at all) by `pretty_line`; every other key is a key=value field.
_PRETTY_OWN = frozenset({"ts", "level", "service", "logger", "msg", "exc", "request_id"})


def _pretty_value(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    # Quoted only when needed, so that `key=value` pairs stay unambiguous.
    return orjson.dumps(text).decode() if not text or any(c in text for c in ' ="\n\t') else text


def pretty_line(entry: dict[str, Any]) -> str:
    """One JSON log entry as `HH:MM:SS.mmm LEVEL service message key=value ... request_id=...` (UTC time)."""
    when = str(entry.get("ts", ""))[11:23]
    level = str(entry.get("level", "")).upper()
    fields = [f"{k}={_pretty_value(v)}" for k, v in entry.items() if k not in _PRETTY_OWN and v is not None]
    if entry.get("request_id"):
        fields.append(f"request_id={entry['request_id']}")
    line = f"{when} {level:<7} {entry.get('service', ''):<15} {entry.get('msg', '')}"
    if fields:
        line += "  " + " ".join(fields)
    if entry.get("exc"):
        line += "\n" + "\n".join("    " + exc_line for exc_line in str(entry["exc"]).splitlines())
    return line


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(self.entry(record), default=str).decode()

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
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
        return entry


class PrettyFormatter(JsonFormatter):
    """The same entry as JsonFormatter (masked alike), drawn as one readable line for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return pretty_line(self.entry(record))


def configure_logging(service: str, level: str = "INFO", log_format: str | None = None) -> None:
    """Route every logger (ours, uvicorn's, third parties') through one handler on stderr, JSON or pretty."""
    # Our lines never show caller, thread or process fields: skip collecting them on every record
    # (finding the caller's frame alone was the most expensive part of a log call on the send path).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    pretty = resolve_log_format(log_format, sys.stderr) == "pretty"
    handler.setFormatter(PrettyFormatter(service) if pretty else JsonFormatter(service))
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
