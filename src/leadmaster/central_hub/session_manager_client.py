"""The one HTTP client the hub uses to reach the session-manager (CONTRACT §3.2, §3.4).

aiohttp rather than httpx: in the proxy-hop measurement of PERF_NOTES.md it adds ~0.36 ms per call against
httpx's ~1 ms and keeps ~0.45 of direct throughput against httpx's ~0.08. No retries of any kind: the
caller decides (the plan), so aiohttp's silent re-send of idempotent requests on a stale keep-alive
connection is switched off too.
"""

import asyncio
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson

from leadmaster.central_hub import errors
from leadmaster.common.metrics import Counter, Histogram
from leadmaster.contract.status import SessionStatus

Operation = Literal[
    "status", "qr", "connect", "disconnect", "logout", "pair_code", "account", "send",
    "message", "messages", "contacts_check",
]
ApiMode = Literal["instances", "single-admin"]

# Below uvicorn's 5 s keep-alive so that the hub never reuses a connection the session-manager is closing
# (that race would surface as a spurious SESSION_MANAGER_UNREACHABLE on a POST, which is not retried).
KEEPALIVE_SECONDS = 4.0
POOL_SIZE = 256
_STATUSES = frozenset(s.value for s in SessionStatus)
_CANONICAL: dict[Operation, tuple[str, str]] = {
    "status": ("GET", "/status"),
    "qr": ("GET", "/qr"),
    "connect": ("POST", "/connect"),
    "disconnect": ("POST", "/disconnect"),
    "logout": ("POST", "/logout"),
    "pair_code": ("POST", "/pair-code"),
    "account": ("GET", "/account"),
    "send": ("POST", "/send"),
    # CONTRACT §5 (delivery truth); `message` appends "/<message_id>".
    "message": ("GET", "/messages"),
    "messages": ("GET", "/messages"),
    "contacts_check": ("POST", "/contacts/check"),
}
_DELIVERY_OPS = frozenset({"message", "messages", "contacts_check"})
# The as-is single-admin routes (CONTRACT §2.3): no instance in the path, no pair-code, no account, no §5.
_SINGLE_ADMIN: dict[Operation, tuple[str, str]] = {
    op: route for op, route in _CANONICAL.items() if op not in ("pair_code", "account", *_DELIVERY_OPS)
}
_IMAGE_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)


# ---------------------------------------------------------------------------------------------------------
# The whole error mapping of CONTRACT §3.4, in one place, most specific first.
# ---------------------------------------------------------------------------------------------------------

def map_transport_error(exc: BaseException, what: str, status: int | None = None) -> errors.UpstreamError:
    """Translate an aiohttp/OS failure into the hub error of §3.4 (timeouts before connection errors)."""
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError, TimeoutError)):
        kind = "connect" if isinstance(exc, aiohttp.ConnectionTimeoutError) else "read"
        return errors.SessionManagerTimeoutError(
            f"{what}: the session-manager did not answer in time ({kind} timeout).", upstream_status=status
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return errors.SessionManagerBadResponseError(
            f"{what}: the session-manager's response body was cut short ({exc}).", upstream_status=status
        )
    if isinstance(exc, aiohttp.ClientResponseError):
        return errors.SessionManagerBadResponseError(
            f"{what}: the session-manager did not answer valid HTTP ({exc.message}).", upstream_status=status
        )
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                        ConnectionError, OSError)):
        return errors.SessionManagerUnreachableError(
            f"{what}: cannot reach the session-manager ({type(exc).__name__}: {exc}). "
            "Is it running, and is SESSION_MANAGER_BASE_URL right?",
            upstream_status=None,
        )
    return errors.SessionManagerBadResponseError(
        f"{what}: unexpected failure talking to the session-manager ({type(exc).__name__}).",
        upstream_status=status,
    )


def map_error_status(
    status: int, body: bytes, headers: Mapping[str, str], what: str, op: Operation | None = None
) -> errors.UpstreamError:
    """Translate a non-2xx session-manager answer into the hub error of §3.4."""
    parsed = _json_object(body)
    upstream_code = parsed.get("code") if isinstance(parsed.get("code"), str) else None
    upstream_msg = parsed.get("message") if isinstance(parsed.get("message"), str) else None
    said = f" {upstream_code}" if upstream_code else ""
    said += f": {upstream_msg}" if upstream_msg else ""
    common: dict[str, Any] = {"upstream_status": status, "upstream_code": upstream_code}
    if status == 400:
        return errors.UpstreamValidationError(
            f"{what}: the session-manager refused the request{said}", **common
        )
    keep: dict[str, str] = {}
    if "Retry-After" in headers:
        keep["Retry-After"] = headers["Retry-After"]
    if status == 429:
        if keep.get("Retry-After", "").isdigit():
            common["retry_after"] = int(keep["Retry-After"])  # also in the body, for clients that lose headers
        return errors.UpstreamRateLimitedError(f"{what}: the session-manager refused: too many requests{said}",
                                          headers=keep, **common)
    if status == 404 and upstream_code and op in _DELIVERY_OPS:
        # A §5 lookup that found nothing (MESSAGE_NOT_FOUND): the caller asked for something that is not there.
        return errors.UpstreamNotFoundError(f"{what}: not found{said}", **common)
    if status in (409, 503):
        session_status = parsed.get("status")
        if isinstance(session_status, str):
            common["status"] = session_status
        return errors.ServiceUnavailableError(
            f"{what}: the WhatsApp session is not ready{said}", headers=keep, **common
        )
    if status in (401, 403):
        return errors.SessionManagerAuthFailedError(
            f"{what}: the session-manager refused the hub's credentials ({status}{said}). "
            "Check SESSION_MANAGER_API_KEY on both services.",
            **common,
        )
    if 500 <= status <= 599:
        return errors.WhatsAppError(f"{what}: the session-manager failed ({status}{said})", **common)
    return errors.SessionManagerBadResponseError(
        f"{what}: unexpected answer {status} from the session-manager{said}", **common
    )


_A_STATUS = 'a "status" of ' + "|".join(s.value for s in SessionStatus)
# What a 2xx body must say per operation, for the error message (the checks are in check_success_body).
_EXPECTED: dict[str, str] = {
    "status": f"a JSON object with {_A_STATUS}",
    "connect": f'a JSON object with "success": true or {_A_STATUS}',
    "disconnect": f'a JSON object with "success": true or {_A_STATUS}',
    "logout": f'a JSON object with "success": true or {_A_STATUS}',
    "send": 'a JSON object with "success": true',
    "qr": 'a JSON object with a "status" string',
    "pair_code": 'a JSON object with a "code" string',
}


def check_success_body(op: Operation, resp: UpstreamResponse, fmt: str | None, what: str) -> None:
    """A 2xx whose body says none of what §3.4 accepts for `op` is SESSION_MANAGER_BAD_RESPONSE."""
    if op == "qr" and fmt in _IMAGE_TYPES:
        ok = resp.content_type.split(";")[0].strip().lower() == _IMAGE_TYPES[fmt]
    else:
        maybe = _maybe_object(resp.body)
        body = maybe or {}
        if maybe is None:
            ok = False
        elif op in ("connect", "disconnect", "logout"):
            # Lenient (§3.4, the plan's "200 OK -> return success"): the as-is Node session-manager answers
            # connect {"success":true,"message":"Connected","state":"INIT",...} with no status at all.
            ok = body.get("success") is True or body.get("status") in _STATUSES
        elif op == "status":
            ok = body.get("status") in _STATUSES
        elif op == "qr":
            ok = isinstance(body.get("status"), str)
        elif op == "send":
            ok = body.get("success") is True
        elif op == "pair_code":
            ok = isinstance(body.get("code"), str)
        elif op == "message":
            ok = isinstance(body.get("message_id"), str) and isinstance(body.get("status"), str)
        elif op == "messages":
            ok = isinstance(body.get("messages"), list)
        elif op == "contacts_check":
            ok = isinstance(body.get("results"), list)
        else:
            ok = True
    if not ok:
        image = op == "qr" and fmt in _IMAGE_TYPES
        expected = f"an image ({_IMAGE_TYPES[fmt or '']})" if image else _EXPECTED.get(op, "JSON")
        raise errors.SessionManagerBadResponseError(
            f"{what}: the session-manager answered {resp.status} with a body that is not {expected} "
            f"(the answer for {op!r}).",
            upstream_status=resp.status,
        )


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or {} when it is anything else."""
    return _maybe_object(body) or {}


def _maybe_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------------------------------


class SessionManagerClient:
    """Calls the session-manager; returns its 2xx answer untouched or raises an `errors.UpstreamError`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        api: ApiMode = "instances",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api = api
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._base_headers = {"Content-Type": "application/json"}
        if api_key:
            self._base_headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None
        self.calls = Counter(
            "central_hub_upstream_requests_total", "Session-manager calls by operation and outcome code",
            ("operation", "outcome"),
        )
        self.latency = Histogram(
            "central_hub_upstream_request_duration_seconds", "Session-manager call latency", ("operation",)
        )

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=KEEPALIVE_SECONDS)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._timeout, json_serialize=lambda v: orjson.dumps(v).decode(),
            # The session-manager sets no cookies, and a caller's cookies must never travel upstream.
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        self._session._retry_connection = False  # no silent re-send of GETs: CONTRACT §3.2 "no retries"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def route(self, op: Operation, instance_id: str | None, sub: str | None = None) -> tuple[str, str]:
        """(method, path) of `op` (`sub`: a path segment to append); NotSupported when the API has no such route."""
        if self.api == "single-admin":
            if op not in _SINGLE_ADMIN:
                raise errors.NotSupportedError(
                    f"{op!r} needs the canonical session-manager routes; this hub runs with "
                    "SESSION_MANAGER_API=single-admin. Set SESSION_MANAGER_API=instances."
                )
            return _SINGLE_ADMIN[op]
        method, suffix = _CANONICAL[op]
        if sub is not None:
            suffix += "/" + urllib.parse.quote(sub, safe="")
        return method, f"/api/session-manager/sessions/{instance_id}{suffix}"

    async def call(
        self,
        op: Operation,
        instance_id: str | None,
        *,
        json_body: dict[str, Any] | None = None,
        fmt: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        sub: str | None = None,
        query: dict[str, str] | None = None,
    ) -> UpstreamResponse:
        method, path = self.route(op, instance_id, sub)
        what = f"{method} {path}"
        headers = self._base_headers.copy()
        if request_id:
            headers["X-Request-Id"] = request_id
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        if fmt:
            query = {**(query or {}), "format": fmt}
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = orjson.dumps(json_body) if json_body is not None else None
        started = time.perf_counter()
        outcome = "OK"
        try:
            resp = await self._request(method, url, data, headers, what)
            if 200 <= resp.status <= 299:
                check_success_body(op, resp, fmt, what)
                return resp
            raise map_error_status(resp.status, resp.body, resp.headers, what, op)
        except errors.UpstreamError as exc:
            outcome = exc.code
            raise
        finally:
            elapsed = time.perf_counter() - started
            self.calls.inc(op, outcome)
            self.latency.observe(elapsed, op)

    async def request(
        self, method: str, path: str, *, json_body: dict[str, Any] | None = None, request_id: str | None = None
    ) -> UpstreamResponse:
        """A call outside the operation table (e.g. the dashboard's sandbox helpers).

        Transport failures are mapped as in §3.4; the status is the caller's to judge (map_error_status).
        """
        headers = self._base_headers.copy()
        if request_id:
            headers["X-Request-Id"] = request_id
        data = orjson.dumps(json_body) if json_body is not None else None
        return await self._request(method, self.base_url + path, data, headers, f"{method} {path}")

    async def _request(
        self, method: str, url: str, data: bytes | None, headers: dict[str, str], what: str
    ) -> UpstreamResponse:
        if self._session is None:
            raise RuntimeError("SessionManagerClient.start() was not awaited")
        status: int | None = None
        try:
            # A redirect is "any other status" (§3.4), never followed.
            async with self._session.request(
                method, url, data=data, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                body = await resp.read()
                return UpstreamResponse(resp.status, body, resp.headers.get("Content-Type", ""), resp.headers)
        except Exception as exc:
            raise map_transport_error(exc, what, status) from exc

    async def health(self) -> bool:
        """GET {base}/health; True on a 200. Never raises."""
        if self._session is None:
            return False
        try:
            async with self._session.get(self.base_url + "/health", headers=self._base_headers) as resp:
                await resp.read()
                return resp.status == 200
        except Exception:
            return False
