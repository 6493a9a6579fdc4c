"""Idempotency-Key (CONTRACT §2.5): replays, reuse, in-flight repeats, persistence, expiry."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import orjson

from leadmaster.session_manager.engines.base import SendOutcomeUnknown, SentMessage
from leadmaster.session_manager.engines.sandbox import SandboxEngine
from leadmaster.session_manager.store import Store
from tests.session_manager.conftest import Harness, pair, wait_status

MSG = {"cliente_id": 51, "to": "5491123456789", "message": "Hola"}
OUTBOX = "/api/session-manager/sandbox/admin/outbox"
FAULTS = "/api/session-manager/sandbox/admin/faults"


async def outbox_len(client: httpx.AsyncClient) -> int:
    return len((await client.get(OUTBOX)).json()["messages"])


async def test_repeat_with_same_key_replays_first_response_and_sends_nothing(client: httpx.AsyncClient) -> None:
    await pair(client)
    first = await client.post("/send", json=MSG, headers={"Idempotency-Key": "order-1"})
    again = await client.post("/send", json=MSG, headers={"Idempotency-Key": "order-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await outbox_len(client) == 1


async def test_same_key_with_different_body_is_rejected(client: httpx.AsyncClient) -> None:
    await pair(client)
    await client.post("/send", json=MSG, headers={"Idempotency-Key": "k"})
    r = await client.post("/send", json={**MSG, "message": "other"}, headers={"Idempotency-Key": "k"})
    assert r.status_code == 400 and r.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await outbox_len(client) == 1


async def test_keys_are_per_instance(client: httpx.AsyncClient) -> None:
    await pair(client)
    await pair(client, "other")
    a = await client.post("/send", json=MSG, headers={"Idempotency-Key": "k"})
    b = await client.post("/api/session-manager/sessions/other/send", json=MSG, headers={"Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 200
    assert a.json()["data"]["message_id"] != b.json()["data"]["message_id"]


async def test_repeat_while_first_is_sending_waits_and_replays(client: httpx.AsyncClient) -> None:
    await pair(client)
    await client.post(FAULTS, json={"send_delay_ms": 300})
    headers = {"Idempotency-Key": "slow"}
    first, second = await asyncio.gather(
        client.post("/send", json=MSG, headers=headers),
        client.post("/send", json=MSG, headers=headers),
    )
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    replayed = [first.headers.get("idempotent-replayed"), second.headers.get("idempotent-replayed")]
    assert sorted(replayed, key=str) == [None, "true"]
    assert await outbox_len(client) == 1


async def test_key_is_reusable_after_send_failed_and_after_503(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    not_ready = await client.post("/send", json=MSG, headers=headers)
    assert not_ready.status_code == 503
    await pair(client)
    await client.post(FAULTS, json={"send_error": 1})
    failed = await client.post("/send", json=MSG, headers=headers)
    assert failed.status_code == 500 and failed.json()["code"] == "SEND_FAILED"
    ok = await client.post("/send", json=MSG, headers=headers)
    assert ok.status_code == 200 and "idempotent-replayed" not in ok.headers
    assert await outbox_len(client) == 1


async def test_validation_error_does_not_consume_the_key(client: httpx.AsyncClient) -> None:
    await pair(client)
    bad = await client.post("/send", json={**MSG, "to": "x"}, headers={"Idempotency-Key": "v"})
    assert bad.status_code == 400
    assert (await client.post("/send", json=MSG, headers={"Idempotency-Key": "v"})).status_code == 200


async def test_overlong_or_non_ascii_key_is_400(client: httpx.AsyncClient) -> None:
    await pair(client)
    for key in ("x" * 256, "tab\there"):
        r = await client.post("/send", json=MSG, headers={"Idempotency-Key": key})
        assert r.status_code == 400 and r.json()["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert (await client.post("/send", json=MSG, headers={"Idempotency-Key": "x" * 255})).status_code == 200


async def test_keys_survive_a_restart(harness: Harness) -> None:
    client = await harness.start()
    await pair(client)
    first = await client.post("/send", json=MSG, headers={"Idempotency-Key": "durable"})
    await harness.stack.aclose()  # stop the first app (lifespan exit), keep its data dir

    async with _restart(harness) as client2:
        await wait_status(client2, "READY")
        replay = await client2.post("/send", json=MSG, headers={"Idempotency-Key": "durable"})
        assert replay.json() == first.json() and replay.headers["idempotent-replayed"] == "true"
        assert await outbox_len(client2) == 1


async def test_expired_key_sends_again(harness: Harness) -> None:
    client = await harness.start(idempotency_ttl_seconds=1)
    await pair(client)
    await client.post("/send", json=MSG, headers={"Idempotency-Key": "short"})
    await asyncio.sleep(1.1)
    r = await client.post("/send", json=MSG, headers={"Idempotency-Key": "short"})
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    assert await outbox_len(client) == 2


def _restart(harness: Harness):  # type: ignore[no-untyped-def]
    from contextlib import AsyncExitStack, asynccontextmanager

    @asynccontextmanager
    async def ctx():  # type: ignore[no-untyped-def]
        async with AsyncExitStack() as stack:
            h2 = Harness(stack, harness.settings_factory)
            yield await h2.start(connect_on_start=True)

    return ctx()


class LosesTheAnswer(SandboxEngine):
    """Hands the message over, then loses the answer (as when the real engine's worker dies mid-send)."""

    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        await super().send_text(instance_id, jid, text)
        raise SendOutcomeUnknown("worker died with the send in flight")


async def test_send_of_unknown_outcome_is_never_sent_again_under_its_key(harness: Harness) -> None:
    settings = harness.settings_factory()
    client = await harness.start(engine=LosesTheAnswer(settings, Store.open(settings.store_url, settings.data_dir)))
    await pair(client)
    first = await client.post("/send", json=MSG, headers={"Idempotency-Key": "lost"})
    assert first.status_code == 500 and first.json()["code"] == "SEND_OUTCOME_UNKNOWN"
    retry = await client.post("/send", json=MSG, headers={"Idempotency-Key": "lost"})
    assert retry.status_code == 500 and retry.json()["code"] == "SEND_OUTCOME_UNKNOWN"
    other = await client.post("/send", json={**MSG, "message": "x"}, headers={"Idempotency-Key": "lost"})
    assert other.status_code == 400 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await outbox_len(client) == 1


async def test_send_interrupted_by_a_crash_is_not_sent_again_after_restart(harness: Harness) -> None:
    client = await harness.start()
    await pair(client)
    service = harness.app.state.service
    # What a run that died between handing the message over and recording the answer leaves behind.
    body_hash = hashlib.sha256(orjson.dumps([MSG["cliente_id"], MSG["to"], MSG["message"]])).hexdigest()
    await service.store.begin_idempotency("admin", "crashed", body_hash)
    await harness.stack.aclose()
    async with _restart(harness) as client2:
        await wait_status(client2, "READY")
        r = await client2.post("/send", json=MSG, headers={"Idempotency-Key": "crashed"})
        assert r.status_code == 500 and r.json()["code"] == "SEND_OUTCOME_UNKNOWN"
        assert "may have been delivered" in r.json()["message"]
        assert (await client2.post("/send", json=MSG, headers={"Idempotency-Key": "fresh"})).status_code == 200
        assert await outbox_len(client2) == 1
