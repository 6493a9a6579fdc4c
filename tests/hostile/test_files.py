"""Every file either service writes is 0600 and every directory 0700, whatever the umask (issue 11 row 5).

Real processes started with the usual umask 022: the hub (SQLite, generated secret key and first admin
password), the session-manager with the sandbox engine, and one with the real whatsmeow engine (offline: its
dial fails, but the credentials store is created). A 0644 file left by an older version is tightened too.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import Service, start_hub, start_session_manager

REFUSING_PROXY = "http://127.0.0.1:1"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(root: Path) -> dict[str, str]:
    found = {}
    for path in [root, *root.rglob("*")]:
        found[str(path.relative_to(root)) or "."] = oct(stat.S_IMODE(path.lstat().st_mode))
    return found


def loose(root: Path) -> dict[str, str]:
    return {p: m for p, m in modes(root).items()
            if m != ("0o700" if (root / p).is_dir() else "0o600")}


def wait_for(path: Path, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_no_file_of_either_service_is_readable_by_others(tmp_path: Path, loose_umask: None) -> None:
    hub_dir, sm_dir, wm_dir = tmp_path / "hub", tmp_path / "sm", tmp_path / "wm"
    hub_dir.mkdir(mode=0o755)
    (hub_dir / "left-by-an-older-version.txt").write_text("x")
    os.chmod(hub_dir / "left-by-an-older-version.txt", 0o644)
    services: list[Service] = []
    try:
        sm = start_session_manager(sm_dir)
        services.append(sm)
        hub = start_hub(hub_dir, sm.base_url, SESSION_MANAGER_HEALTH_INTERVAL="0")
        services.append(hub)
        wm = start_session_manager(wm_dir, SESSION_MANAGER_ENGINE="whatsmeow",
                                   SESSION_MANAGER_WHATSMEOW_PROXY=REFUSING_PROXY,
                                   SESSION_MANAGER_WHATSMEOW_BACKOFF_BASE_SECONDS="30")
        services.append(wm)
        password = (hub_dir / "initial-admin-password").read_text().strip()
        token = httpx.post(hub.base_url + "/api/auth/login", json={"username": "admin", "password": password},
                           timeout=10).json()["access_token"]
        with httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            assert c.post("/api/admin/clientes", json={"id": 5, "name": "c5"}).status_code == 201
            assert c.post("/api/whatsapp/5/connect").status_code == 200
        for path in (hub_dir / "central-hub.db-wal", hub_dir / "central-hub.db-shm", hub_dir / "secret-key",
                     sm_dir / "session-manager.sqlite3-wal", sm_dir / "session-manager.sqlite3-shm",
                     wm_dir / "whatsmeow" / "whatsmeow.sqlite3"):  # the Go worker's one store
            wait_for(path)
        time.sleep(0.5)  # let the whatsmeow worker finish creating its store's companions
        for root in (hub_dir, sm_dir, wm_dir):
            assert loose(root) == {}, (root.name, modes(root))
        assert {"central-hub.db", "central-hub.db-wal", "initial-admin-password", "secret-key"} <= set(
            modes(hub_dir))
        assert {"session-manager.sqlite3", "session-manager.sqlite3-wal"} <= set(modes(sm_dir))
    finally:
        for svc in reversed(services):
            svc.stop()
