"""Clientes through a real hub and its sandbox session-manager: the set-up the process suites share."""

from __future__ import annotations

import time
from typing import Any

import httpx


def add_clientes(hub: httpx.Client, sm: httpx.Client, ids: list[int]) -> dict[int, str]:
    """Create each cliente with a user API key of its own, connect and pair its instance; cliente id -> key."""
    keys: dict[int, str] = {}
    for cid in ids:
        r = hub.post("/api/admin/clientes", json={"id": cid, "name": f"Cliente {cid}"})
        assert r.status_code == 201, r.text
        r = hub.post("/api/admin/api-keys", json={"name": f"k{cid}", "role": "user", "cliente_id": cid})
        assert r.status_code == 201, r.text
        keys[cid] = r.json()["key"]
        assert hub.post(f"/api/whatsapp/{cid}/connect").status_code == 200
    for cid in ids:
        wait_status(hub, cid, "QR_REQUIRED")
        r = sm.post(f"/api/session-manager/sandbox/sender_{cid}/scan")
        assert r.status_code == 200, r.text
    for cid in ids:
        wait_status(hub, cid, "READY")
    return keys


def wait_status(hub: httpx.Client, cid: int, want: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = hub.get(f"/api/whatsapp/{cid}/status")
        if r.status_code == 200:
            body = r.json()
            if body.get("status") == want:
                return body
        time.sleep(0.05)
    raise AssertionError(f"cliente {cid} never reached {want}; last {body}")
