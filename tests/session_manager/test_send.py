"""POST /send: every row of CONTRACT §2.5, in its order, with exact bodies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from leadmaster.session_manager.engine_storage import StoreSandboxStorage
from leadmaster.session_manager.engines.base import SentMessage
from leadmaster.session_manager.engines.sandbox import SandboxEngine
from tests.session_manager.conftest import Harness, pair, wait_status

GOOD: dict[str, Any] = {"cliente_id": 51, "to": "5491123456789", "message": "Hola"}


async def send(client: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
    return await client.post("/send", content=content, headers={"content-type": "application/json", **headers})


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["success"] is False
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


async def test_send_returns_contract_body_when_ready(client: httpx.AsyncClient) -> None:
    await pair(client)
    r = await send(client, {**GOOD, "to": "+5491123456789"})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is True and body["message"] == "Message sent"
    data = body["data"]
    assert set(data) == {"message_id", "cliente_id", "to", "jid", "timestamp"}
    assert data["cliente_id"] == 51 and data["to"] == "+5491123456789"
    assert data["jid"] == "5491123456789@s.whatsapp.net"
    outbox = (await client.get("/api/session-manager/sandbox/admin/outbox")).json()["messages"]
    assert [(m["message_id"], m["message"], m["cliente_id"]) for m in outbox] == [(data["message_id"], "Hola", 51)]


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"text"', b"null", b"{bad", b"\xff\xfe"])
async def test_send_returns_invalid_json_for_non_object_bodies(client: httpx.AsyncClient, raw: bytes) -> None:
    assert_error(await send(client, raw), 400, "INVALID_JSON")


@pytest.mark.parametrize("cliente_id", [True, False, "51", 51.0, 0, -3, None, [51], {"id": 51}])
async def test_send_rejects_cliente_id_that_is_not_a_positive_integer(
    client: httpx.AsyncClient, cliente_id: Any
) -> None:
    assert_error(await send(client, {**GOOD, "cliente_id": cliente_id}), 400, "INVALID_CLIENTE_ID")


async def test_send_rejects_missing_cliente_id(client: httpx.AsyncClient) -> None:
    assert_error(await send(client, {"to": GOOD["to"], "message": "x"}), 400, "INVALID_CLIENTE_ID")


@pytest.mark.parametrize(
    "to",
    [
        "123456",
        "1234567890123456",
        "+",
        "54 911 2345",
        "549-1123456789",
        "abc",
        "",
        None,
        5491123456789,
        "5491123456789@g.us",
        "123@s.whatsapp.net",
        "٥٤٩١١٢٣٤٥٦٧٨",
        "5491123456789\n",
        "++5491123456789",
    ],
)
async def test_send_rejects_to_that_is_not_a_phone_or_user_jid(client: httpx.AsyncClient, to: Any) -> None:
    assert_error(await send(client, {**GOOD, "to": to}), 400, "INVALID_TO")


@pytest.mark.parametrize(
    "to", ["1234567", "123456789012345", "+5491123456789", "5491123456789@s.whatsapp.net", "5491123456789@c.us"]
)
async def test_send_accepts_phone_numbers_and_user_jids(client: httpx.AsyncClient, to: str) -> None:
    await pair(client)
    r = await send(client, {**GOOD, "to": to})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["to"] == to


@pytest.mark.parametrize("message", [None, 5, "", "   \n\t", "x" * 65_537, ["hi"]])
async def test_send_rejects_bad_message(client: httpx.AsyncClient, message: Any) -> None:
    assert_error(await send(client, {**GOOD, "message": message}), 400, "INVALID_MESSAGE")


async def test_send_accepts_message_of_exactly_65536_characters(client: httpx.AsyncClient) -> None:
    await pair(client)
    assert (await send(client, {**GOOD, "message": "é" * 65_536})).status_code == 200


async def test_send_checks_fields_in_contract_order(client: httpx.AsyncClient) -> None:
    assert_error(await send(client, {"cliente_id": 0, "to": "x", "message": ""}), 400, "INVALID_CLIENTE_ID")
    assert_error(await send(client, {"cliente_id": 1, "to": "x", "message": ""}), 400, "INVALID_TO")
    # Validation comes before readiness: the session is not even connected here.
    assert_error(await send(client, {"cliente_id": 1, "to": "1234567", "message": ""}), 400, "INVALID_MESSAGE")


async def test_send_returns_503_with_status_and_retry_after_when_session_not_ready(client: httpx.AsyncClient) -> None:
    body = assert_error(await send(client, GOOD), 503, "SESSION_NOT_READY")
    assert body["status"] == "DISCONNECTED"
    await client.post("/connect")
    await wait_status(client, "QR_REQUIRED")
    r = await send(client, GOOD)
    assert assert_error(r, 503, "SESSION_NOT_READY")["status"] == "QR_REQUIRED"
    assert r.headers["retry-after"] == "5"


async def test_send_returns_send_failed_when_whatsapp_fails(client: httpx.AsyncClient) -> None:
    await pair(client)
    await client.post("/api/session-manager/sandbox/admin/faults", json={"send_error": 1})
    assert_error(await send(client, GOOD), 500, "SEND_FAILED")
    assert (await send(client, GOOD)).status_code == 200


class ExplodingEngine(SandboxEngine):
    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        raise RuntimeError("library bug")


async def test_send_returns_internal_error_on_unexpected_failure(harness: Harness) -> None:
    settings = harness.settings_factory()
    from leadmaster.session_manager.store import Store

    store = Store.open(settings.store_url, settings.data_dir)
    client = await harness.start(engine=ExplodingEngine(settings, StoreSandboxStorage(store)))
    await pair(client)
    body = assert_error(await send(client, GOOD), 500, "INTERNAL_ERROR")
    assert "library bug" not in body["message"]


async def test_send_on_canonical_route_targets_that_instance(client: httpx.AsyncClient) -> None:
    await pair(client, "sender_7")
    r = await client.post("/api/session-manager/sessions/sender_7/send", json=GOOD)
    assert r.status_code == 200
    assert_error(await send(client, GOOD), 503, "SESSION_NOT_READY")  # admin is not paired
    assert len((await client.get("/api/session-manager/sandbox/sender_7/outbox")).json()["messages"]) == 1
