"""Real session-manager (sandbox engine) + real hub, as processes: the whole path of a message."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import db as testdb
from tests.support.processes import Service, running, running_stack, start_hub

SM_KEY = "e2e-sm-key"
ADMIN = ("boss", "boss-password-1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Service]]:
    root = tmp_path_factory.mktemp("hub-e2e")
    sm_env = {"SESSION_MANAGER_API_KEY": SM_KEY}
    hub_env = {"SESSION_MANAGER_API_KEY": SM_KEY, "CENTRAL_HUB_ADMIN_USERNAME": ADMIN[0],
               "CENTRAL_HUB_ADMIN_PASSWORD": ADMIN[1], "SESSION_MANAGER_HEALTH_INTERVAL": "1"}
    with running_stack(root, sm_env, hub_env, "leadmaster_test_e2e") as (sm, hub):
        yield sm, hub


def admin_client(hub_svc: Service, timeout: float = 5.0) -> httpx.Client:
    token = httpx.post(hub_svc.base_url + "/api/auth/login",
                       json={"username": ADMIN[0], "password": ADMIN[1]}).json()["access_token"]
    return httpx.Client(base_url=hub_svc.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)


@contextlib.contextmanager
def another_hub(sm_svc: Service, data_dir: Path, **env: str) -> Iterator[httpx.Client]:
    """One more hub on the stack's session-manager, with a database of its own; its admin's client."""
    env = {"CENTRAL_HUB_ADMIN_USERNAME": ADMIN[0], "CENTRAL_HUB_ADMIN_PASSWORD": ADMIN[1], **env}
    pg_urls = testdb.service_databases("leadmaster_test_e2e", hub_env=env)
    try:
        with running(start_hub(data_dir, sm_svc.base_url, **env)) as hub_svc, admin_client(hub_svc) as hub:
            yield hub
    finally:
        for url in pg_urls:
            testdb.drop_database(url)


def wait_status(hub: httpx.Client, cliente: int, want: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = hub.get(f"/api/whatsapp/{cliente}/status").json()
        if body.get("status") == want:
            return body
        time.sleep(0.1)
    raise AssertionError(f"cliente {cliente} never reached {want}; last {body}")


def test_create_connect_pair_send_and_log(stack: tuple[Service, Service]) -> None:
    sm_svc, hub_svc = stack
    sm = httpx.Client(base_url=sm_svc.base_url, headers={"Authorization": f"Bearer {SM_KEY}"}, timeout=10)
    hub = admin_client(hub_svc, timeout=10)

    assert hub.post("/api/admin/clientes", json={"id": 51, "name": "Acme"}).status_code == 201
    assert hub.get("/api/whatsapp/51/status").json()["status"] == "DISCONNECTED"

    not_ready = hub.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "Hola"})
    assert (not_ready.status_code, not_ready.json()["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert not_ready.json()["upstream_status"] == 503 and not_ready.json()["status"] == "DISCONNECTED"

    connected = hub.post("/api/whatsapp/51/connect")
    assert connected.status_code == 200 and connected.json()["success"] is True
    wait_status(hub, 51, "QR_REQUIRED")
    qr = hub.get("/api/whatsapp/51/qr")
    assert qr.json()["status"] == "QR_AVAILABLE"
    png = hub.get("/api/whatsapp/51/qr", params={"format": "png"})
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")

    assert sm.post("/api/session-manager/sandbox/sender_51/scan").status_code == 200
    wait_status(hub, 51, "READY")
    assert hub.get("/api/whatsapp/51/account").status_code == 200

    bad_to = hub.post("/api/whatsapp/51/send", json={"to": "not-a-phone", "message": "Hola"})
    assert (bad_to.status_code, bad_to.json()["code"], bad_to.json()["upstream_code"]) == (
        400, "VALIDATION_ERROR", "INVALID_TO")

    sent = hub.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "Hola e2e"},
                    headers={"X-Request-Id": "e2e-send-1", "Idempotency-Key": "e2e-k1"})
    assert sent.status_code == 200, sent.text
    data = sent.json()["data"]
    assert sent.json()["success"] is True and data["cliente_id"] == 51

    outbox = sm.get("/api/session-manager/sandbox/sender_51/outbox").json()["messages"]
    assert [(m["message"], m["cliente_id"], m["message_id"]) for m in outbox] == [
        ("Hola e2e", 51, data["message_id"])]

    replay = hub.post("/api/whatsapp/51/send", json={"to": "5491123456789", "message": "Hola e2e"},
                      headers={"Idempotency-Key": "e2e-k1"})
    assert replay.json() == sent.json() and replay.headers.get("idempotent-replayed") == "true"
    assert len(sm.get("/api/session-manager/sandbox/sender_51/outbox").json()["messages"]) == 1

    items = hub.get("/api/whatsapp/51/interactions").json()["items"]
    send_row = next(i for i in items if i["request_id"] == "e2e-send-1")
    assert (send_row["operation"], send_row["upstream_status"], send_row["outcome"], send_row["user"]) == (
        "send", 200, "OK", ADMIN[0])
    assert "e2e-send-1" in sm_svc.logs()  # X-Request-Id reached the session-manager
    assert "Hola e2e" not in hub_svc.logs()
    assert "5491123456789" not in hub_svc.logs()

    assert hub.post("/api/whatsapp/51/disconnect").json()["status"] == "DISCONNECTED"
    health = httpx.get(hub_svc.base_url + "/health").json()
    assert health["session_manager"]["reachable"] is True


def test_hub_with_wrong_session_manager_key_reports_auth_failure(
    stack: tuple[Service, Service], tmp_path: Path
) -> None:
    sm_svc, _ = stack
    with another_hub(sm_svc, tmp_path / "hub2", SESSION_MANAGER_API_KEY="wrong") as hub:
        hub.post("/api/admin/clientes", json={"id": 7, "name": "x"})
        r = hub.get("/api/whatsapp/7/status")
        assert (r.status_code, r.json()["code"], r.json()["upstream_status"]) == (
            502, "SESSION_MANAGER_AUTH_FAILED", 401)


def test_single_admin_mode_against_the_real_session_manager(
    stack: tuple[Service, Service], tmp_path: Path
) -> None:
    sm_svc, _ = stack
    with another_hub(sm_svc, tmp_path / "hub3", SESSION_MANAGER_API_KEY=SM_KEY,
                     SESSION_MANAGER_API="single-admin") as hub:
        hub.post("/api/admin/clientes", json={"id": 8, "name": "x"})
        status = hub.get("/api/whatsapp/8/status")
        assert status.status_code == 200 and status.json()["status"] in {
            "INIT", "QR_REQUIRED", "AUTHENTICATED", "READY", "DISCONNECTED", "ERROR"}
        assert hub.post("/api/whatsapp/8/connect").json()["success"] is True
        r = hub.post("/api/whatsapp/8/pair-code", json={"phone": "5491123456789"})
        assert (r.status_code, r.json()["code"]) == (501, "NOT_SUPPORTED")
        paths = [i["path"] for i in hub.get("/api/whatsapp/8/interactions").json()["items"]]
        assert paths == ["/connect", "/status"]
