"""Users routes, tokens that follow the user, the login limit's window (in-process; SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from leadmaster.central_hub import errors
from leadmaster.central_hub.auth import login_limit
from leadmaster.central_hub.db.models import LoginFailure, utcnow
from tests.central_hub.conftest import ADMIN_PASSWORD, ADMIN_USER, HubClient


async def test_tokens_follow_the_user_in_one_process(hub: HubClient) -> None:
    await hub.cliente(51)
    token = await hub.user_token("ana", 51)
    users = (await hub.http.get("/api/admin/users", headers=hub.auth())).json()
    ana = next(u for u in users if u["username"] == "ana")
    assert (await hub.http.get("/api/me", headers=hub.auth(token))).json()["cliente_id"] == 51
    await hub.cliente(52)
    r = await hub.http.patch(f"/api/admin/users/{ana['id']}", json={"cliente_id": 52}, headers=hub.auth())
    assert r.json() == {**ana, "cliente_id": 52}
    # A new cliente applies to the live token at once (it acts with the user's current state).
    assert (await hub.http.get("/api/me", headers=hub.auth(token))).json()["cliente_id"] == 52
    assert (await hub.http.get("/api/whatsapp/51/status", headers=hub.auth(token))).status_code == 403
    r = await hub.http.patch(f"/api/admin/users/{ana['id']}", json={"password": "short"}, headers=hub.auth())
    assert r.status_code == 400
    r = await hub.http.patch(f"/api/admin/users/{ana['id']}", json={"cliente_id": 999}, headers=hub.auth())
    assert r.status_code == 400
    assert (await hub.http.delete(f"/api/admin/users/{ana['id']}", headers=hub.auth())).status_code == 204
    assert (await hub.http.get("/api/me", headers=hub.auth(token))).status_code == 401
    assert (await hub.http.delete(f"/api/admin/users/{ana['id']}", headers=hub.auth())).status_code == 404


async def test_a_deleted_user_s_id_is_never_given_to_a_new_user(hub: HubClient) -> None:
    await hub.cliente(53)
    token = await hub.user_token("first", 53)
    first = (await hub.http.get("/api/admin/users", headers=hub.auth())).json()[-1]
    assert first["username"] == "first"
    assert (await hub.http.delete(f"/api/admin/users/{first['id']}", headers=hub.auth())).status_code == 204
    second = await hub.admin_post("/api/admin/users", {"username": "second", "password": "user-password-1",
                                                       "role": "user", "cliente_id": 53})
    assert second["id"] > first["id"]
    assert (await hub.http.get("/api/me", headers=hub.auth(token))).status_code == 401


async def test_own_password_change(hub: HubClient) -> None:
    r = await hub.http.post("/api/auth/password", headers=hub.auth(),
                            json={"current_password": ADMIN_PASSWORD, "new_password": "x"})
    assert r.status_code == 400  # too short
    r = await hub.http.post("/api/auth/password", headers=hub.auth(),
                            json={"current_password": ADMIN_PASSWORD, "new_password": "new-password-1"})
    assert r.status_code == 204
    assert (await hub.http.get("/api/me", headers=hub.auth())).status_code == 401
    assert await hub.login(ADMIN_USER, "new-password-1")


async def test_the_limit_lifts_when_the_window_passes(hub: HubClient) -> None:
    start = utcnow() - timedelta(minutes=20)

    def fail(minutes: float) -> None:
        hub.hub.db.call(lambda s: login_limit.begin_attempt(s, "eve", start + timedelta(minutes=minutes)))

    for i in range(10):
        fail(i * 0.5)  # 10 failures between minute 0 and 4.5
    with pytest.raises(errors.TooManyAttemptsError) as caught:
        fail(5)
    assert caught.value.headers["Retry-After"] == str(10 * 60)  # minute 0's failure leaves at minute 15
    with pytest.raises(errors.TooManyAttemptsError):
        fail(14.9)
    fail(15.01)  # the oldest left the window: one more attempt is allowed, and counts
    with pytest.raises(errors.TooManyAttemptsError):
        fail(15.2)
    # Right now (20 minutes on) most of those have left the window; a success clears the rest.
    r = await hub.http.post("/api/auth/login", json={"username": "eve", "password": "whatever"})
    assert r.status_code == 401
    hub.hub.db.call(lambda s: login_limit.succeeded(s, "eve"))
    assert hub.hub.db.call(lambda s: s.scalars(select(LoginFailure)).all()) == []
