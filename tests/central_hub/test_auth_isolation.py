"""Auth and tenant isolation on every route of the OpenAPI document; nothing refused reaches the upstream."""

from __future__ import annotations

import pytest

from leadmaster.central_hub.api.deps import OPEN_OPERATIONS as OPEN
from tests.central_hub.conftest import HubClient
from tests.central_hub.fake_upstream import FakeUpstream


def operations(hub: HubClient) -> list[tuple[str, str]]:
    spec = hub.app.openapi()
    return [(path, method) for path, ops in spec["paths"].items() for method in ops if (path, method) not in OPEN]


async def call(hub: HubClient, method: str, path: str, cliente: int, headers: dict[str, str]) -> tuple[int, dict]:
    url = path.replace("{cliente_id}", str(cliente)).replace("{key_id}", "1")
    r = await hub.http.request(method.upper(), url, headers=headers,
                               json={"to": "5491123456789", "message": "hi", "phone": "5491123456789"})
    return r.status_code, r.json()


def test_openapi_lists_the_contract_routes(hub: HubClient) -> None:
    ops = set(operations(hub))
    for op in ("status", "qr", "connect", "disconnect", "logout", "pair-code", "account", "send"):
        method = "get" if op in ("status", "qr", "account") else "post"
        assert (f"/api/whatsapp/{{cliente_id}}/{op}", method) in ops
    assert ("/api/admin/api-keys/{key_id}", "delete") in ops


def test_openapi_documents_error_responses(hub: HubClient) -> None:
    spec = hub.app.openapi()
    send = spec["paths"]["/api/whatsapp/{cliente_id}/send"]["post"]
    assert {"400", "401", "403", "404", "502", "503", "504"} <= set(send["responses"])
    assert send["security"] == [{"bearer": []}]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert "422" not in op["responses"], (method, path)  # the hub never answers 422
    assert send["requestBody"]["content"]["application/json"]["schema"]["required"] == ["to", "message"]


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-jwt"},
    {"Authorization": "Basic YWRtaW46YWRtaW4="},
    {"Authorization": "Bearer lmk_deadbeef_nope"},
    {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwicm9sZSI6ImFkbWluIiwiZXhwIjo5OTk5OTk5OTk5fQ.x"},
], ids=["none", "garbage", "basic", "unknown-key", "forged-jwt"])
async def test_every_route_but_health_needs_a_valid_bearer(
    hub: HubClient, fake: FakeUpstream, headers: dict[str, str]
) -> None:
    await hub.cliente(51)
    for path, method in operations(hub):
        status, body = await call(hub, method, path, 51, headers)
        assert (status, body["code"]) == (401, "UNAUTHORIZED"), (method, path, body)
        assert body["request_id"]
    assert fake.calls == []


async def test_user_cannot_touch_another_cliente_or_admin_routes(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    await hub.cliente(52)
    token = await hub.user_token("bob", 52)
    key = (await hub.api_key("user", 52))["key"]
    for credential in (token, key):
        for path, method in operations(hub):
            status, body = await call(hub, method, path, 51, hub.auth(credential))
            if "{cliente_id}" in path or path.startswith("/api/admin") or path == "/metrics":
                assert (status, body["code"]) == (403, "FORBIDDEN"), (method, path, body)
    assert fake.calls == []


async def test_unknown_cliente_is_404_for_admin(hub: HubClient, fake: FakeUpstream) -> None:
    for path, method in operations(hub):
        if "{cliente_id}" in path:
            status, body = await call(hub, method, path, 999, hub.auth())
            assert (status, body["code"]) == (404, "NOT_FOUND"), (method, path, body)
    assert fake.calls == []


async def test_user_acts_on_its_own_cliente(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(52)
    token = await hub.user_token("bob", 52)
    r = await hub.http.get("/api/whatsapp/52/status", headers=hub.auth(token))
    assert r.status_code == 200
    assert [c.path for c in fake.calls] == ["/api/session-manager/sessions/sender_52/status"]
    me = (await hub.http.get("/api/me", headers=hub.auth(token))).json()
    assert me == {"username": "bob", "role": "user", "cliente_id": 52}
    assert (await hub.http.get("/api/clientes", headers=hub.auth(token))).json() == [
        {"id": 52, "name": "Cliente 52", "instance_id": "sender_52"}]


async def test_revoked_api_key_is_refused_at_once(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    created = await hub.api_key("user", 51)
    assert created["key"].startswith(created["prefix"])
    ok = await hub.http.get("/api/whatsapp/51/status", headers=hub.auth(created["key"]))
    assert ok.status_code == 200
    r = await hub.http.delete(f"/api/admin/api-keys/{created['id']}", headers=hub.auth())
    assert r.status_code == 204
    again = await hub.http.get("/api/whatsapp/51/status", headers=hub.auth(created["key"]))
    assert (again.status_code, again.json()["code"]) == (401, "UNAUTHORIZED")
    assert len(fake.calls) == 1


async def test_login_refuses_wrong_password(hub: HubClient) -> None:
    r = await hub.http.post("/api/auth/login", json={"username": "root", "password": "wrong"})
    assert (r.status_code, r.json()["code"]) == (401, "INVALID_CREDENTIALS")
    r = await hub.http.post("/api/auth/login", json={"username": "nobody", "password": "wrong"})
    assert (r.status_code, r.json()["code"]) == (401, "INVALID_CREDENTIALS")


async def test_login_returns_bearer_token(hub: HubClient) -> None:
    r = await hub.http.post("/api/auth/login", json={"username": "root", "password": "root-password-123"})
    body = r.json()
    assert r.status_code == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600 and body["access_token"]
