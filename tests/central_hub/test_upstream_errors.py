"""Every row of CONTRACT §3.4, driven against a real misbehaving HTTP server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from leadmaster.central_hub import errors
from leadmaster.central_hub.session_manager_client import SessionManagerClient, map_transport_error
from tests.central_hub import fake_upstream as fu
from tests.central_hub.conftest import HubClient
from tests.central_hub.fake_upstream import FakeUpstream

# §3.4, verbatim: (row, hub status, hub code). A row without a scenario below fails test_every_row_is_exercised.
CONTRACT_ROWS = [
    ("2xx", None, None),
    ("400", 400, "VALIDATION_ERROR"),
    ("409 or 503 (session not ready)", 503, "SERVICE_UNAVAILABLE"),
    ("500 or any other 5xx", 502, "WHATSAPP_ERROR"),
    ("401 / 403", 502, "SESSION_MANAGER_AUTH_FAILED"),
    ("429", 429, "RATE_LIMITED"),
    ("404 with an upstream code on a §5 route", 404, "NOT_FOUND"),
    ("any other status, or a body that is not the expected JSON", 502, "SESSION_MANAGER_BAD_RESPONSE"),
    ("connect or read timeout", 504, "SESSION_MANAGER_TIMEOUT"),
    ("connection refused, DNS failure, reset before a response", 503, "SESSION_MANAGER_UNREACHABLE"),
]


@dataclass
class Scenario:
    row: str
    behaviour: fu.Behaviour | None  # None: no server behind the URL (see `url`)
    op: str = "status"
    upstream_status: int | None = None
    url: Callable[[], Any] | None = None
    fmt: str | None = None


def _err(status: int, code: str, **extra: Any) -> fu.Behaviour:
    return fu.respond(status, {"success": False, "code": code, "message": "upstream says no", **extra})


SCENARIOS = {
    "200 status": Scenario("2xx", fu.respond(200, {"status": "READY", "reason": None}), upstream_status=200),
    "200 send": Scenario("2xx", fu.respond(200, {"success": True, "data": {"message_id": "m1"}}), op="send",
                         upstream_status=200),
    "200 qr png": Scenario("2xx", fu.respond(200, b"\x89PNG..", content_type="image/png"), op="qr", fmt="png",
                           upstream_status=200),
    "400 INVALID_TO": Scenario("400", _err(400, "INVALID_TO"), op="send", upstream_status=400),
    "409": Scenario("409 or 503 (session not ready)", _err(409, "CONFLICT"), upstream_status=409),
    "503 not ready": Scenario("409 or 503 (session not ready)",
                              fu.respond(503, {"success": False, "code": "SESSION_NOT_READY", "message": "no",
                                               "status": "QR_REQUIRED"}, headers={"Retry-After": "5"}),
                              op="send", upstream_status=503),
    "500 SEND_FAILED": Scenario("500 or any other 5xx", _err(500, "SEND_FAILED"), op="send", upstream_status=500),
    "502 html": Scenario("500 or any other 5xx", fu.respond(502, b"<html>bad gateway</html>",
                                                           content_type="text/html"), upstream_status=502),
    "401": Scenario("401 / 403", _err(401, "UNAUTHORIZED"), upstream_status=401),
    "403": Scenario("401 / 403", _err(403, "FORBIDDEN"), upstream_status=403),
    "429": Scenario("429", fu.respond(429, {"success": False, "code": "RATE_LIMITED", "message": "later"},
                                      headers={"Retry-After": "120"}), op="contacts_check", upstream_status=429),
    "404 MESSAGE_NOT_FOUND": Scenario("404 with an upstream code on a §5 route", _err(404, "MESSAGE_NOT_FOUND"),
                                      op="message", upstream_status=404),
    "404 on a §5 route without a code": Scenario("any other status, or a body that is not the expected JSON",
                                                 fu.respond(404, b"<html>no</html>", content_type="text/html"),
                                                 op="message", upstream_status=404),
    "200 messages without a list": Scenario("any other status, or a body that is not the expected JSON",
                                            fu.respond(200, {"messages": "none"}), op="messages",
                                            upstream_status=200),
    "200 messages": Scenario("2xx", fu.respond(200, {"messages": []}), op="messages", upstream_status=200),
    "404": Scenario("any other status, or a body that is not the expected JSON", _err(404, "NOT_FOUND"),
                    upstream_status=404),
    "302": Scenario("any other status, or a body that is not the expected JSON",
                    fu.respond(302, {}, headers={"Location": "/elsewhere"}), upstream_status=302),
    "200 html": Scenario("any other status, or a body that is not the expected JSON",
                         fu.respond(200, b"<html>hi</html>", content_type="text/html"), upstream_status=200),
    "200 array": Scenario("any other status, or a body that is not the expected JSON", fu.respond(200, [1]),
                          upstream_status=200),
    "200 status not in enum": Scenario("any other status, or a body that is not the expected JSON",
                                       fu.respond(200, {"state": "CONNECTED", "connected": True}),
                                       upstream_status=200),
    "200 send {ok,message_id}": Scenario("any other status, or a body that is not the expected JSON",
                                         fu.respond(200, {"ok": True, "message_id": "x"}), op="send",
                                         upstream_status=200),
    "200 qr png but json": Scenario("any other status, or a body that is not the expected JSON",
                                    fu.respond(200, {"status": "NO_QR"}), op="qr", fmt="png", upstream_status=200),
    "not HTTP": Scenario("any other status, or a body that is not the expected JSON", fu.garbage),
    "truncated body": Scenario("any other status, or a body that is not the expected JSON", fu.truncated(200),
                               upstream_status=200),
    "read timeout": Scenario("connect or read timeout", fu.hang),
    "connect timeout": Scenario("connect or read timeout", None, url=fu.full_backlog),
    "refused": Scenario("connection refused, DNS failure, reset before a response", None,
                        url=fu.closed_port_url),
    "reset": Scenario("connection refused, DNS failure, reset before a response", fu.reset),
    "reset on POST": Scenario("connection refused, DNS failure, reset before a response", fu.reset, op="send"),
    "closed without answer": Scenario("connection refused, DNS failure, reset before a response", fu.close),
}


def test_every_row_is_exercised() -> None:
    covered = {s.row for s in SCENARIOS.values()}
    missing = [row for row, _, _ in CONTRACT_ROWS if row not in covered]
    assert not missing, f"rows of CONTRACT §3.4 without a scenario: {missing}"


def test_every_upstream_error_class_is_a_row() -> None:
    codes = {code for _, _, code in CONTRACT_ROWS}
    for cls in errors.UpstreamError.__subclasses__():
        assert cls.code in codes, f"{cls.__name__} ({cls.code}) is not in the §3.4 table"


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[str], Any]]:
    clients: list[SessionManagerClient] = []

    async def make(url: str) -> SessionManagerClient:
        c = SessionManagerClient(url, api_key="k", connect_timeout=0.4, read_timeout=0.4)
        await c.start()
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


BODIES = {"send": {"cliente_id": 51, "to": "5491123456789", "message": "Hola"},
          "contacts_check": {"phones": ["5491123456789"]}}
SUBS = {"message": "3EB0ABC"}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_upstream_answer_maps_as_contract_says(
    name: str, fake: FakeUpstream, client_for: Callable[[str], Any]
) -> None:
    sc = SCENARIOS[name]
    _, want_status, want_code = next(r for r in CONTRACT_ROWS if r[0] == sc.row)
    if sc.behaviour is not None:
        fake.behaviour = sc.behaviour
    ctx = sc.url() if sc.url is not None else None
    url = ctx.__enter__() if hasattr(ctx, "__enter__") else (ctx or fake.url)
    try:
        client = await client_for(url)
        call = client.call(sc.op, "sender_51", json_body=BODIES.get(sc.op), fmt=sc.fmt, request_id="rid-1",
                           sub=SUBS.get(sc.op))
        if want_code is None:
            resp = await call
            assert resp.status == 200
        else:
            with pytest.raises(errors.UpstreamError) as info:
                await call
            exc = info.value
            assert (exc.status, exc.code) == (want_status, want_code), str(exc)
            assert exc.upstream_status == sc.upstream_status
            assert exc.__cause__ is not None or exc.upstream_status is not None  # raised `from` the failure
    finally:
        if hasattr(ctx, "__exit__"):
            ctx.__exit__(None, None, None)
    # Exactly one upstream request (none when nothing listens): no retries, not even on a reused connection.
    assert len(fake.requests) == (1 if sc.behaviour is not None else 0)


def test_dns_failure_maps_to_unreachable() -> None:
    # A real DNS failure would need a resolver off loopback; the mapping is exercised with aiohttp's own error.
    key = aiohttp.client_reqrep.ConnectionKey("no-such-host.invalid", 80, False, True, None, None, None)
    exc = aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))
    mapped = map_transport_error(exc, "GET /status")
    assert (mapped.status, mapped.code, mapped.upstream_status) == (503, "SESSION_MANAGER_UNREACHABLE", None)


async def test_stale_keepalive_get_is_not_retried(fake: FakeUpstream, client_for: Callable[[str], Any]) -> None:
    client = await client_for(fake.url)
    await client.call("status", "a")
    fake.behaviour = fu.reset
    with pytest.raises(errors.SessionManagerUnreachableError):
        await client.call("status", "a")
    assert len(fake.requests) == 2


async def test_hub_error_body_keeps_retry_after_status_and_request_id(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = SCENARIOS["503 not ready"].behaviour  # type: ignore[assignment]
    r = await hub.http.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "Hola"},
                            headers={**hub.auth(), "X-Request-Id": "req-503"})
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json() == {
        "success": False, "code": "SERVICE_UNAVAILABLE", "message": r.json()["message"], "upstream_status": 503,
        "upstream_code": "SESSION_NOT_READY", "status": "QR_REQUIRED", "request_id": "req-503",
    }
    assert len(fake.calls) == 1


async def test_hub_keeps_upstream_code_on_400(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = _err(400, "INVALID_TO")
    r = await hub.http.post("/api/whatsapp/51/send", json={"to": "12", "message": "Hola"}, headers=hub.auth())
    body = r.json()
    assert (r.status_code, body["code"], body["upstream_code"], body["upstream_status"]) == (
        400, "VALIDATION_ERROR", "INVALID_TO", 400)
    assert body["request_id"] == r.headers["x-request-id"]


async def test_hub_timeout_body_has_null_upstream_status(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.hang
    r = await hub.http.get("/api/whatsapp/51/status", headers=hub.auth())
    assert r.status_code == 504
    assert r.json()["code"] == "SESSION_MANAGER_TIMEOUT"
    assert r.json()["upstream_status"] is None


@pytest.mark.parametrize("op", ["status", "message"])
@pytest.mark.parametrize("status", [s for s in range(100, 600) if not 200 <= s <= 299])
def test_every_non_2xx_status_has_exactly_the_table_mapping(status: int, op: Any) -> None:
    from leadmaster.central_hub.session_manager_client import map_error_status

    expected = (
        (400, "VALIDATION_ERROR") if status == 400
        else (503, "SERVICE_UNAVAILABLE") if status in (409, 503)
        else (502, "SESSION_MANAGER_AUTH_FAILED") if status in (401, 403)
        else (429, "RATE_LIMITED") if status == 429
        else (404, "NOT_FOUND") if status == 404 and op == "message"
        else (502, "WHATSAPP_ERROR") if status >= 500
        else (502, "SESSION_MANAGER_BAD_RESPONSE")
    )
    exc = map_error_status(status, b'{"code": "SOME_CODE"}', {}, "GET /x", op)
    assert (exc.status, exc.code, exc.upstream_status) == (*expected, status)
