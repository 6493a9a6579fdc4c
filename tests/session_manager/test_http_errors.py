"""JSON for every error the HTTP layer itself produces (CONTRACT §1, §2.5 'Other errors')."""

from __future__ import annotations

import httpx
import pytest

from tests.session_manager.conftest import Harness


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/qr-code")
    assert r.status_code == 404
    assert r.json() == {"success": False, "code": "NOT_FOUND", "message": "No such route: GET /qr-code."}


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    r = await client.get("/send")
    assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_body_over_one_mib_is_json_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/send", content=b"{" + b" " * (1 << 20) + b"}")
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_streamed_body_over_one_mib_without_length_is_json_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b" " * 65536

    r = await client.post("/send", content=chunks())
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("bad", ["a b", "x" * 65, "ñandú", "a.b", "a%2Fb"])
async def test_invalid_instance_id_is_400(client: httpx.AsyncClient, bad: str) -> None:
    r = await client.get(f"/api/session-manager/sessions/{bad}/status")
    assert r.status_code in (400, 404)  # a decoded '/' is a different route: 404
    if r.status_code == 400:
        assert r.json()["code"] == "INVALID_INSTANCE_ID"


async def test_invalid_qr_format_is_json_400(client: httpx.AsyncClient) -> None:
    r = await client.get("/qr?format=gif")
    assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    r = await client.get("/status", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = (await client.get("/status")).headers["x-request-id"]
    assert len(generated) == 32


async def test_sandbox_routes_are_404_without_sandbox_engine(harness: Harness) -> None:
    from tests.session_manager.test_state_machine import NotSandbox

    client = await harness.start(engine=NotSandbox())
    r = await client.post("/api/session-manager/sandbox/admin/scan")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    from tests.session_manager.conftest import wait_status

    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")
    await client.post("/send", json={"cliente_id": 1, "to": "1234567", "message": "x"})
    text = (await client.get("/metrics")).text
    assert 'session_manager_sessions{status="QR_REQUIRED"} 1' in text
    assert 'session_manager_sends_total{outcome="SESSION_NOT_READY"} 1' in text
    assert "session_manager_send_seconds_bucket" in text


async def test_openapi_lists_every_route_with_error_responses(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    for route in (
        "/health",
        "/status",
        "/qr",
        "/connect",
        "/disconnect",
        "/logout",
        "/send",
        "/api/session-manager/sessions",
        "/api/session-manager/sessions/{instance_id}/pair-code",
        "/api/session-manager/sessions/{instance_id}/account",
    ):
        assert route in paths, route
    assert {"400", "503", "500"} <= set(paths["/send"]["post"]["responses"])
    assert (await client.get("/docs")).status_code == 200


async def test_cluster_view_of_a_single_node(harness: Harness) -> None:
    """SQLite is one node (CONTRACT §4); on PostgreSQL the same app is a one-node cluster."""
    client = await harness.start()
    r = await client.get("/api/session-manager/cluster")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [n["node_id"] for n in body["nodes"]] == [body["self"]]
    node = body["nodes"][0]
    assert node["alive"] is True and isinstance(node["instances"], int) and node["url"].startswith("http://")
