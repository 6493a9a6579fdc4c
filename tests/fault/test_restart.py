"""What survives a restart of either service: paired sessions, outbox, users, clientes, API keys, the log."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fault.stack import TO, Stack
from tests.support.clientes import wait_status

CLIENTE = 301
USER = ("ana", "ana-password-0123")


def sent_ok(stack: Stack, token: str, text: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        with stack.hub_client(token) as hub:
            r = hub.post(f"/api/whatsapp/{CLIENTE}/send", json={"to": TO, "message": text},
                         headers={"X-Request-Id": f"rid-{text}"})
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return str(r.json()["data"]["message_id"])
        time.sleep(0.2)  # the first call after a restart may meet the session still resuming


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_hub_and_session_manager_restarts_keep_everything(stack: Stack, how: str) -> None:
    if CLIENTE not in stack.keys:
        stack.add_clientes([CLIENTE])
        with stack.hub_client() as hub:
            r = hub.post("/api/admin/users", json={"username": USER[0], "password": USER[1], "role": "user",
                                                   "cliente_id": CLIENTE})
            assert r.status_code == 201, r.text
    jwt_before = stack.login(*USER)
    first = sent_ok(stack, stack.keys[CLIENTE], f"before-{how}")
    with stack.hub_client() as hub:  # reading the log also flushes it to the database
        assert any(i["request_id"] == f"rid-before-{how}"
                   for i in hub.get(f"/api/whatsapp/{CLIENTE}/interactions").json()["items"])

    assert stack.hub is not None and stack.sm is not None
    for svc in (stack.hub, stack.sm):
        svc.kill() if how == "sigkill" else svc.stop()
    stack.start_sm()
    stack.start_hub()

    # Paired session resumes on its own, no new QR; the outbox kept the message.
    with stack.hub_client() as hub:
        wait_status(hub, CLIENTE, "READY")
    assert [m["message_id"] for m in stack.outbox(CLIENTE) if m["message"] == f"before-{how}"] == [first]
    # Users (password login and a JWT issued before the restart), clientes and API keys are all still there.
    jwt_after = stack.login(*USER)
    for token in (jwt_before, jwt_after, stack.keys[CLIENTE]):
        with stack.hub_client(token) as hub:
            assert hub.get(f"/api/whatsapp/{CLIENTE}/status").json()["status"] == "READY"
    with stack.hub_client() as hub:
        assert CLIENTE in [c["id"] for c in hub.get("/api/admin/clientes").json()]
        items = hub.get("/api/admin/interactions", params={"cliente_id": CLIENTE}).json()["items"]
        assert any(i["request_id"] == f"rid-before-{how}" and i["outcome"] == "OK" for i in items)
    sent_ok(stack, stack.keys[CLIENTE], f"after-{how}")
    # A revoked key stays revoked after a restart.
    with stack.hub_client() as hub:
        made = hub.post("/api/admin/api-keys", json={"name": "gone", "role": "user", "cliente_id": CLIENTE}).json()
        assert hub.delete(f"/api/admin/api-keys/{made['id']}").status_code == 204
    stack.hub.stop()
    stack.start_hub()
    r = httpx.get(f"{stack.hub_url}/api/whatsapp/{CLIENTE}/status", headers={"Authorization": f"Bearer {made['key']}"})
    assert (r.status_code, r.json()["code"]) == (401, "UNAUTHORIZED")
