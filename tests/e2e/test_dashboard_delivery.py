"""Dashboard, delivery truth (CONTRACT §5) in a real browser: live ticks of sent messages, the number check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_dashboard import Stack, call, shot, sign_in
from tests.support.processes import start_hub, start_session_manager

pw = pytest.importorskip("playwright.sync_api")
expect = pw.expect
CID = 71
SM_INSTANCE = f"/api/session-manager/sandbox/sender_{CID}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("dashboard-delivery")
    # Receipts slow enough for each state to be on screen for a few of the page's 1.5 s polls.
    sm = start_session_manager(root / "sm", SANDBOX_DELIVERY_MS="2500", SANDBOX_READ_MS="6000",
                               SESSION_MANAGER_CONTACT_CHECKS_PER_HOUR="6")
    try:
        hub = start_hub(root / "hub", sm.base_url, CENTRAL_HUB_ADMIN_USERNAME="admin",
                        CENTRAL_HUB_ADMIN_PASSWORD="admin-password-1")
        try:
            yield Stack(hub.base_url, sm.base_url, "admin-password-1")
        finally:
            hub.stop()
    finally:
        sm.stop()


def ready_cliente(stack: Stack) -> None:
    _, body = call("POST", f"{stack.hub}/api/auth/login", {"username": "admin", "password": stack.admin_password})
    token = body["access_token"]
    assert call("POST", f"{stack.hub}/api/admin/clientes", {"id": CID, "name": "Delivery Co"}, token)[0] == 201
    assert call("POST", f"{stack.hub}/api/whatsapp/{CID}/connect", None, token)[0] == 200
    deadline = time.monotonic() + 15
    while call("POST", f"{stack.sm}{SM_INSTANCE}/scan")[0] != 200:  # 409 until the QR is up
        assert time.monotonic() < deadline, "the sandbox never showed a QR to scan"
        time.sleep(0.05)


def test_sent_message_ticks_follow_delivery_and_numbers_can_be_checked(
    browser: Any, stack: Stack, screenshots: Path
) -> None:
    ready_cliente(stack)
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    sign_in(page, stack, "admin", stack.admin_password)
    page.goto(f"{stack.hub}/clientes/{CID}")
    expect(page.locator("#status-badge")).to_have_text("READY", timeout=15_000)
    expect(page.locator("#messages-empty")).to_be_visible()

    # A message sent while the recipient's phone is off stays at one tick.
    assert call("POST", f"{stack.sm}{SM_INSTANCE}/faults", {"undelivered": True})[0] == 200
    page.get_by_label("To (phone number)").fill("5491100000009")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#send-outcome")).to_contain_text("Message sent")
    assert call("POST", f"{stack.sm}{SM_INSTANCE}/faults", {"undelivered": False})[0] == 200

    page.get_by_label("To (phone number)").fill("5491123456789")
    page.get_by_role("button", name="Send", exact=True).click()
    card = page.locator("#send-ticks .ticks")
    expect(card).to_have_attribute("data-status", "SENT")
    expect(card).to_contain_text("✓")
    shot(page, screenshots, "11-message-sent-one-tick")
    expect(card).to_have_attribute("data-status", "DELIVERED", timeout=10_000)
    expect(card).to_contain_text("✓✓")
    shot(page, screenshots, "12-message-delivered-two-ticks")
    expect(card).to_have_attribute("data-status", "READ", timeout=15_000)
    color = card.evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(29, 155, 240)", color  # two blue ticks
    rows = page.locator("#messages-body tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".ticks")).to_have_attribute("data-status", "READ")
    expect(rows.nth(1).locator(".ticks")).to_have_attribute("data-status", "SENT")
    expect(rows.nth(1)).to_contain_text("5491100000009")
    page.locator("#messages-table").scroll_into_view_if_needed()
    shot(page, screenshots, "13-sent-messages-read-and-stuck")

    # Paste a list, check it, see who is on WhatsApp.
    assert call("POST", f"{stack.sm}{SM_INSTANCE}/faults", {"not_on_whatsapp": ["5491100000002"]})[0] == 200
    page.get_by_label("Phone numbers (one per line, or separated by commas or spaces)").fill(
        "5491100000001\n+5491100000002, 5491100000003")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("#check-outcome")).to_have_text("2 of 3 on WhatsApp.")
    results = page.locator("#check-body tr")
    expect(results).to_have_count(3)
    expect(results.nth(0)).to_contain_text("✓ Yes")
    expect(results.nth(0)).to_contain_text("5491100000001@s.whatsapp.net")
    expect(results.nth(1)).to_contain_text("+5491100000002")
    expect(results.nth(1)).to_contain_text("✗ No")
    page.locator("#check-table").scroll_into_view_if_needed()
    shot(page, screenshots, "14-number-check")

    # Past the hourly lookup limit the page says so, with the wait.
    page.get_by_label("Phone numbers (one per line, or separated by commas or spaces)").fill(
        "5491100000011 5491100000012 5491100000013 5491100000014")
    page.get_by_role("button", name="Check", exact=True).click()
    outcome = page.locator("#check-outcome")
    expect(outcome).to_contain_text("Too many new lookups this hour (RATE_LIMITED). Try again in 60 min.")
    expect(page.locator("#check-table")).to_be_hidden()
    shot(page, screenshots, "15-number-check-rate-limited")

    page.get_by_label("Phone numbers (one per line, or separated by commas or spaces)").fill("12")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(outcome).to_contain_text("INVALID_PHONES")
