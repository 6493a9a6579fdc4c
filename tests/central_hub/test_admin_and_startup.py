"""Admin API, first run, secrets on disk, and the start-up rules of CONTRACT §3.1."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from leadmaster.central_hub.app import create_app
from leadmaster.central_hub.db import repo
from tests.central_hub.conftest import HubClient, hub_settings
from tests.central_hub.fake_upstream import FakeUpstream, closed_port_url
from tests.support.processes import BIN, start_hub


async def test_clientes_crud_and_conflicts(hub: HubClient) -> None:
    assert await hub.cliente(51) == {"id": 51, "name": "Cliente 51", "instance_id": "sender_51"}
    assert await hub.cliente(60, instance_id="shop-60") == {"id": 60, "name": "Cliente 60", "instance_id": "shop-60"}
    dup = await hub.http.post("/api/admin/clientes", json={"id": 51, "name": "x"}, headers=hub.auth())
    assert (dup.status_code, dup.json()["code"]) == (409, "CONFLICT")
    taken = await hub.http.post("/api/admin/clientes", json={"id": 61, "name": "x", "instance_id": "shop-60"},
                                headers=hub.auth())
    assert (taken.status_code, taken.json()["code"]) == (409, "CONFLICT")
    for bad in ({"id": 0, "name": "x"}, {"id": "5", "name": "x"}, {"id": 5, "name": ""},
                {"id": 5, "name": "x", "instance_id": "bad id!"}):
        r = await hub.http.post("/api/admin/clientes", json=bad, headers=hub.auth())
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR"), bad
    listed = (await hub.http.get("/api/admin/clientes", headers=hub.auth())).json()
    assert [c["id"] for c in listed] == [51, 60]


async def test_users_and_api_keys(hub: HubClient) -> None:
    await hub.cliente(51)
    user = await hub.admin_post("/api/admin/users", {"username": "ann", "password": "long-enough",
                                                     "role": "user", "cliente_id": 51})
    assert user == {"id": user["id"], "username": "ann", "role": "user", "cliente_id": 51}
    for bad in ({"username": "b", "password": "long-enough", "role": "user"},
                {"username": "b", "password": "long-enough", "role": "user", "cliente_id": 99},
                {"username": "b", "password": "long-enough", "role": "admin", "cliente_id": 51},
                {"username": "b", "password": "short", "role": "user", "cliente_id": 51},
                {"username": "b", "password": "long-enough", "role": "root"}):
        r = await hub.http.post("/api/admin/users", json=bad, headers=hub.auth())
        assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR"), bad
    dup = await hub.http.post("/api/admin/users", json={"username": "ann", "password": "long-enough",
                                                         "role": "user", "cliente_id": 51}, headers=hub.auth())
    assert (dup.status_code, dup.json()["code"]) == (409, "CONFLICT")
    key = await hub.api_key("user", 51)
    assert set(key) == {"id", "key", "prefix"}
    listed = (await hub.http.get("/api/admin/api-keys", headers=hub.auth())).json()
    assert [k["prefix"] for k in listed] == [key["prefix"]] and "key" not in listed[0]
    assert key["key"] not in str(listed)
    missing = await hub.http.delete("/api/admin/api-keys/999", headers=hub.auth())
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")


async def test_admin_api_key_acts_on_any_cliente(hub: HubClient, fake: FakeUpstream) -> None:
    await hub.cliente(51)
    key = (await hub.api_key("admin"))["key"]
    r = await hub.http.get("/api/whatsapp/51/status", headers=hub.auth(key))
    assert r.status_code == 200
    me = (await hub.http.get("/api/me", headers=hub.auth(key))).json()
    assert me["role"] == "admin" and me["username"].startswith("api-key:lmk_")


async def test_first_run_generates_admin_password_file(fake: FakeUpstream, tmp_path: Path,
                                                       database_url: str | None) -> None:
    data = tmp_path / "hub"
    settings = hub_settings(fake.url, data, database_url, admin_username=None, admin_password=None)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pw_file = data / "initial-admin-password"
        assert stat.S_IMODE(os.stat(pw_file).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(data / "secret-key").st_mode) == 0o600
        password = pw_file.read_text().strip()
        user = await app.state.hub.db.run(lambda s: repo.user_by_name(s, "admin"))
        assert user is not None and user.role == "admin" and password not in user.password_hash


@pytest.mark.parametrize("value", ["", "localhost:3001", "ftp://h/", "http://"])
def test_bad_base_url_exits_2_naming_the_variable(value: str, tmp_path: Path) -> None:
    env = {**os.environ, "SESSION_MANAGER_BASE_URL": value, "CENTRAL_HUB_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([str(BIN / "central-hub")], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SESSION_MANAGER_BASE_URL" in lines[0] and repr(value) in lines[0]


def test_unset_base_url_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SESSION_MANAGER_BASE_URL"}
    proc = subprocess.run([sys.executable, "-m", "leadmaster.central_hub.cli"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "SESSION_MANAGER_BASE_URL" in proc.stderr


def test_unreachable_session_manager_does_not_block_start(tmp_path: Path, postgres_url: str | None) -> None:
    env = {"CENTRAL_HUB_ADMIN_USERNAME": "", "CENTRAL_HUB_ADMIN_PASSWORD": ""}
    if postgres_url:
        from tests.central_hub.conftest import empty_postgres, sqlalchemy_url

        empty_postgres(postgres_url)
        env["CENTRAL_HUB_DATABASE_URL"] = sqlalchemy_url(postgres_url)
    svc = start_hub(tmp_path, closed_port_url(), **env)
    try:
        import json
        import time
        import urllib.request

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(svc.base_url + "/health") as resp:
                health = json.loads(resp.read())
            if health["session_manager"]["reachable"] is False:
                break
            time.sleep(0.1)
        assert health["session_manager"]["reachable"] is False
    finally:
        svc.stop()
    logs = svc.logs()
    assert "session-manager reachability changed" in logs
    password = (tmp_path / "initial-admin-password").read_text().strip()
    assert logs.count(password) == 1  # printed once, on the console, never in a log line
