"""Credentials, tenant isolation and log hygiene, against the real processes."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
import pytest

from tests.fault.stack import ADMIN, SM_KEY, TO, Stack
from tests.hostile.conftest import PAIRED

SECRET = "hostile-jwt-secret-0123456789abcdef"
HUB_ENV = {"CENTRAL_HUB_SECRET_KEY": SECRET}
MINE, THEIRS = PAIRED
PUBLIC = {"/health"}


def routes(base: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    spec = httpx.get(base + "/openapi.json", headers=headers, timeout=10).json()
    found = []
    for path, ops in spec["paths"].items():
        for method in ops:
            if path not in PUBLIC and method in ("get", "post", "put", "patch", "delete"):
                found.append((method.upper(), path.replace("{cliente_id}", str(MINE)).replace(
                    "{instance_id}", f"sender_{MINE}").replace("{key_id}", "1")))
    assert len(found) > 10
    return found


def forged(claims: dict[str, Any], secret: str = SECRET) -> str:
    now = int(time.time())
    base = {"sub": "1", "name": ADMIN[0], "role": "admin", "cid": None, "iat": now, "exp": now + 600, "typ": "access"}
    return jwt.encode({**base, **claims}, secret, algorithm="HS256")


def test_every_hub_route_refuses_bad_credentials(stack: Stack) -> None:
    with stack.hub_client() as hub:
        made = hub.post("/api/admin/api-keys", json={"name": "revoked", "role": "admin"}).json()
        assert hub.delete(f"/api/admin/api-keys/{made['id']}").status_code == 204
    tampered = stack.token[:-4] + ("AAAA" if not stack.token.endswith("AAAA") else "BBBB")
    bad = {
        "missing": None, "garbage": "not-a-token", "tampered JWT": tampered,
        "expired JWT": forged({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}),
        "wrong secret": forged({}, secret="another-secret-another-secret-0123"), "alg none": jwt.encode(
            {"sub": "1", "name": ADMIN[0], "role": "admin", "exp": int(time.time()) + 600}, None, algorithm="none"),
        "revoked API key": made["key"],
    }
    assert httpx.get(stack.hub_url + "/api/me", headers={"Authorization": f"Bearer {forged({})}"}).status_code == 200
    for method, path in routes(stack.hub_url, {}):
        if path.startswith(("/api/auth/login", "/openapi", "/docs", "/redoc", "/metrics")) or not path.startswith(
                "/api/"):
            continue
        for what, token in bad.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = httpx.request(method, stack.hub_url + path, headers=headers, json={}, timeout=10)
            assert (r.status_code, r.json()["code"]) == (401, "UNAUTHORIZED"), (what, method, path, r.text)


def test_every_session_manager_route_refuses_a_missing_or_wrong_key(stack: Stack) -> None:
    assert stack.sm is not None
    for method, path in routes(stack.sm.base_url, {"Authorization": f"Bearer {SM_KEY}"}):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Api-Key": SM_KEY[:-1]}, {"Authorization": SM_KEY}):
            r = httpx.request(method, stack.sm.base_url + path, headers=headers, json={}, timeout=10)
            assert (r.status_code, r.json()["code"]) == (401, "UNAUTHORIZED"), (headers, method, path, r.text)


def test_a_cliente_never_reaches_another_clientes_instance(stack: Stack) -> None:
    before = len(stack.outbox(THEIRS))
    with stack.hub_client(stack.keys[MINE]) as mine:
        for method, path in (("GET", "status"), ("GET", "qr"), ("GET", "qr?format=png"), ("GET", "interactions"),
                             ("GET", "account"), ("POST", "connect"), ("POST", "disconnect"), ("POST", "logout"),
                             ("POST", "pair-code"), ("POST", "send")):
            r = mine.request(method, f"/api/whatsapp/{THEIRS}/{path}", json={"to": TO, "message": "steal"})
            assert (r.status_code, r.json()["code"]) == (403, "FORBIDDEN"), (path, r.text)
        for path in ("/api/admin/clientes", "/api/admin/interactions"):
            assert mine.get(path).status_code == 403
        assert [c["id"] for c in mine.get("/api/clientes").json()] == [MINE]
        assert mine.get(f"/api/whatsapp/{MINE}/status").json()["status"] == "READY"
    assert len(stack.outbox(THEIRS)) == before
    with stack.hub_client() as admin:
        assert admin.get(f"/api/whatsapp/{THEIRS}/status").json()["status"] == "READY"


@pytest.mark.slow
def test_no_secret_body_or_full_phone_number_in_any_log_line(stack: Stack) -> None:
    body = "a very private message body 7f3a"
    with stack.hub_client(stack.keys[MINE]) as hub:
        assert hub.post(f"/api/whatsapp/{MINE}/send", json={"to": TO, "message": body}).status_code == 200
        bad_to = "+44 7911 123456"
        assert hub.post(f"/api/whatsapp/{MINE}/send", json={"to": bad_to, "message": body}).status_code == 400
        hub.post(f"/api/whatsapp/{MINE}/pair-code", json={"phone": "5491198765432"})
    httpx.post(stack.hub_url + "/api/auth/login", json={"username": ADMIN[0], "password": "wrong-" + ADMIN[1]})
    logs = stack.logs()
    assert logs.count("\n") > 20
    secrets = {"SM key": SM_KEY, "admin password": ADMIN[1], "JWT": stack.token, "JWT secret": SECRET,
               "message body": body, "phone": TO, "pairing phone": "5491198765432", "bad to": "7911 123456",
               **{f"API key of {c}": k for c, k in stack.keys.items()}}
    leaks = [what for what, value in secrets.items() if value in logs]
    assert not leaks, f"found in the logs: {leaks}"
