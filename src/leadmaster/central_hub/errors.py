"""Every error the hub answers with, as one hierarchy; one handler renders any of them as JSON.

    HubError                               500 INTERNAL_ERROR
    ├── ValidationFailedError              400 VALIDATION_ERROR     (the hub's own checks, before any call)
    ├── UnauthorizedError                  401 UNAUTHORIZED
    │   └── InvalidCredentialsError        401 INVALID_CREDENTIALS
    ├── ForbiddenError                     403 FORBIDDEN
    ├── NotFoundError                      404 NOT_FOUND
    ├── ConflictError                      409 CONFLICT
    ├── TooManyAttemptsError               429 TOO_MANY_ATTEMPTS    (login limit; Retry-After)
    ├── NotSupportedError                  501 NOT_SUPPORTED        (not in SESSION_MANAGER_API=single-admin)
    └── UpstreamError                      502 (abstract: the session-manager call failed; CONTRACT §3.4)
        ├── UpstreamValidationError        400 VALIDATION_ERROR     (upstream 400; upstream_code kept)
        ├── ServiceUnavailableError        503 SERVICE_UNAVAILABLE  (upstream 409/503; Retry-After, status kept)
        ├── UpstreamRateLimitedError       429 RATE_LIMITED         (upstream 429; Retry-After kept)
        ├── UpstreamNotFoundError          404 NOT_FOUND            (upstream 404 with a code on a §5 route)
        ├── WhatsAppError                  502 WHATSAPP_ERROR       (upstream 500 or any other 5xx)
        ├── SessionManagerAuthFailedError  502 SESSION_MANAGER_AUTH_FAILED  (upstream 401/403)
        ├── SessionManagerBadResponseError 502 SESSION_MANAGER_BAD_RESPONSE (other status, unexpected body)
        ├── SessionManagerTimeoutError     504 SESSION_MANAGER_TIMEOUT      (connect or read timeout)
        └── SessionManagerUnreachableError 503 SESSION_MANAGER_UNREACHABLE  (refused, DNS, reset before answer)

Naming: a class that ends in `Error` is answered over HTTP with its status and code (ErrorCode); the
session-manager's engine exceptions (engines/base.py) end in nothing.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from leadmaster.common.asgi import json_response
from leadmaster.common.logs import request_id_var
from leadmaster.contract.codes import ErrorCode
from leadmaster.contract.errors import ContractError, error_body


class HubError(ContractError):
    """Base of the hub's errors; its bodies always carry the request id."""

    def body(self, request_id: str | None = None, **more: Any) -> dict[str, Any]:
        return super().body(**more, request_id=request_id)


class ValidationFailedError(HubError):
    status, code = 400, ErrorCode.VALIDATION_ERROR


class UnauthorizedError(HubError):
    status, code = 401, ErrorCode.UNAUTHORIZED

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"}, **extra)


class InvalidCredentialsError(UnauthorizedError):
    code = ErrorCode.INVALID_CREDENTIALS


class ForbiddenError(HubError):
    status, code = 403, ErrorCode.FORBIDDEN


class NotFoundError(HubError):
    status, code = 404, ErrorCode.NOT_FOUND


class ConflictError(HubError):
    status, code = 409, ErrorCode.CONFLICT


class TooManyAttemptsError(HubError):
    status, code = 429, ErrorCode.TOO_MANY_ATTEMPTS

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)}, retry_after=retry_after)


class NotSupportedError(HubError):
    status, code = 501, ErrorCode.NOT_SUPPORTED


class UpstreamError(HubError):
    """A session-manager call failed; `upstream_status` is always in the body (null when no answer)."""

    status, code = 502, ErrorCode.SESSION_MANAGER_BAD_RESPONSE

    def __init__(self, message: str, *, upstream_status: int | None, **extra: Any) -> None:
        super().__init__(message, upstream_status=upstream_status, **extra)
        self.upstream_status = upstream_status


class UpstreamValidationError(UpstreamError):
    status, code = 400, ErrorCode.VALIDATION_ERROR


class ServiceUnavailableError(UpstreamError):
    status, code = 503, ErrorCode.SERVICE_UNAVAILABLE


class UpstreamRateLimitedError(UpstreamError):
    status, code = 429, ErrorCode.RATE_LIMITED


class UpstreamNotFoundError(UpstreamError):
    status, code = 404, ErrorCode.NOT_FOUND


class WhatsAppError(UpstreamError):
    status, code = 502, ErrorCode.WHATSAPP_ERROR


class SessionManagerAuthFailedError(UpstreamError):
    status, code = 502, ErrorCode.SESSION_MANAGER_AUTH_FAILED


class SessionManagerBadResponseError(UpstreamError):
    status, code = 502, ErrorCode.SESSION_MANAGER_BAD_RESPONSE


class SessionManagerTimeoutError(UpstreamError):
    status, code = 504, ErrorCode.SESSION_MANAGER_TIMEOUT


class SessionManagerUnreachableError(UpstreamError):
    status, code = 503, ErrorCode.SESSION_MANAGER_UNREACHABLE


def error_response(exc: HubError, request_id: str | None) -> Response:
    return json_response(exc.status, exc.body(request_id), exc.headers or None)


def install_error_handler(app: FastAPI) -> None:
    """Register the one handler that turns any HubError into its JSON body."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HubError)
        return error_response(exc, request_id_var.get())

    app.add_exception_handler(HubError, handle)


# Every error response the public routes can give, for the OpenAPI document.
def doc_response(description: str, code: str, **extra: Any) -> dict[str, Any]:
    example = error_body(code, "...", **extra, request_id="3f2a9c...")
    return {"description": description, "content": {"application/json": {"example": example}}}


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: doc_response("VALIDATION_ERROR: the request is malformed", ErrorCode.VALIDATION_ERROR),
    401: doc_response("UNAUTHORIZED: no or bad token / API key", ErrorCode.UNAUTHORIZED),
    403: doc_response("FORBIDDEN: the caller may not act on this resource", ErrorCode.FORBIDDEN),
    404: doc_response("NOT_FOUND: unknown cliente (or resource)", ErrorCode.NOT_FOUND),
}
UPSTREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    400: doc_response(
        "VALIDATION_ERROR: the hub's own check, or the session-manager's 400 "
        "(`upstream_code` keeps its code)",
        ErrorCode.VALIDATION_ERROR, upstream_status=400, upstream_code=ErrorCode.INVALID_TO,
    ),
    429: doc_response(
        "RATE_LIMITED: the session-manager's limit (number checks per hour); `Retry-After` kept",
        ErrorCode.RATE_LIMITED, upstream_status=429, upstream_code=ErrorCode.RATE_LIMITED,
    ),
    501: doc_response("NOT_SUPPORTED: not available with SESSION_MANAGER_API=single-admin", ErrorCode.NOT_SUPPORTED),
    502: doc_response(
        "WHATSAPP_ERROR (upstream 5xx), SESSION_MANAGER_AUTH_FAILED (upstream 401/403), "
        "SESSION_MANAGER_BAD_RESPONSE (any other status, or an unexpected body)",
        ErrorCode.WHATSAPP_ERROR, upstream_status=500, upstream_code=ErrorCode.SEND_FAILED,
    ),
    503: doc_response(
        "SERVICE_UNAVAILABLE (upstream 409/503: session not ready; Retry-After and `status` kept), or "
        "SESSION_MANAGER_UNREACHABLE (connection refused, DNS failure, reset before a response)",
        ErrorCode.SERVICE_UNAVAILABLE, upstream_status=503, upstream_code=ErrorCode.SESSION_NOT_READY,
        status="QR_REQUIRED",
    ),
    504: doc_response(
        "SESSION_MANAGER_TIMEOUT: connect or read timeout", ErrorCode.SESSION_MANAGER_TIMEOUT, upstream_status=None
    ),
}
