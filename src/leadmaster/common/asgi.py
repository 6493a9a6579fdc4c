"""One pure-ASGI middleware for both services: request id, body limit, optional API key, access log.

Pure ASGI rather than BaseHTTPMiddleware because it sits on the send hot path (see bench/).
"""

import hmac
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadmaster.common.logs import log, request_id_var
from leadmaster.contract.codes import ErrorCode
from leadmaster.contract.errors import error_body

MAX_BODY_BYTES = 1 << 20
_REQUEST_ID_MAX = 128


class _BodyTooLarge(Exception):
    pass


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def _send_json(send: Send, status: int, body: dict[str, Any], request_id: str) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# A generated request id: 32 hex digits like a uuid4's, a random per-process half and a counter, because
# uuid4 asks the kernel for randomness on every request (a system call the send path profile showed).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()


def _clean_request_id(raw: bytes | None) -> str:
    # A caller's id is kept only when it is short printable ASCII: it goes into every log line.
    if raw:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if 0 < len(text) <= _REQUEST_ID_MAX and text.isprintable():
            return text
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger,
        api_key: str | None = None,
        open_paths: Iterable[str] = ("/health",),
        max_body: int = MAX_BODY_BYTES,
        observe: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.logger = logger
        self.api_key = api_key.encode() if api_key else None
        self.open_paths = frozenset(open_paths)
        self.max_body = max_body
        self.observe = observe

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        assert self.api_key is not None
        auth = headers.get(b"authorization", b"")
        candidate = auth[7:].strip() if auth[:7].lower() == b"bearer " else headers.get(b"x-api-key", b"")
        return hmac.compare_digest(candidate, self.api_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = _clean_request_id(headers.get(b"x-request-id"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status_holder = [0]
        path: str = scope["path"]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        received = [0]

        async def receive_wrapper() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > self.max_body:
                    raise _BodyTooLarge
            return message

        try:
            if self.api_key is not None and path not in self.open_paths and not self._authorized(headers):
                await _send_json(
                    send_wrapper,
                    401,
                    error_body(ErrorCode.UNAUTHORIZED, "Missing or wrong API key: send 'Authorization: Bearer <key>'."),
                    request_id,
                )
                status_holder[0] = 401
                return
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await _send_json(send, 413, _too_large(self.max_body), request_id)
                status_holder[0] = 413
                return
            await self.app(scope, receive_wrapper, send_wrapper)
        except ClientDisconnect:
            # Gone before its body arrived (or dropped by the read timeout, common/server.py): nobody to answer.
            if status_holder[0] == 0:
                status_holder[0] = 499
        except _BodyTooLarge:
            if status_holder[0] == 0:
                await _send_json(send, 413, _too_large(self.max_body), request_id)
                status_holder[0] = 413
        except Exception:
            self.logger.exception("unhandled error", extra={"fields": {"path": path}})
            if status_holder[0] == 0:
                await _send_json(
                    send,
                    500,
                    error_body(ErrorCode.INTERNAL_ERROR, "Unexpected server error.", request_id=request_id),
                    request_id,
                )
                status_holder[0] = 500
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            if self.observe is not None:
                self.observe(scope["method"], route_path, status_holder[0], elapsed)
            log(
                self.logger,
                logging.INFO,
                "request",
                method=scope["method"],
                path=path,
                status=status_holder[0],
                duration_ms=round(elapsed * 1000, 3),
            )
            request_id_var.reset(token)


def _too_large(limit: int) -> dict[str, Any]:
    return error_body(ErrorCode.PAYLOAD_TOO_LARGE, f"Request body is larger than {limit} bytes.")


def install_json_errors(
    app: FastAPI,
    validation_code: ErrorCode,
    extra: Callable[[Request], dict[str, Any]] | None = None,
) -> None:
    """Make 404/405/422 and friends JSON error bodies (CONTRACT §1: never an HTML page)."""

    def _extra(request: Request) -> dict[str, Any]:
        return extra(request) if extra else {}

    async def http_exc(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        codes = {
            404: (ErrorCode.NOT_FOUND, "No such route: {m} {p}."),
            405: (ErrorCode.METHOD_NOT_ALLOWED, "{m} is not allowed on {p}."),
        }
        code, template = codes.get(exc.status_code, (ErrorCode.HTTP_ERROR, str(exc.detail)))
        msg = template.format(m=request.method, p=request.url.path)
        return json_response(exc.status_code, error_body(code, msg, **_extra(request)), dict(exc.headers or {}))

    async def validation_exc(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"])
        return json_response(
            400,
            error_body(
                validation_code,
                f"Invalid request: {where}: {first['msg']}",
                details=details,
                **_extra(request),
            ),
        )

    app.add_exception_handler(StarletteHTTPException, http_exc)
    app.add_exception_handler(RequestValidationError, validation_exc)


Handler = Callable[[Request, Exception], Awaitable[Response]]
