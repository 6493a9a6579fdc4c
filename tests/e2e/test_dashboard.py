"""The dashboard in a real browser against the real hub and session-manager (sandbox engine).

Set LEADMASTER_E2E_HUB_URL, LEADMASTER_E2E_SM_URL and LEADMASTER_E2E_ADMIN_PASSWORD to run against
services that are already running instead of starting fresh ones.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import start_hub, start_session_manager

pw = pytest.importorskip("playwright.sync_api")
expect = pw.expect


@dataclass
class Stack:
    hub: str
    sm: str
    admin_password: str


def call(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.environ.get("LEADMASTER_E2E_HUB_URL"):
        yield Stack(
            os.environ["LEADMASTER_E2E_HUB_URL"],
            os.environ["LEADMASTER_E2E_SM_URL"],
            os.environ["LEADMASTER_E2E_ADMIN_PASSWORD"],
        )
        return
    root = tmp_path_factory.mktemp("dashboard")
    # Short QR lifetimes so the test sees the page follow a rotation (real WhatsApp: 60 s, then 20 s).
    sm = start_session_manager(
        root / "sm", SESSION_MANAGER_ENGINE="sandbox",
        SANDBOX_QR_FIRST_SECONDS="6", SANDBOX_QR_SECONDS="4", SANDBOX_QR_COUNT="30",
    )
    try:
        hub = start_hub(root / "hub", sm.base_url)
        try:
            # The first-run path a real user takes: the random password the hub wrote for them.
            password = (root / "hub" / "initial-admin-password").read_text().strip()
            yield Stack(hub.base_url, sm.base_url, password)
        finally:
            hub.stop()
    finally:
        sm.stop()


def admin_token(stack: Stack) -> str:
    creds = {"username": "admin", "password": stack.admin_password}
    status, body = call("POST", f"{stack.hub}/api/auth/login", creds)
    assert status == 200, body
    return str(body["access_token"])


def sign_in(page: Any, stack: Stack, username: str, password: str) -> None:
    page.goto(f"{stack.hub}/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#whoami")).to_contain_text(username)


def decode_qr(data_url: str) -> str:
    zxingcpp = pytest.importorskip("zxingcpp")
    image_mod = pytest.importorskip("PIL.Image")
    assert data_url.startswith("data:image/png;base64,"), data_url[:40]
    image = image_mod.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    # QR codes only: zxing's 1-D decoders now and then read a spurious linear barcode out of a QR's modules.
    found = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    assert found, "the dashboard's QR image holds no decodable QR code"
    return str(found[0].text)


def shot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def test_first_time_admin_links_whatsapp_and_sends_a_message(
    browser: Any, stack: Stack, screenshots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{stack.hub}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, screenshots, "01-login")

    sign_in(page, stack, "admin", stack.admin_password)
    expect(page.locator("#clientes-empty")).to_contain_text("No clientes yet")
    shot(page, screenshots, "02-clientes-empty")

    page.get_by_role("link", name="Create the first one").click()
    page.get_by_label("Cliente id (number)").fill("51")
    page.get_by_label("Name").first.fill("Acme Motors")
    page.get_by_role("button", name="Create cliente").click()
    created = page.locator("#cliente-outcome")
    expect(created).to_contain_text("Created cliente #51 Acme Motors (instance sender_51)")
    shot(page, screenshots, "03-admin-cliente-created")

    page.get_by_role("link", name="Open it to link WhatsApp").click()
    expect(page.get_by_role("heading", name="Acme Motors")).to_be_visible()
    badge = page.locator("#status-badge")
    expect(badge).to_have_text("DISCONNECTED")
    expect(page.locator("#btn-simulate")).to_be_hidden()
    shot(page, screenshots, "04-cliente-disconnected")

    page.get_by_role("button", name="Connect", exact=True).click()
    expect(badge).to_have_text("QR_REQUIRED")
    qr = page.get_by_role("img", name="WhatsApp linking QR code for this cliente")
    expect(qr).to_be_visible()
    shot(page, screenshots, "05-qr-shown")

    # The image is a real QR holding exactly the session-manager's current payload.
    status, upstream = call("GET", f"{stack.sm}/api/session-manager/sessions/sender_51/qr")
    assert status == 200 and upstream["status"] == "QR_AVAILABLE", upstream
    expect(qr).to_have_attribute("data-raw", upstream["raw"])
    assert decode_qr(str(qr.get_attribute("src"))) == upstream["raw"]

    # When the code rotates, the page swaps the image for the new one by itself.
    expect(qr).not_to_have_attribute("data-raw", upstream["raw"], timeout=15_000)
    rotated = str(qr.get_attribute("data-raw"))
    assert decode_qr(str(qr.get_attribute("src"))) == rotated
    status, upstream = call("GET", f"{stack.sm}/api/session-manager/sessions/sender_51/qr")
    assert upstream["raw"] == rotated

    # The alternative to scanning: a pairing code to type on the phone.
    page.get_by_text("Link with a phone number instead of a QR code").click()
    page.get_by_label("Phone number (international, digits only)").fill("5491100000000")
    page.get_by_role("button", name="Get pairing code").click()
    expect(page.locator("#pair-code")).to_have_text(re.compile(r"^[A-Z0-9]{4}-[A-Z0-9]{4}$"))
    shot(page, screenshots, "05b-pairing-code")

    # Sending before the phone is linked shows the hub's mapped error, not raw JSON.
    page.get_by_label("To (phone number)").fill("5491123456789")
    page.get_by_role("button", name="Send", exact=True).click()
    outcome = page.locator("#send-outcome")
    expect(outcome).to_contain_text("Not sent")
    expect(outcome).to_contain_text("SERVICE_UNAVAILABLE")
    expect(outcome).to_contain_text("WhatsApp session not ready")
    shot(page, screenshots, "06-send-not-ready")

    page.get_by_role("button", name="Simulate scan (sandbox)").click()
    expect(badge).to_have_text("READY", timeout=15_000)
    expect(qr).to_be_hidden()
    expect(page.locator("#account")).to_contain_text("Linked")
    shot(page, screenshots, "07-ready")

    page.get_by_label("Message", exact=True).fill("Hola from the e2e test")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(outcome).to_contain_text("Message sent")
    shot(page, screenshots, "08-sent")

    status, box = call("GET", f"{stack.sm}/api/session-manager/sandbox/sender_51/outbox")
    assert status == 200
    assert [m["message"] for m in box["messages"]] == ["Hola from the e2e test"]

    first_row = page.locator("#log-body tr").first
    expect(first_row).to_contain_text("send")
    expect(first_row).to_contain_text("200")
    page.locator("#log-table").scroll_into_view_if_needed()
    shot(page, screenshots, "09-interaction-log")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(badge).to_have_text("READY")
    expect(page.locator("#log-body tr").first).to_contain_text("send")
    shot(page, screenshots, "10-phone-cliente")

    page.get_by_role("link", name="All clientes").click()
    card = page.locator("#clientes > li").first
    expect(card).to_contain_text("Acme Motors")
    expect(card.locator(".badge")).to_have_text("READY")
    shot(page, screenshots, "10b-phone-clientes")
    page.close()


def test_admin_creates_user_and_key_and_user_sees_only_own_cliente(
    browser: Any, stack: Stack, screenshots: Path
) -> None:
    token = admin_token(stack)
    for cid, name in ((61, "Own Cliente"), (62, "Other Cliente")):
        status, body = call("POST", f"{stack.hub}/api/admin/clientes", {"id": cid, "name": name}, token)
        assert status == 201, body

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    sign_in(page, stack, "admin", stack.admin_password)
    page.goto(f"{stack.hub}/admin")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("bob-password-123")
    page.locator("#nu-cliente").select_option("61")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#user-outcome")).to_contain_text("Created user bob for cliente #61")

    page.get_by_label("Name", exact=True).nth(1).fill("crm")
    page.locator("#nk-cliente").select_option("61")
    page.get_by_role("button", name="Create API key").click()
    key = page.get_by_label("Your new API key")
    expect(key).to_be_visible()
    secret = key.input_value()
    assert len(secret) >= 20
    shot(page, screenshots, "11-admin-user-and-key")

    # The key just shown works against the API, for its own cliente only.
    assert call("GET", f"{stack.hub}/api/whatsapp/61/status", token=secret)[0] == 200
    assert call("GET", f"{stack.hub}/api/whatsapp/62/status", token=secret)[0] == 403

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, stack, "bob", "bob-password-123")
    items = page.locator("#clientes > li")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("Own Cliente")
    expect(page.get_by_role("link", name="Admin")).to_be_hidden()
    shot(page, screenshots, "12-user-clientes")

    page.goto(f"{stack.hub}/clientes/62")
    expect(page.locator("#cliente-error")).to_contain_text("do not have access")
    expect(page.locator("#cliente-body")).to_be_hidden()
    expect(page.get_by_role("button", name="Connect", exact=True)).to_be_hidden()
    shot(page, screenshots, "13-user-forbidden-cliente")
    page.close()


def test_dashboard_routes_are_html_with_a_strict_policy_and_sandbox_routes_are_authorized(stack: Stack) -> None:
    with urllib.request.urlopen(f"{stack.hub}/login", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    with urllib.request.urlopen(f"{stack.hub}/static/js/common.js", timeout=10) as resp:
        assert resp.status == 200
    token = admin_token(stack)
    assert call("GET", f"{stack.hub}/dashboard/api/info")[0] == 401
    assert call("GET", f"{stack.hub}/dashboard/api/info", token=token) == (
        200, {"reachable": True, "engine": "sandbox", "sandbox": True})
    call("POST", f"{stack.hub}/api/admin/clientes", {"id": 71, "name": "Scan"}, token)
    call("POST", f"{stack.hub}/api/admin/users",
         {"username": "carol", "password": "carol-password-1", "role": "user", "cliente_id": 71}, token)
    status, body = call("POST", f"{stack.hub}/api/auth/login", {"username": "carol", "password": "carol-password-1"})
    carol = body["access_token"]
    # Not connected yet: nothing to scan, mapped like any 409 from the session-manager.
    status, body = call("POST", f"{stack.hub}/dashboard/api/clientes/71/simulate-scan", token=carol)
    assert (status, body["code"], body["upstream_code"]) == (503, "SERVICE_UNAVAILABLE", "NO_QR_TO_SCAN")
    status, body = call("POST", f"{stack.hub}/dashboard/api/clientes/51/simulate-scan", token=carol)
    assert (status, body["code"]) == (403, "FORBIDDEN")
