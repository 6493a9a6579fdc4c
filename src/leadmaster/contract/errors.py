"""The error body shared by both services: {"success": false, "code", "message", ...extra}."""

from typing import Any, ClassVar

from leadmaster.contract.codes import ErrorCode


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "code": code, "message": message}
    body.update(extra)
    return body


class ContractError(Exception):
    """Base of both services' error hierarchies: the HTTP status and `code` are class attributes."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def body(self, **more: Any) -> dict[str, Any]:
        return error_body(self.code, self.message, **self.extra, **more)
