"""Every transition of CONTRACT §2.2 the sandbox can produce, seen through the HTTP routes."""

from __future__ import annotations

import asyncio
import io
import re
from typing import ClassVar

import httpx
import zxingcpp
from PIL import Image

from leadmaster.session_manager.engines.base import Account, Engine, EngineSink, SentMessage
from tests.session_manager.conftest import Harness, pair, wait_status

S = "/api/session-manager/sessions"
FAST_QR = {"sandbox_qr_first_seconds": 0.3, "sandbox_qr_seconds": 0.15, "sandbox_qr_count": 3}


class NotSandbox(Engine):
    """A do-nothing engine: only for checking what the HTTP layer does without the sandbox."""

    name: ClassVar[str] = "fake"

    async def start(self, sink: EngineSink) -> None: ...
    async def stop(self) -> None: ...
    async def connect(self, instance_id: str) -> None: ...
    async def disconnect(self, instance_id: str) -> None: ...
    async def logout(self, instance_id: str) -> None: ...
    async def pair_code(self, instance_id: str, phone: str) -> str:
        return "AAAA-BBBB"

    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        raise AssertionError("not used")

    async def account(self, instance_id: str) -> Account | None:
        return None


async def test_unknown_instance_reports_disconnected(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"{S}/never_seen/status")).json()
    assert body["status"] == "DISCONNECTED" and body["instance_id"] == "never_seen"
    assert (await client.get(f"{S}/never_seen")).json()["status"] == "DISCONNECTED"
    assert (await client.get(f"{S}")).json() == []


async def test_connect_without_credentials_goes_init_then_qr_required(client: httpx.AsyncClient) -> None:
    r = await client.post("/connect")
    assert r.json() == {"success": True, "status": "INIT", "alreadyConnected": False}
    await wait_status(client, "QR_REQUIRED")
    again = (await client.post("/connect")).json()
    assert again == {"success": True, "status": "QR_REQUIRED", "alreadyConnected": True}


async def test_qr_is_a_real_scannable_image_in_every_format(client: httpx.AsyncClient) -> None:
    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")
    body = (await client.get("/qr")).json()
    assert body["status"] == "QR_AVAILABLE" and body["qr"].startswith("data:image/png;base64,")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["expires_at"])
    png = await client.get("/qr?format=png")
    assert png.headers["content-type"] == "image/png"
    # QR codes only: zxing's 1-D decoders now and then read a spurious linear barcode out of a QR's modules.
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)), formats=zxingcpp.BarcodeFormat.QRCode)
    assert [d.text for d in decoded] == [body["raw"]]
    svg = await client.get("/qr?format=svg")
    assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content


async def test_qr_codes_rotate_then_time_out_to_error(harness: Harness) -> None:
    client = await harness.start(**FAST_QR)
    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")
    seen: list[str] = []
    while len(seen) < 3:
        body = (await client.get("/qr")).json()
        if body["status"] != "QR_AVAILABLE":
            break
        if not seen or seen[-1] != body["raw"]:
            seen.append(body["raw"])
        await asyncio.sleep(0.02)
    assert len(set(seen)) == 3
    status = await wait_status(client, "ERROR")
    assert status["reason"] == "QR_TIMEOUT"
    assert (await client.get("/qr")).json() == {"status": "NO_QR", "session_status": "ERROR"}
    none = await client.get("/qr?format=png")
    assert none.status_code == 404 and none.json()["code"] == "QR_NOT_AVAILABLE"
    # /connect on ERROR starts again.
    assert (await client.post("/connect")).json()["alreadyConnected"] is False
    await wait_status(client, "QR_REQUIRED")


async def test_scan_goes_authenticated_then_ready_and_hides_the_qr(client: httpx.AsyncClient) -> None:
    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")
    r = await client.post("/api/session-manager/sandbox/admin/scan")
    assert r.json() == {"success": True, "status": "AUTHENTICATED"}
    assert (await client.get("/status")).json()["status"] == "AUTHENTICATED"
    await wait_status(client, "READY")
    assert (await client.get("/qr")).json() == {"status": "NO_QR", "session_status": "READY"}
    account = (await client.get(f"{S}/admin/account")).json()
    assert account["jid"].endswith("@s.whatsapp.net") and account["phone"] in account["jid"]


async def test_scan_without_qr_is_409(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/session-manager/sandbox/admin/scan")
    assert r.status_code == 409 and r.json()["code"] == "NO_QR_TO_SCAN"


async def test_auto_pair_after_configured_seconds(harness: Harness) -> None:
    client = await harness.start(sandbox_auto_pair_seconds=0.2)
    await client.post("/connect")
    await wait_status(client, "READY", timeout=3)


async def test_network_drop_goes_disconnected_and_back_to_ready(client: httpx.AsyncClient) -> None:
    await pair(client)
    r = await client.post(
        "/api/session-manager/sandbox/admin/faults", json={"drop_connection": True, "reconnect_after_ms": 200}
    )
    assert r.json() == {"success": True}
    status = (await client.get("/status")).json()
    assert status["status"] == "DISCONNECTED" and status["reason"] == "CONNECTION_LOST"
    assert (await wait_status(client, "READY"))["reason"] is None


async def test_unlink_from_phone_goes_error_logged_out_and_forgets_credentials(client: httpx.AsyncClient) -> None:
    await pair(client)
    await client.post("/api/session-manager/sandbox/admin/faults", json={"logout": True})
    status = (await client.get("/status")).json()
    assert status["status"] == "ERROR" and status["reason"] == "LOGGED_OUT"
    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")


async def test_disconnect_keeps_credentials_so_connect_resumes_without_qr(client: httpx.AsyncClient) -> None:
    await pair(client)
    r = await client.post("/disconnect")
    assert r.json() == {"success": True, "status": "DISCONNECTED"}
    assert (await client.get("/status")).json()["reason"] == "DISCONNECT_REQUESTED"
    await client.post("/connect")
    await wait_status(client, "READY")


async def test_logout_deletes_credentials_so_connect_needs_a_new_qr(client: httpx.AsyncClient) -> None:
    await pair(client)
    assert (await client.post("/logout")).json() == {"success": True, "status": "DISCONNECTED"}
    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")


async def test_pair_code_only_while_qr_required(client: httpx.AsyncClient) -> None:
    not_started = await client.post(f"{S}/admin/pair-code", json={"phone": "5491123456789"})
    assert not_started.status_code == 503 and not_started.json()["code"] == "SESSION_NOT_READY"
    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")
    bad = await client.post(f"{S}/admin/pair-code", json={"phone": "12"})
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_PHONE"
    r = await client.post(f"{S}/admin/pair-code", json={"phone": "+5491123456789"})
    assert r.status_code == 200 and re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", r.json()["code"])
    await client.post("/api/session-manager/sandbox/admin/scan")
    await wait_status(client, "READY")
    paired = await client.post(f"{S}/admin/pair-code", json={"phone": "5491123456789"})
    assert paired.status_code == 400 and paired.json()["code"] == "ALREADY_PAIRED"


async def test_account_is_503_unless_ready(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{S}/admin/account")
    assert r.status_code == 503 and r.json()["status"] == "DISCONNECTED"


async def test_delete_logs_out_and_forgets_the_instance(client: httpx.AsyncClient) -> None:
    await pair(client, "gone")
    r = await client.delete(f"{S}/gone")
    assert r.status_code == 200 and r.json()["status"] == "DISCONNECTED"
    assert [s["instance_id"] for s in (await client.get(S)).json()] == []
    assert (await client.get("/api/session-manager/sandbox/gone/outbox")).json() == {"messages": []}


async def test_faults_reject_unknown_or_ill_typed_values(client: httpx.AsyncClient) -> None:
    for body in ({"explode": True}, {"send_error": -1}, {"send_delay_ms": "5"}, {"logout": 1}):
        r = await client.post("/api/session-manager/sandbox/admin/faults", json=body)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_FAULT", body
