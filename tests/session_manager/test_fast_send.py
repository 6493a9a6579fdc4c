"""The ASGI send shortcut and the FastAPI send routes answer every case identically."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx

from tests.session_manager.conftest import Harness, _truncate, pair

KEY = "shortcut-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
OK = {"cliente_id": 5, "to": "+5491123456789", "message": "hi"}
CASES: list[tuple[str, str, Any, dict[str, str]]] = [
    ("ok", "/api/session-manager/sessions/ready/send", OK, {}),
    ("ok single-admin", "/send", OK, {}),
    ("keyed", "/api/session-manager/sessions/ready/send", OK, {"Idempotency-Key": "k1"}),
    ("replay", "/api/session-manager/sessions/ready/send", OK, {"Idempotency-Key": "k1"}),
    ("reused", "/api/session-manager/sessions/ready/send", {**OK, "message": "other"}, {"Idempotency-Key": "k1"}),
    ("bad key", "/api/session-manager/sessions/ready/send", OK, {"Idempotency-Key": "x" * 300}),
    ("not json", "/api/session-manager/sessions/ready/send", b"{nope", {}),
    ("not object", "/send", b"[]", {}),
    ("cliente", "/send", {**OK, "cliente_id": True}, {}),
    ("to", "/send", {**OK, "to": "12"}, {}),
    ("message", "/send", {**OK, "message": " "}, {}),
    ("not ready", "/api/session-manager/sessions/never/send", OK, {}),
    ("bad instance", "/api/session-manager/sessions/b%20d/send", OK, {}),
    ("too large", "/send", b"{" + b" " * (1 << 20) + b"}", {}),
    ("no api key", "/send", OK, {"Authorization": ""}),
    ("wrong method", "/api/session-manager/sessions/ready/send", None, {}),
]
VARIABLE = ("message_id", "timestamp")


def normalise(r: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body = r.json()
    if isinstance(body.get("data"), dict):
        body["data"] = {k: v for k, v in body["data"].items() if k not in VARIABLE}
    headers = {k: v for k, v in r.headers.items() if k in ("content-type", "retry-after", "idempotent-replayed")}
    return r.status_code, body, headers


async def run_cases(harness: Harness, shortcut: bool) -> list[tuple[int, Any, dict[str, str]]]:
    async with AsyncExitStack() as stack:
        client = await Harness(stack, harness.settings_factory).start(
            send_shortcut=shortcut, api_key=KEY, data_dir=harness.settings_factory().data_dir / str(shortcut)
        )
        client.headers.update(AUTH)
        await pair(client, "ready")
        await pair(client, "admin")
        out = []
        for _name, path, body, headers in CASES:
            if body is None:
                r = await client.get(path, headers=headers)
            else:
                content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
                r = await client.post(path, content=content, headers=headers)
            out.append(normalise(r))
        return out


async def test_shortcut_answers_exactly_like_the_fastapi_routes(harness: Harness) -> None:
    fast = await run_cases(harness, shortcut=True)
    store_url = harness.settings_factory().store_url
    if store_url:  # PostgreSQL pass: one database for both runs, so start the second from empty too
        _truncate(store_url)
    slow = await run_cases(harness, shortcut=False)
    for (name, *_), a, b in zip(CASES, fast, slow, strict=True):
        assert a == b, name
    assert [status for status, _, _ in fast] == [200, 200, 200, 200, 400, 400, 400, 400, 400, 400, 400, 503, 400,
                                                 413, 401, 405]
