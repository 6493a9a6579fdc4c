"""The real session-manager process on a free port: flow, restart persistence, SIGTERM, JSON logs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import db
from tests.support.processes import Service, start_session_manager

MSG = {"cliente_id": 51, "to": "+5491123456789", "message": "hello from e2e"}


@pytest.fixture
def store_env() -> Any:
    if not db.use_postgres():
        yield {}
        return
    url = db.create_database("leadmaster_sm_e2e")
    yield {"SESSION_MANAGER_STORE_URL": url}
    db.drop_database(url)


def wait_status(client: httpx.Client, want: str, path: str = "/status", timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if body["status"] == want:
            return body
        time.sleep(0.05)
    raise AssertionError(f"never {want}: {body}")


def test_pair_send_restart_and_stop(tmp_path: Path, store_env: dict[str, str]) -> None:
    sm: Service = start_session_manager(tmp_path, **store_env)
    try:
        with httpx.Client(base_url=sm.base_url, timeout=10) as c:
            health = c.get("/health").json()
            assert health["status"] == "ok" and health["engine"] == "sandbox"
            # Start-up connects the single-admin instance by itself (CONTRACT §2.2).
            wait_status(c, "QR_REQUIRED")
            assert c.post("/api/session-manager/sandbox/admin/scan").status_code == 200
            wait_status(c, "READY")
            first = c.post("/send", json=MSG, headers={"Idempotency-Key": "e2e-1", "X-Request-Id": "rid-e2e"})
            assert first.status_code == 200, first.text
            assert first.headers["x-request-id"] == "rid-e2e"
        started = time.monotonic()
        # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is the clean exit here.
        assert sm.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 10
        assert "Application shutdown complete" in sm.logs()
    finally:
        sm.stop()

    sm2 = start_session_manager(tmp_path, port=sm.port, **store_env)
    try:
        with httpx.Client(base_url=sm2.base_url, timeout=10) as c:
            wait_status(c, "READY")  # resumed from the store, no QR
            replay = c.post("/send", json=MSG, headers={"Idempotency-Key": "e2e-1"})
            assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
            assert len(c.get("/api/session-manager/sandbox/admin/outbox").json()["messages"]) == 1
    finally:
        sm2.stop()

    lines = [line for line in sm.logs().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r.get("request_id") == "rid-e2e" and r.get("msg") == "sent" for r in records)
    text = sm.logs()
    assert "hello from e2e" not in text and "5491123456789" not in text


def test_qr_command_draws_the_live_qr_in_the_terminal(tmp_path: Path) -> None:
    import subprocess
    import sys

    sm = start_session_manager(tmp_path)
    try:
        with httpx.Client(base_url=sm.base_url, timeout=10) as c:
            raw = wait_qr(c)
        exe = Path(sys.executable).parent / "session-manager"
        out = subprocess.run([str(exe), "qr", "--url", sm.base_url], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "Scan with WhatsApp > Linked devices" in out.stdout
        assert "█" in out.stdout or "▀" in out.stdout  # drawn with block characters
        from leadmaster.session_manager import qr

        assert qr.terminal(raw) in out.stdout  # the very code the service shows
        with httpx.Client(base_url=sm.base_url, timeout=10) as c:
            c.post("/api/session-manager/sandbox/admin/scan")
            wait_status(c, "READY")
        done = subprocess.run([str(exe), "qr", "--url", sm.base_url], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "the session is READY" in done.stdout
        down = subprocess.run([str(exe), "qr", "--url", "http://127.0.0.1:1"], capture_output=True, text=True,
                              timeout=30)
        assert down.returncode == 1 and "cannot reach" in down.stderr
    finally:
        sm.stop()


def wait_qr(client: httpx.Client, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get("/qr").json()
        if body["status"] == "QR_AVAILABLE":
            return str(body["raw"])
        time.sleep(0.05)
    raise AssertionError("no QR")
