"""The error body shared by both services: {"success": false, "code", "message", ...extra}."""

from typing import Any


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "code": code, "message": message}
    body.update(extra)
    return body
