"""The per-cliente routes: what reaches the session-manager, and what comes back unchanged."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from tests.central_hub import fake_upstream as fu
from tests.central_hub.conftest import HubClient, hub_settings, start_hub_client
from tests.central_hub.fake_upstream import FakeUpstream

SEND_OK = {"success": True, "message": "Message sent", "data": {
    "message_id": "3EB0", "cliente_id": 51, "to": "5491123456789", "jid": "5491123456789@s.whatsapp.net",
    "timestamp": "2026-03-01T00:00:00Z"}}


async def test_send_forwards_body_headers_and_returns_answer_unchanged(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    raw = orjson.dumps(SEND_OK) + b"  "  # byte-for-byte pass-through, not a re-serialisation
    fake.behaviour = fu.respond(200, raw, headers={"Idempotent-Replayed": "true"})
    r = await hub.http.post(
        "/api/whatsapp/51/send", json={"to": "+54 9 11", "message": "Hola", "cliente_id": 7},
        headers={**hub.auth(), "X-Request-Id": "rid-42", "Idempotency-Key": "k-1"},
    )
    assert r.status_code == 200
    assert r.content == raw
    assert r.headers["idempotent-replayed"] == "true"
    [call] = fake.calls
    assert (call.method, call.path) == ("POST", "/api/session-manager/sessions/sender_51/send")
    assert call.json() == {"cliente_id": 51, "to": "+54 9 11", "message": "Hola"}  # `to` untouched
    assert call.headers["x-request-id"] == "rid-42"
    assert call.headers["idempotency-key"] == "k-1"
    assert call.headers["authorization"] == "Bearer sm-secret"
    assert call.headers["content-type"] == "application/json"


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"to": 5491123456789, "message": "x"}', b'{"to": "1"}'])
async def test_send_validates_shape_before_calling(hub: HubClient, fake: FakeUpstream, body: bytes) -> None:
    await hub.cliente(51)
    r = await hub.http.post("/api/whatsapp/51/send", content=body, headers=hub.auth())
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR")
    assert "upstream_status" not in r.json()  # the hub's own check: no call was made
    assert fake.calls == []


@pytest.mark.parametrize(("method", "op", "upstream"), [
    ("GET", "status", ("GET", "/status")),
    ("GET", "qr", ("GET", "/qr")),
    ("POST", "connect", ("POST", "/connect")),
    ("POST", "disconnect", ("POST", "/disconnect")),
    ("POST", "logout", ("POST", "/logout")),
    ("GET", "account", ("GET", "/account")),
])
async def test_canonical_routes(hub: HubClient, fake: FakeUpstream, method: str, op: str,
                                upstream: tuple[str, str]) -> None:
    await hub.cliente(51, instance_id="acme")
    fake.behaviour = fu.respond(200, {"status": "READY", "jid": "x"})
    r = await hub.http.request(method, f"/api/whatsapp/51/{op}", headers=hub.auth())
    assert r.status_code == 200, r.text
    [call] = fake.calls
    assert (call.method, call.path) == (upstream[0], "/api/session-manager/sessions/acme" + upstream[1])


async def test_qr_image_is_passed_through(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(200, b"<svg/>", content_type="image/svg+xml")
    r = await hub.http.get("/api/whatsapp/51/qr?format=svg", headers=hub.auth())
    assert (r.status_code, r.headers["content-type"], r.content) == (200, "image/svg+xml", b"<svg/>")
    assert fake.calls[0].path.endswith("/qr?format=svg")
    bad = await hub.http.get("/api/whatsapp/51/qr?format=gif", headers=hub.auth())
    assert (bad.status_code, bad.json()["code"]) == (400, "VALIDATION_ERROR")
    assert len(fake.calls) == 1


async def test_pair_code(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(200, {"code": "ABCD-EFGH"})
    r = await hub.http.post("/api/whatsapp/51/pair-code", json={"phone": "5491123456789"}, headers=hub.auth())
    assert r.json() == {"code": "ABCD-EFGH"}
    assert fake.calls[0].json() == {"phone": "5491123456789"}


@pytest.fixture
async def single_admin_hub(fake: FakeUpstream, tmp_path: Path, database_url: str | None):  # type: ignore[no-untyped-def]
    client, lifespan = await start_hub_client(
        hub_settings(fake.url, tmp_path / "hub", database_url, sm_api="single-admin"))
    yield client
    await client.http.aclose()
    await lifespan.__aexit__(None, None, None)


async def test_single_admin_mode_uses_as_is_routes(single_admin_hub: HubClient, fake: FakeUpstream) -> None:
    hub = single_admin_hub
    await hub.cliente(51)
    fake.behaviour = fu.respond(200, SEND_OK)
    r = await hub.http.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "x"}, headers=hub.auth())
    assert r.status_code == 200
    fake.behaviour = fu.respond(200, {"status": "READY"})
    await hub.http.get("/api/whatsapp/51/status", headers=hub.auth())
    await hub.http.get("/api/whatsapp/51/qr", headers=hub.auth())
    await hub.http.post("/api/whatsapp/51/connect", headers=hub.auth())
    await hub.http.post("/api/whatsapp/51/disconnect", headers=hub.auth())
    assert [(c.method, c.path) for c in fake.calls] == [
        ("POST", "/send"), ("GET", "/status"), ("GET", "/qr"), ("POST", "/connect"), ("POST", "/disconnect")]
    assert fake.calls[0].json()["cliente_id"] == 51
    r = await hub.http.get("/api/whatsapp/51/account", headers=hub.auth())
    assert (r.status_code, r.json()["code"]) == (501, "NOT_SUPPORTED")
    assert len(fake.calls) == 5


async def test_interaction_log_row_and_line_per_call(
    hub: HubClient, fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(200, SEND_OK)
    with caplog.at_level(logging.INFO, logger="leadmaster.central_hub"):
        await hub.http.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "secret words"},
                            headers={**hub.auth(), "X-Request-Id": "rid-7"})
    fake.behaviour = fu.respond(500, {"success": False, "code": "SEND_FAILED", "message": "x"})
    await hub.http.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "secret words"},
                        headers=hub.auth())
    items = (await hub.http.get("/api/admin/interactions?cliente_id=51", headers=hub.auth())).json()["items"]
    assert [(i["operation"], i["upstream_status"], i["outcome"]) for i in items] == [
        ("send", 500, "WHATSAPP_ERROR"), ("send", 200, "OK")]
    first = items[1]
    assert first["request_id"] == "rid-7" and first["user"] == "root" and first["instance_id"] == "sender_51"
    assert first["method"] == "POST" and first["path"] == "/api/session-manager/sessions/sender_51/send"
    assert first["duration_ms"] >= 0
    lines = [r for r in caplog.records if r.getMessage() == "session-manager call"]
    assert len(lines) == 1 and lines[0].fields["request_id"] == "rid-7"  # type: ignore[attr-defined]
    assert "secret words" not in caplog.text and "secret words" not in str(items)
    own = (await hub.http.get("/api/whatsapp/51/interactions?limit=1", headers=hub.auth())).json()["items"]
    assert [i["outcome"] for i in own] == ["WHATSAPP_ERROR"]


async def test_metrics_count_upstream_calls(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    await hub.http.get("/api/whatsapp/51/status", headers=hub.auth())
    text = (await hub.http.get("/metrics", headers=hub.auth())).text
    assert 'central_hub_upstream_requests_total{operation="status",outcome="OK"} 1' in text
    assert "central_hub_upstream_request_duration_seconds_bucket" in text


async def test_health_needs_no_auth_and_reports_reachability(hub: HubClient) -> None:
    body = (await hub.http.get("/health")).json()
    assert body["status"] == "ok" and body["service"] == "central-hub"
    assert "reachable" in body["session_manager"]


async def test_clean_shutdown_flushes_the_interaction_log(
    fake: FakeUpstream, tmp_path: Path, database_url: str | None
) -> None:
    settings = hub_settings(fake.url, tmp_path / "hub", database_url)
    client, lifespan = await start_hub_client(settings)
    await client.cliente(51)
    for _ in range(3):
        await client.http.get("/api/whatsapp/51/status", headers=client.auth())
    await client.http.aclose()
    await lifespan.__aexit__(None, None, None)  # no read before: only the shutdown flush can save the rows
    again, lifespan2 = await start_hub_client(settings)
    try:
        items = (await again.http.get("/api/admin/interactions", headers=again.auth())).json()["items"]
        assert [i["operation"] for i in items] == ["status"] * 3
    finally:
        await again.http.aclose()
        await lifespan2.__aexit__(None, None, None)


async def test_raw_request_for_routes_outside_the_table(hub: HubClient, fake: FakeUpstream) -> None:
    fake.behaviour = fu.respond(200, {"messages": []})
    resp = await hub.hub.client.request("GET", "/api/session-manager/sandbox/x/outbox", request_id="r1")
    assert resp.status == 200 and fake.calls[0].headers["x-request-id"] == "r1"
    assert fake.calls[0].headers["authorization"] == "Bearer sm-secret"


async def test_send_shortcut_and_fastapi_route_behave_the_same(
    fake: FakeUpstream, tmp_path: Path, database_url: str | None
) -> None:
    """The send shortcut serves sends in the running app; the FastAPI route must answer identically."""
    results = []
    for shortcut in (True, False):
        settings = hub_settings(fake.url, tmp_path / f"hub-{shortcut}", database_url)
        if database_url:
            from tests.central_hub.conftest import empty_postgres

            empty_postgres(database_url.replace("+psycopg", ""))
        hub, lifespan = await start_hub_client(settings, send_shortcut=shortcut)
        try:
            await hub.cliente(51)
            await hub.cliente(52)
            user = await hub.user_token("eve", 51)
            fake.behaviour = fu.respond(200, SEND_OK, headers={"Idempotent-Replayed": "true"})
            ok = await hub.http.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "x"},
                                     headers={**hub.auth(user), "Idempotency-Key": "k", "X-Request-Id": "r"})
            fake.behaviour = fu.respond(503, {"success": False, "code": "SESSION_NOT_READY", "message": "m",
                                              "status": "INIT"}, headers={"Retry-After": "2"})
            busy = await hub.http.post("/api/whatsapp/51/send", json={"to": "1", "message": "x"},
                                       headers={**hub.auth(user), "X-Request-Id": "r"})
            refusals = [
                (await hub.http.post(path, content=body, headers=headers)).json()["code"]
                for path, body, headers in [
                    ("/api/whatsapp/51/send", b"[]", hub.auth(user)),
                    ("/api/whatsapp/52/send", b"{}", hub.auth(user)),
                    ("/api/whatsapp/99/send", b"{}", hub.auth()),
                    ("/api/whatsapp/51/send", b"{}", {}),
                    ("/api/whatsapp/51/send", b'{"to":"1","message":"x"}',
                     {**hub.auth(user), "Idempotency-Key": "bad key"}),
                ]
            ]
            log = (await hub.http.get("/api/admin/interactions", headers=hub.auth())).json()["items"]
            results.append((
                ok.status_code, ok.content, ok.headers.get("idempotent-replayed"),
                busy.status_code, busy.json(), busy.headers.get("retry-after"), refusals,
                [(i["outcome"], i["user"], i["request_id"]) for i in log],
            ))
        finally:
            await hub.http.aclose()
            await lifespan.__aexit__(None, None, None)
    assert results[0] == results[1]
    assert results[0][6] == ["VALIDATION_ERROR", "FORBIDDEN", "NOT_FOUND", "UNAUTHORIZED", "VALIDATION_ERROR"]
    assert [c.json() for c in fake.calls] == [{"cliente_id": 51, "to": "5491123456789", "message": "x"},
                                              {"cliente_id": 51, "to": "1", "message": "x"}] * 2
