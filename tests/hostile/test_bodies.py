"""Hostile bodies and ids against both real services: always a 4xx JSON error, never a 5xx."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fault.stack import SM_KEY, Stack
from tests.hostile.conftest import PAIRED

CID = PAIRED[0]
HUGES = (2**31, 2**63)  # one past PostgreSQL's INTEGER, one past SQLite's 64-bit integers


def targets(stack: Stack) -> list[tuple[str, str, str]]:
    assert stack.sm is not None
    return [(stack.sm.base_url, f"/api/session-manager/sessions/sender_{CID}/send", SM_KEY),
            (stack.sm.base_url, "/send", SM_KEY),
            (stack.hub_url, f"/api/whatsapp/{CID}/send", stack.keys[CID])]


def post(base: str, path: str, key: str, content: bytes) -> httpx.Response:
    return httpx.post(base + path, content=content, timeout=30,
                      headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})


def assert_json_error(r: httpx.Response, statuses: set[int]) -> dict[str, Any]:
    assert r.status_code in statuses, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    assert body["success"] is False and body["code"].isupper()
    return body


BODIES = {
    "over 1 MiB": (b'{"to":"5491123456789","message":"' + b"x" * (1024 * 1024 + 10) + b'"}', {413}),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, {400}),
    "nested object": (b'{"a":' * 5000 + b"1" + b"}" * 5000, {400}),
    "not UTF-8": (b'{"to":"5491123456789","message":"\xff\xfe\xc3\x28"}', {400}),
    "lone surrogate": (b'{"to":"5491123456789","message":"\\ud800"}', {400, 200}),
    "truncated": (b'{"to":"549112', {400}),
    "empty": (b"", {400}),
    "NUL bytes": (b"\x00" * 64, {400}),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_hostile_body_is_a_json_4xx_on_every_send_route(stack: Stack, name: str) -> None:
    content, statuses = BODIES[name]
    for base, path, key in targets(stack):
        r = post(base, path, key, content)
        if r.status_code != 200:
            body = assert_json_error(r, statuses)
            if r.status_code == 413:
                assert body["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("HUGE", HUGES)
def test_cliente_ids_beyond_the_database_column_are_not_found_or_invalid(stack: Stack, HUGE: int) -> None:
    with stack.hub_client() as hub:
        for method, path in (("GET", f"/api/whatsapp/{HUGE}/status"), ("GET", f"/api/whatsapp/{HUGE}/qr"),
                             ("GET", f"/api/whatsapp/{HUGE}/interactions"), ("POST", f"/api/whatsapp/{HUGE}/send")):
            r = hub.request(method, path, json={"to": "5491123456789", "message": "x"})
            assert (r.status_code, r.json()["code"]) == (404, "NOT_FOUND"), (path, r.text)
        for path, body in (("/api/admin/clientes", {"id": HUGE, "name": "x"}),
                           ("/api/admin/users", {"username": "u", "password": "password-123", "role": "user",
                                                 "cliente_id": HUGE}),
                           ("/api/admin/api-keys", {"name": "k", "role": "user", "cliente_id": HUGE})):
            assert_json_error(hub.post(path, json=body), {400})
        assert_json_error(hub.get("/api/admin/interactions", params={"cliente_id": HUGE}), {400})
