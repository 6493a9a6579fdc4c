"""Credentials follow the user, and the login limit, against the real processes (issue 11 rows 1 and 2)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.fault.stack import ADMIN, Stack

PASSWORD = "a-good-password-1"


def make_user(stack: Stack, role: str = "admin", cliente_id: int | None = None) -> tuple[dict[str, Any], str]:
    name = f"u-{uuid.uuid4().hex[:8]}"
    with stack.hub_client() as hub:
        r = hub.post("/api/admin/users", json={"username": name, "password": PASSWORD, "role": role,
                                              "cliente_id": cliente_id})
        assert r.status_code == 201, r.text
    return r.json(), stack.login(name, PASSWORD)


def me(stack: Stack, token: str) -> httpx.Response:
    return httpx.get(stack.hub_url + "/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_a_deleted_user_s_token_is_refused_at_once_even_for_creating_an_admin(stack: Stack) -> None:
    user, token = make_user(stack)
    with stack.hub_client(token) as hub:
        assert hub.get("/api/admin/clientes").status_code == 200
    with stack.hub_client() as admin:
        assert admin.delete(f"/api/admin/users/{user['id']}").status_code == 204
        assert user["id"] not in [u["id"] for u in admin.get("/api/admin/users").json()]
    with stack.hub_client(token) as hub:
        r = hub.post("/api/admin/users", json={"username": "sneaky", "password": PASSWORD, "role": "admin"})
        assert (r.status_code, r.json()["code"]) == (401, "UNAUTHORIZED"), r.text
        assert hub.get("/api/admin/clientes").status_code == 401


def test_a_demoted_user_s_token_is_refused_and_a_new_one_acts_as_a_user(stack: Stack) -> None:
    cid = 11
    user, token = make_user(stack)
    with stack.hub_client() as admin:
        r = admin.patch(f"/api/admin/users/{user['id']}", json={"role": "user", "cliente_id": cid})
        assert r.status_code == 200, r.text
        assert r.json() == {**user, "role": "user", "cliente_id": cid}
    assert me(stack, token).status_code == 401
    fresh = stack.login(user["username"], PASSWORD)
    assert me(stack, fresh).json() == {"username": user["username"], "role": "user", "cliente_id": cid}
    with stack.hub_client(fresh) as hub:
        assert hub.get("/api/admin/clientes").status_code == 403
        assert hub.get(f"/api/whatsapp/{cid}/status").status_code == 200
    # A promotion keeps the token, which acts with the user's current role at once.
    with stack.hub_client() as admin:
        assert admin.patch(f"/api/admin/users/{user['id']}", json={"role": "admin"}).json()["cliente_id"] is None
    assert me(stack, fresh).json()["role"] == "admin"


def test_a_new_password_refuses_older_tokens(stack: Stack) -> None:
    user, token = make_user(stack, "user", 12)
    r = httpx.post(stack.hub_url + "/api/auth/password", headers={"Authorization": f"Bearer {token}"},
                   json={"current_password": "wrong-password", "new_password": "another-password-2"}, timeout=10)
    assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR"), r.text
    assert me(stack, token).status_code == 200
    r = httpx.post(stack.hub_url + "/api/auth/password", headers={"Authorization": f"Bearer {token}"},
                   json={"current_password": PASSWORD, "new_password": "another-password-2"}, timeout=10)
    assert r.status_code == 204, r.text
    assert me(stack, token).status_code == 401
    r = httpx.post(stack.hub_url + "/api/auth/login", json={"username": user["username"], "password": PASSWORD})
    assert r.status_code == 401
    assert me(stack, stack.login(user["username"], "another-password-2")).status_code == 200
    # An admin setting the password signs the user out the same way.
    fresh = stack.login(user["username"], "another-password-2")
    with stack.hub_client() as admin:
        assert admin.patch(f"/api/admin/users/{user['id']}", json={"password": "third-password-3"}).status_code == 200
    assert me(stack, fresh).status_code == 401
    # An API key has no password to change.
    r = httpx.post(stack.hub_url + "/api/auth/password", headers={"Authorization": f"Bearer {stack.keys[11]}"},
                   json={"current_password": "x", "new_password": "another-password-2"}, timeout=10)
    assert r.status_code == 403


def test_the_last_admin_can_be_neither_deleted_nor_demoted(stack: Stack) -> None:
    with stack.hub_client() as admin:
        users = admin.get("/api/admin/users").json()
        others = [u for u in users if u["role"] == "admin" and u["username"] != ADMIN[0]]
        for u in others:  # leave the stack's admin as the only one
            assert admin.delete(f"/api/admin/users/{u['id']}").status_code == 204
        chief = next(u for u in users if u["username"] == ADMIN[0])
        for r in (admin.delete(f"/api/admin/users/{chief['id']}"),
                  admin.patch(f"/api/admin/users/{chief['id']}", json={"role": "user", "cliente_id": 11})):
            assert (r.status_code, r.json()["code"]) == (409, "CONFLICT"), r.text
        assert admin.delete("/api/admin/users/999999").status_code == 404
        assert admin.patch("/api/admin/users/99999999999", json={}).status_code == 404
        r = admin.patch(f"/api/admin/users/{chief['id']}", json={"role": "user"})  # a user needs a cliente
        assert r.status_code == 400
    assert me(stack, stack.token).status_code == 200


def test_ten_failures_lock_one_username_for_fifteen_minutes_and_no_other(stack: Stack) -> None:
    user, _ = make_user(stack, "user", 11)
    other, _ = make_user(stack, "user", 12)
    login = stack.hub_url + "/api/auth/login"
    for _ in range(10):
        r = httpx.post(login, json={"username": user["username"], "password": "wrong-password"}, timeout=10)
        assert (r.status_code, r.json()["code"]) == (401, "INVALID_CREDENTIALS")
    for password in ("wrong-password", PASSWORD):  # the right password does not get through either
        r = httpx.post(login, json={"username": user["username"], "password": password}, timeout=10)
        assert (r.status_code, r.json()["code"]) == (429, "TOO_MANY_ATTEMPTS"), r.text
        assert 14 * 60 < int(r.headers["retry-after"]) <= 15 * 60, r.headers
    # An unknown username is limited the same way (the answer never tells which usernames exist).
    ghost = f"ghost-{uuid.uuid4().hex[:6]}"
    codes = [httpx.post(login, json={"username": ghost, "password": "x"}, timeout=10).status_code for _ in range(11)]
    assert codes == [401] * 10 + [429]
    assert httpx.post(login, json={"username": other["username"], "password": PASSWORD}).status_code == 200
    assert httpx.post(login, json={"username": ADMIN[0], "password": ADMIN[1]}).status_code == 200
