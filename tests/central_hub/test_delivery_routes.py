"""Hub routes of CONTRACT §5 against a real (scripted) HTTP upstream: forwarding, authorization, mapping, log."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.central_hub import fake_upstream as fu
from tests.central_hub.conftest import HubClient, hub_settings, start_hub_client
from tests.central_hub.fake_upstream import FakeUpstream

SM = "/api/session-manager/sessions/sender_51"
STATUS = {"message_id": "3EB0AA", "to": "5491123456789", "status": "READ", "sent_at": "2026-01-01T00:00:00.000001Z",
          "delivered_at": "2026-01-01T00:00:01.000001Z", "read_at": "2026-01-01T00:00:02.000001Z",
          "updated_at": "2026-01-01T00:00:02.000001Z"}


async def test_message_status_is_forwarded_and_passed_through(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(200, STATUS)
    r = await hub.http.get("/api/whatsapp/51/messages/3EB0AA", headers={**hub.auth(), "X-Request-Id": "rid-s"})
    assert r.status_code == 200 and r.json() == STATUS
    call = fake.calls[0]
    assert (call.method, call.path) == ("GET", f"{SM}/messages/3EB0AA")
    assert call.headers["x-request-id"] == "rid-s" and call.headers["authorization"] == "Bearer sm-secret"


async def test_polling_passes_since_and_limit_through(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(200, {"messages": [STATUS]})
    r = await hub.http.get("/api/whatsapp/51/messages", params={"since": "2026-01-01T00:00:00+01:00", "limit": "5"},
                           headers=hub.auth())
    assert r.status_code == 200 and r.json() == {"messages": [STATUS]}
    assert fake.calls[0].path == f"{SM}/messages?since=2026-01-01T00:00:00%2B01:00&limit=5"  # "+" stays a plus
    await hub.http.get("/api/whatsapp/51/messages", headers=hub.auth())
    assert fake.calls[1].path == f"{SM}/messages"


async def test_contacts_check_forwards_the_list_untouched(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    results = {"results": [{"phone": "+5491123456789", "on_whatsapp": False, "jid": None}]}
    fake.behaviour = fu.respond(200, results)
    r = await hub.http.post("/api/whatsapp/51/contacts/check", json={"phones": ["+5491123456789"], "x": 1},
                            headers=hub.auth())
    assert r.status_code == 200 and r.json() == results
    assert (fake.calls[0].method, fake.calls[0].path) == ("POST", f"{SM}/contacts/check")
    assert fake.calls[0].json() == {"phones": ["+5491123456789"]}
    r = await hub.http.post("/api/whatsapp/51/contacts/check", content=b"nope", headers=hub.auth())
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR") and len(fake.calls) == 1


async def test_rate_limit_maps_to_429_with_retry_after(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(429, {"success": False, "code": "RATE_LIMITED", "message": "200 an hour"},
                                headers={"Retry-After": "1234"})
    r = await hub.http.post("/api/whatsapp/51/contacts/check", json={"phones": ["5491123456789"]},
                            headers={**hub.auth(), "X-Request-Id": "rid-429"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1234"
    body = r.json()
    assert (body["code"], body["upstream_status"], body["upstream_code"], body["request_id"]) == (
        "RATE_LIMITED", 429, "RATE_LIMITED", "rid-429")
    assert body["retry_after"] == 1234


async def test_unknown_message_maps_to_404_keeping_the_upstream_code(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(404, {"success": False, "code": "MESSAGE_NOT_FOUND", "message": "no such"})
    r = await hub.http.get("/api/whatsapp/51/messages/3EB0ZZ", headers=hub.auth())
    assert r.status_code == 404
    assert (r.json()["code"], r.json()["upstream_code"], r.json()["upstream_status"]) == (
        "NOT_FOUND", "MESSAGE_NOT_FOUND", 404)


async def test_upstream_validation_of_since_is_a_validation_error(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(400, {"success": False, "code": "INVALID_SINCE", "message": "bad"})
    r = await hub.http.get("/api/whatsapp/51/messages?since=yesterday", headers=hub.auth())
    assert (r.status_code, r.json()["code"], r.json()["upstream_code"]) == (400, "VALIDATION_ERROR", "INVALID_SINCE")


@pytest.mark.parametrize("message_id", ["a" * 129, "has space", "semi;colon"])
async def test_malformed_message_ids_are_refused_before_any_call(
    hub: HubClient, fake: FakeUpstream, message_id: str
) -> None:
    await hub.cliente(51)
    r = await hub.http.get(f"/api/whatsapp/51/messages/{message_id}", headers=hub.auth())
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR") and fake.calls == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/messages/3EB0AA"), ("GET", "/messages"), ("POST", "/contacts/check")],
)
async def test_a_user_sees_only_its_own_clientes_messages(
    hub: HubClient, fake: FakeUpstream, method: str, path: str
) -> None:
    await hub.cliente(51)
    await hub.cliente(52)
    token = await hub.user_token("ana", 51)
    fake.behaviour = fu.respond(200, {"messages": [], "results": [], **STATUS})
    body = orjson.dumps({"phones": ["5491123456789"]}) if method == "POST" else None
    own = await hub.http.request(method, f"/api/whatsapp/51{path}", content=body, headers=hub.auth(token))
    assert own.status_code == 200, own.text
    other = await hub.http.request(method, f"/api/whatsapp/52{path}", content=body, headers=hub.auth(token))
    assert (other.status_code, other.json()["code"]) == (403, "FORBIDDEN")
    missing = await hub.http.request(method, f"/api/whatsapp/99{path}", content=body, headers=hub.auth())
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    anonymous = await hub.http.request(method, f"/api/whatsapp/51{path}", content=body)
    assert anonymous.status_code == 401
    assert len(fake.calls) == 1  # only the authorized call reached the session-manager


async def test_every_delivery_call_is_in_the_interaction_log(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    fake.behaviour = fu.respond(200, STATUS)
    await hub.http.get("/api/whatsapp/51/messages/3EB0AA", headers=hub.auth())
    fake.behaviour = fu.respond(200, {"messages": []})
    await hub.http.get("/api/whatsapp/51/messages?limit=3", headers=hub.auth())
    fake.behaviour = fu.respond(429, {"success": False, "code": "RATE_LIMITED", "message": "x"})
    await hub.http.post("/api/whatsapp/51/contacts/check", json={"phones": ["5491123456789"]}, headers=hub.auth())
    items = (await hub.http.get("/api/admin/interactions?cliente_id=51", headers=hub.auth())).json()["items"]
    assert [(i["operation"], i["method"], i["path"], i["upstream_status"], i["outcome"]) for i in items] == [
        ("contacts_check", "POST", f"{SM}/contacts/check", 429, "RATE_LIMITED"),
        ("messages", "GET", f"{SM}/messages", 200, "OK"),
        ("message", "GET", f"{SM}/messages/3EB0AA", 200, "OK"),
    ]


async def test_single_admin_mode_has_no_delivery_routes(fake: FakeUpstream, tmp_path: Path,
                                                        database_url: str | None) -> None:
    hub, lifespan = await start_hub_client(hub_settings(fake.url, tmp_path / "hub", database_url,
                                                        sm_api="single-admin"))
    try:
        await hub.cliente(51)
        for method, path in (("GET", "/messages/x"), ("GET", "/messages"), ("POST", "/contacts/check")):
            r = await hub.http.request(method, f"/api/whatsapp/51{path}", json={"phones": ["5491123456789"]},
                                       headers=hub.auth())
            assert (r.status_code, r.json()["code"]) == (501, "NOT_SUPPORTED"), path
        assert fake.calls == []
    finally:
        await hub.http.aclose()
        await lifespan.__aexit__(None, None, None)
