"""API key protection and the refusal to listen on a non-loopback address without one (CONTRACT §2.6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from leadmaster.session_manager.config import Settings, is_loopback
from tests.session_manager.conftest import Harness

KEY = "s3cret-key-for-tests"


async def test_every_route_but_health_needs_the_api_key(harness: Harness) -> None:
    client = await harness.start(api_key=KEY)
    assert (await client.get("/health")).status_code == 200
    doc_paths = [("GET", "/openapi.json")]
    for path, methods in harness.app.openapi()["paths"].items():
        for method in methods:
            doc_paths.append((method.upper(), path.replace("{instance_id}", "admin")))
    for method, path in doc_paths:
        if path == "/health":
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-Api-Key": "wrong"}, {"Authorization": KEY}):
            r = await client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers)
            assert r.json()["code"] == "UNAUTHORIZED"


async def test_api_key_accepted_as_bearer_or_x_api_key(harness: Harness) -> None:
    client = await harness.start(api_key=KEY)
    assert (await client.get("/status", headers={"Authorization": f"Bearer {KEY}"})).status_code == 200
    assert (await client.get("/status", headers={"authorization": f"bearer {KEY}"})).status_code == 200
    assert (await client.get("/status", headers={"X-Api-Key": KEY})).status_code == 200


def test_non_loopback_host_without_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SESSION_MANAGER_API_KEY"):
        Settings(host="0.0.0.0", data_dir=tmp_path)
    assert Settings(host="0.0.0.0", api_key=KEY, data_dir=tmp_path).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_cli_exits_2_with_a_clear_line_when_config_is_unsafe(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "session-manager"
    env = {"PATH": "/usr/bin:/bin", "SESSION_MANAGER_HOST": "0.0.0.0", "SESSION_MANAGER_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "SESSION_MANAGER_API_KEY" in proc.stderr and "0.0.0.0" in proc.stderr


def test_cli_rejects_unknown_engine(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "session-manager"
    env = {"PATH": "/usr/bin:/bin", "SESSION_MANAGER_ENGINE": "baileys", "SESSION_MANAGER_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "SESSION_MANAGER_ENGINE='baileys' is invalid" in proc.stderr


async def test_logs_mask_phones_and_never_carry_message_bodies(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    from leadmaster.common.logs import JsonFormatter
    from tests.session_manager.conftest import pair

    caplog.set_level("INFO")
    await pair(client)
    secret_text = "the-body-must-not-be-logged"
    await client.post("/send", json={"cliente_id": 1, "to": "+5491123456789", "message": secret_text})
    fmt = JsonFormatter("session-manager")
    lines = [fmt.format(r) for r in caplog.records]
    assert any('"msg":"sent"' in line for line in lines)
    for line in lines:
        assert secret_text not in line
        assert "5491123456789" not in line
