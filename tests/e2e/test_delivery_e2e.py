"""CONTRACT §5 through real processes: a sandbox session-manager and a hub, statuses and number checks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.processes import Service, running_stack

SM_KEY = "e2e-delivery-key"
ADMIN = ("boss", "boss-password-1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, httpx.Client, Service]]:
    root = tmp_path_factory.mktemp("delivery-e2e")
    sm_env = {"SESSION_MANAGER_API_KEY": SM_KEY, "SANDBOX_DELIVERY_MS": "100", "SANDBOX_READ_MS": "300",
              "SESSION_MANAGER_CONTACT_CHECKS_PER_HOUR": "3"}
    hub_env = {"SESSION_MANAGER_API_KEY": SM_KEY, "CENTRAL_HUB_ADMIN_USERNAME": ADMIN[0],
               "CENTRAL_HUB_ADMIN_PASSWORD": ADMIN[1]}
    with running_stack(root, sm_env, hub_env, "leadmaster_test_e2e") as (sm_svc, hub_svc):
        token = httpx.post(hub_svc.base_url + "/api/auth/login",
                           json={"username": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]
        with httpx.Client(base_url=hub_svc.base_url, headers={"Authorization": f"Bearer {token}"},
                          timeout=10) as hub, httpx.Client(
                base_url=sm_svc.base_url, headers={"Authorization": f"Bearer {SM_KEY}"}, timeout=10) as sm:
            yield hub, sm, sm_svc


def until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def ready(hub: httpx.Client, sm: httpx.Client, cliente: int) -> None:
    assert hub.post("/api/admin/clientes", json={"id": cliente, "name": f"C{cliente}"}).status_code == 201
    hub.post(f"/api/whatsapp/{cliente}/connect")
    until(lambda: hub.get(f"/api/whatsapp/{cliente}/status").json()["status"] == "QR_REQUIRED")
    assert sm.post(f"/api/session-manager/sandbox/sender_{cliente}/scan").status_code == 200
    until(lambda: hub.get(f"/api/whatsapp/{cliente}/status").json()["status"] == "READY")


def test_a_sent_message_is_seen_delivered_then_read_through_the_hub(
    stack: tuple[httpx.Client, httpx.Client, Service],
) -> None:
    hub, sm, _ = stack
    ready(hub, sm, 61)
    sent = hub.post("/api/whatsapp/61/send", json={"to": "5491123456789", "message": "Hola"})
    mid = sent.json()["data"]["message_id"]
    seen: list[str] = []
    cursor: dict[str, str] = {}

    def poll() -> bool:
        page = hub.get("/api/whatsapp/61/messages", params={"limit": 10, **cursor}).json()["messages"]
        for m in page:
            assert m["message_id"] == mid
            seen.append(m["status"])
            cursor["since"] = m["updated_at"]
        return bool(seen) and seen[-1] == "READ"

    until(poll)
    assert seen == sorted(seen, key=["SENT", "DELIVERED", "READ"].index)
    one = hub.get(f"/api/whatsapp/61/messages/{mid}")
    assert one.status_code == 200 and one.json()["status"] == "READ" and one.json()["read_at"]
    missing = hub.get("/api/whatsapp/61/messages/3EB0NOTHERE")
    assert (missing.status_code, missing.json()["code"], missing.json()["upstream_code"]) == (
        404, "NOT_FOUND", "MESSAGE_NOT_FOUND")
    bad = hub.get("/api/whatsapp/61/messages", params={"limit": 0})
    assert (bad.status_code, bad.json()["upstream_code"]) == (400, "INVALID_LIMIT")
    ops = [i["operation"] for i in hub.get("/api/whatsapp/61/interactions").json()["items"]]
    assert {"message", "messages"} <= set(ops)


def test_number_check_cache_and_rate_limit_through_the_hub(
    stack: tuple[httpx.Client, httpx.Client, Service],
) -> None:
    hub, sm, _ = stack
    r = hub.post("/api/admin/clientes", json={"id": 62, "name": "C62"})
    assert r.status_code == 201
    not_ready = hub.post("/api/whatsapp/62/contacts/check", json={"phones": ["5491100000001"]})
    assert (not_ready.status_code, not_ready.json()["code"]) == (503, "SERVICE_UNAVAILABLE")
    hub.post("/api/whatsapp/62/connect")
    until(lambda: hub.get("/api/whatsapp/62/status").json()["status"] == "QR_REQUIRED")
    sm.post("/api/session-manager/sandbox/sender_62/scan")
    until(lambda: hub.get("/api/whatsapp/62/status").json()["status"] == "READY")
    sm.post("/api/session-manager/sandbox/sender_62/faults", json={"not_on_whatsapp": ["5491100000002"]})
    r = hub.post("/api/whatsapp/62/contacts/check", json={"phones": ["5491100000001", "+5491100000002"]})
    assert r.status_code == 200, r.text
    assert [(x["phone"], x["on_whatsapp"]) for x in r.json()["results"]] == [
        ("5491100000001", True), ("+5491100000002", False)]
    bad = hub.post("/api/whatsapp/62/contacts/check", json={"phones": []})
    assert (bad.status_code, bad.json()["upstream_code"]) == (400, "INVALID_PHONES")
    limited = hub.post("/api/whatsapp/62/contacts/check", json={"phones": ["5491100000003", "5491100000004"]})
    assert (limited.status_code, limited.json()["code"]) == (429, "RATE_LIMITED")
    assert 3500 < int(limited.headers["retry-after"]) <= 3600
    cached = hub.post("/api/whatsapp/62/contacts/check", json={"phones": ["5491100000002", "5491100000003"]})
    assert cached.status_code == 200  # one uncached number still fits in the hour
