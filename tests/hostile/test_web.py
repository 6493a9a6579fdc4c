"""The browser side, in Debian's chromium against the real processes (issue 11 rows 4 and 9).

Sign-in's `next` must stay a same-origin dashboard path whatever the browser makes of it, and /docs and
/redoc of both services must render with no request leaving the service's origin, under a CSP.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import browser  # noqa: F401 - the Playwright fixture (Debian chromium)
from tests.fault.stack import ADMIN, SM_KEY
from tests.support.processes import Service, start_hub, start_session_manager

pw = pytest.importorskip("playwright.sync_api")
expect = pw.expect

PHISHING = ["/%5Cattacker.invalid/phish", "/%09/attacker.invalid/x", "//attacker.invalid/x",
            "/%5C%5Cattacker.invalid", "https://attacker.invalid/", "/api/admin/clientes", "/docs",
            "javascript:alert(1)", "/%2F%2Fattacker.invalid"]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Service]]:
    root: Path = tmp_path_factory.mktemp("web")
    sm = start_session_manager(root / "sm", SESSION_MANAGER_API_KEY=SM_KEY)
    try:
        hub = start_hub(root / "hub", sm.base_url, SESSION_MANAGER_API_KEY=SM_KEY,
                        CENTRAL_HUB_ADMIN_USERNAME=ADMIN[0], CENTRAL_HUB_ADMIN_PASSWORD=ADMIN[1],
                        SESSION_MANAGER_HEALTH_INTERVAL="0")
        try:
            yield hub, sm
        finally:
            hub.stop()
    finally:
        sm.stop()


def sign_in_with_next(browser: Any, hub: Service, next_param: str) -> str:  # noqa: F811
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{hub.base_url}/login?next={next_param}")
        page.get_by_label("Username").fill(ADMIN[0])
        page.get_by_label("Password").fill(ADMIN[1])
        page.get_by_role("button", name="Sign in").click()
        expect(page).not_to_have_url(re.compile(r"/login"))
        page.wait_for_load_state()
        return str(page.url)
    finally:
        context.close()


@pytest.mark.parametrize("next_param", PHISHING)
def test_sign_in_never_leaves_the_dashboard(browser: Any, services: tuple[Service, Service],  # noqa: F811
                                            next_param: str) -> None:
    hub, _ = services
    assert sign_in_with_next(browser, hub, next_param) == hub.base_url + "/"


def test_sign_in_still_goes_where_the_user_was_headed(browser: Any,  # noqa: F811
                                                      services: tuple[Service, Service]) -> None:
    hub, _ = services
    assert sign_in_with_next(browser, hub, "/admin") == hub.base_url + "/admin"
    assert sign_in_with_next(browser, hub, "%2Fclientes%2F7%3Fx%3D1") == hub.base_url + "/clientes/7?x=1"


@pytest.mark.parametrize("path,ready", [("/docs", ".swagger-ui .info .title"), ("/redoc", "h1")])
@pytest.mark.parametrize("which", ["hub", "session-manager"])
def test_docs_render_from_the_service_alone(browser: Any, services: tuple[Service, Service],  # noqa: F811
                                            path: str, ready: str, which: str) -> None:
    hub, sm = services
    svc = hub if which == "hub" else sm
    # The session-manager's docs sit behind its API key like every route but /health.
    context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {SM_KEY}"} if svc is sm else {})
    try:
        page = context.new_page()
        requests: list[str] = []
        violations: list[str] = []
        # Loaded, not merely tried: ReDoc's sidebar points an <img> at its CDN, which the CSP blocks.
        page.on("requestfinished", lambda r: requests.append(r.url))
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        response = page.goto(svc.base_url + path)
        assert response is not None and response.status == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp, csp
        expect(page.locator(ready).first).to_contain_text("LeadMaster", timeout=20_000)
        foreign = [u for u in requests if not u.startswith((svc.base_url + "/", "data:", "blob:"))]
        assert not foreign, foreign
        assert not [v for v in violations if "script" in v], violations
    finally:
        context.close()
