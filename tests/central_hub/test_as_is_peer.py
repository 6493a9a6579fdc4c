"""The hub in front of the as-is Node session-manager (CONTRACT §3.4's lenient 2xx rule), on a real loopback peer.

Every as-is 2xx shape comes back to the caller byte for byte with the peer's status; only a 2xx that is not
JSON, or JSON that says none of what §3.4 accepts for the operation, is 502 SESSION_MANAGER_BAD_RESPONSE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.central_hub import fake_upstream as fu
from tests.central_hub.conftest import HubClient, hub_settings, start_hub_client
from tests.central_hub.fake_upstream import FakeUpstream

# The as-is connect answer of the issue, verbatim: success, but no §1 "status" (its "state" is not one).
AS_IS_CONNECT = b'{"success":true,"message":"Connected","session":"admin","state":"INIT","alreadyConnected":false}'
SEND_DATA = {"message_id": "3EB0", "cliente_id": 51, "to": "5491123456789", "jid": "5491123456789@s.whatsapp.net",
             "timestamp": "2026-03-01T00:00:00Z"}

ROUTES = {"connect": ("POST", "/connect"), "disconnect": ("POST", "/disconnect"), "logout": ("POST", "/logout"),
          "status": ("GET", "/status"), "send": ("POST", "/send")}

# (operation, upstream status, body) that the hub must pass through unchanged.
ACCEPTED: dict[str, tuple[str, int, bytes]] = {
    "connect as-is": ("connect", 200, AS_IS_CONNECT),
    "connect as-is already connected": ("connect", 200, orjson.dumps(
        {"success": True, "message": "Already connected", "session": "admin", "state": "READY",
         "alreadyConnected": True})),
    "connect contract": ("connect", 200, b'{"success":true,"status":"INIT","alreadyConnected":false}'),
    "connect status only": ("connect", 200, b'{"status":"QR_REQUIRED"}'),
    "connect 202": ("connect", 202, b'{"success":true,"message":"Connecting"}'),
    "disconnect as-is": ("disconnect", 200, b'{"success":true,"message":"Disconnected"}'),
    "disconnect contract": ("disconnect", 200, b'{"success":true,"status":"DISCONNECTED"}'),
    "logout as-is": ("logout", 200, b'{"success":true,"message":"Logged out"}'),
    "logout status only": ("logout", 200, b'{"status":"DISCONNECTED"}'),
    "status as-is": ("status", 200, b'{"status":"READY"}'),
    "status with as-is extras": ("status", 200, b'{"status":"QR_REQUIRED","state":"QR","connected":false}'),
    "send as-is": ("send", 200, orjson.dumps({"success": True, "data": SEND_DATA})),
    "send success only": ("send", 200, b'{"success":true,"message":"Message sent"}'),
}

# (operation, body, content type) that says none of what §3.4 accepts: 502 SESSION_MANAGER_BAD_RESPONSE.
REFUSED: dict[str, tuple[str, bytes, str]] = {
    "connect text": ("connect", b"Connected", "text/plain"),
    "connect neither success nor status": ("connect", b'{"message":"Connected","state":"INIT"}', "application/json"),
    "connect success as a string": ("connect", b'{"success":"true"}', "application/json"),
    "connect success false, status not in enum": ("connect", b'{"success":false,"status":"CONNECTED"}',
                                                  "application/json"),
    "connect array": ("connect", b"[true]", "application/json"),
    "disconnect empty object": ("disconnect", b"{}", "application/json"),
    "logout success 1": ("logout", b'{"success":1}', "application/json"),
    "status success without status": ("status", b'{"success":true,"state":"CONNECTED","connected":true}',
                                      "application/json"),
    "status not in enum": ("status", b'{"status":"CONNECTED"}', "application/json"),
    "send ok and message_id": ("send", b'{"ok":true,"message_id":"x"}', "application/json"),
    "send status only": ("send", b'{"status":"READY"}', "application/json"),
    "send html": ("send", b"<html>sent</html>", "text/html"),
}


@pytest.fixture
async def as_is_hub(fake: FakeUpstream, tmp_path: Path, database_url: str | None) -> AsyncIterator[HubClient]:
    client, lifespan = await start_hub_client(
        hub_settings(fake.url, tmp_path / "hub", database_url, sm_api="single-admin"))
    await client.cliente(51)
    try:
        yield client
    finally:
        await client.http.aclose()
        await lifespan.__aexit__(None, None, None)


async def _call(hub: HubClient, op: str) -> Any:
    if op == "send":
        return await hub.http.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "Hola"},
                                   headers=hub.auth())
    method = ROUTES[op][0]
    return await hub.http.request(method, f"/api/whatsapp/51/{op}", headers=hub.auth())


@pytest.mark.parametrize("name", list(ACCEPTED))
async def test_as_is_success_passes_through_unchanged(name: str, as_is_hub: HubClient, fake: FakeUpstream) -> None:
    op, status, raw = ACCEPTED[name]
    fake.behaviour = fu.respond(status, raw)
    r = await _call(as_is_hub, op)
    assert (r.status_code, r.content) == (status, raw), r.text
    assert [(c.method, c.path) for c in fake.calls] == [ROUTES[op]]
    items = (await as_is_hub.http.get("/api/admin/interactions", headers=as_is_hub.auth())).json()["items"]
    assert [(i["operation"], i["upstream_status"], i["outcome"]) for i in items] == [(op, status, "OK")]


@pytest.mark.parametrize("name", list(REFUSED))
async def test_2xx_that_says_nothing_accepted_is_bad_response(
    name: str, as_is_hub: HubClient, fake: FakeUpstream
) -> None:
    op, raw, content_type = REFUSED[name]
    fake.behaviour = fu.respond(200, raw, content_type=content_type)
    r = await _call(as_is_hub, op)
    body = r.json()
    assert (r.status_code, body["code"], body["upstream_status"]) == (502, "SESSION_MANAGER_BAD_RESPONSE", 200)
    # The message says what the operation's answer should have said.
    assert ('"success": true' in body["message"]) == (op != "status")
    assert ('"status" of INIT|' in body["message"]) == (op != "send")
    assert len(fake.calls) == 1
