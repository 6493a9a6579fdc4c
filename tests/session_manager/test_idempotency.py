"""Idempotency-Key (CONTRACT §2.5): replays, reuse, in-flight repeats, persistence, expiry."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time

import httpx
import orjson

from leadmaster.session_manager.engine_storage import StoreSandboxStorage
from leadmaster.session_manager.engines.base import Engine, SendOutcomeUnknown, SentMessage
from leadmaster.session_manager.engines.sandbox import SandboxEngine
from leadmaster.session_manager.idempotency import message_id_for
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


def _restart(harness: Harness, engine: Engine | None = None):  # type: ignore[no-untyped-def]
    from contextlib import AsyncExitStack, asynccontextmanager

    @asynccontextmanager
    async def ctx():  # type: ignore[no-untyped-def]
        async with AsyncExitStack() as stack:
            h2 = Harness(stack, harness.settings_factory)
            yield await h2.start(engine=engine, connect_on_start=True)

    return ctx()


class LosesTheAnswer(SandboxEngine):
    """Hands the message over, then loses the answer once (as when the real engine's worker dies mid-send)."""

    lose = 1

    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        sent = await super().send_text(instance_id, jid, text, message_id)
        if self.lose:
            self.lose -= 1
            raise SendOutcomeUnknown("worker died with the send in flight")
        return sent


class CannotChooseIds(LosesTheAnswer):
    """An engine that cannot choose WhatsApp's message IDs: the service must refuse to send again."""

    chooses_message_id = False
    lose = 1_000

    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        assert message_id is None, "the service must not ask an engine that cannot choose IDs for one"
        return await super().send_text(instance_id, jid, text)


def _engine(harness: Harness, cls: type[SandboxEngine]) -> SandboxEngine:
    settings = harness.settings_factory()
    return cls(settings, StoreSandboxStorage(Store.open(settings.store_url, settings.data_dir)))


async def test_send_of_unknown_outcome_is_never_sent_again_by_an_engine_that_cannot_choose_ids(
    harness: Harness,
) -> None:
    client = await harness.start(engine=_engine(harness, CannotChooseIds))
    await pair(client)
    first = await client.post("/send", json=MSG, headers={"Idempotency-Key": "lost"})
    assert first.status_code == 500 and first.json()["code"] == "SEND_OUTCOME_UNKNOWN"
    retry = await client.post("/send", json=MSG, headers={"Idempotency-Key": "lost"})
    assert retry.status_code == 500 and retry.json()["code"] == "SEND_OUTCOME_UNKNOWN"
    other = await client.post("/send", json={**MSG, "message": "x"}, headers={"Idempotency-Key": "lost"})
    assert other.status_code == 400 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await outbox_len(client) == 1


async def test_retry_after_unknown_outcome_resends_the_same_message_once(harness: Harness) -> None:
    client = await harness.start(engine=_engine(harness, LosesTheAnswer))
    await pair(client)
    first = await client.post("/send", json=MSG, headers={"Idempotency-Key": "lost"})
    assert first.status_code == 500 and first.json()["code"] == "SEND_OUTCOME_UNKNOWN"
    assert "re-sends it as the same message" in first.json()["message"]
    other = await client.post("/send", json={**MSG, "message": "x"}, headers={"Idempotency-Key": "lost"})
    assert other.status_code == 400 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    retry = await client.post("/send", json=MSG, headers={"Idempotency-Key": "lost"})
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    outbox = (await client.get(OUTBOX)).json()["messages"]
    assert [m["message_id"] for m in outbox] == [retry.json()["data"]["message_id"]]
    assert retry.json()["data"]["timestamp"] == outbox[0]["timestamp"]  # answered as the first send did
    again = await client.post("/send", json=MSG, headers={"Idempotency-Key": "lost"})
    assert again.json() == retry.json() and again.headers["idempotent-replayed"] == "true"
    assert await outbox_len(client) == 1


async def _crash_mid_send(harness: Harness, key: str, handed_over: bool) -> str:
    """Leave what a run that died after the pending mark (and maybe after WhatsApp took it) leaves behind."""
    client = await harness.start()
    await pair(client)
    service = harness.app.state.service
    body_hash = hashlib.sha256(orjson.dumps([MSG["cliente_id"], MSG["to"], MSG["message"]])).hexdigest()
    created_at = time.time()
    assert await service.store.begin_idempotency("admin", key, body_hash, created_at)
    message_id = message_id_for("admin", key, created_at)
    if handed_over:
        entry = {"message_id": message_id, "cliente_id": MSG["cliente_id"], "to": MSG["to"],
                 "jid": "5491123456789@s.whatsapp.net", "message": MSG["message"],
                 "timestamp": "2026-01-02T03:04:05.678Z"}
        assert await service.store.add_outbox("admin", entry) is None
    await harness.stack.aclose()
    return message_id


async def test_send_interrupted_by_a_crash_is_resent_as_the_same_message_after_restart(harness: Harness) -> None:
    message_id = await _crash_mid_send(harness, "crashed", handed_over=True)
    async with _restart(harness) as client2:
        await wait_status(client2, "READY")
        r = await client2.post("/send", json=MSG, headers={"Idempotency-Key": "crashed"})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["message_id"] == message_id
        assert r.json()["data"]["timestamp"] == "2026-01-02T03:04:05.678Z"
        assert await outbox_len(client2) == 1
        replay = await client2.post("/send", json=MSG, headers={"Idempotency-Key": "crashed"})
        assert replay.json() == r.json() and replay.headers["idempotent-replayed"] == "true"
        assert (await client2.post("/send", json=MSG, headers={"Idempotency-Key": "fresh"})).status_code == 200
        assert await outbox_len(client2) == 2


async def test_crash_before_whatsapp_took_it_sends_it_once_on_retry(harness: Harness) -> None:
    message_id = await _crash_mid_send(harness, "crashed-early", handed_over=False)
    async with _restart(harness) as client2:
        await wait_status(client2, "READY")
        r = await client2.post("/send", json=MSG, headers={"Idempotency-Key": "crashed-early"})
        assert r.status_code == 200 and r.json()["data"]["message_id"] == message_id
        assert await outbox_len(client2) == 1


async def test_send_interrupted_by_a_crash_is_refused_by_an_engine_that_cannot_choose_ids(harness: Harness) -> None:
    await _crash_mid_send(harness, "crashed", handed_over=True)
    async with _restart(harness, _engine(harness, CannotChooseIds)) as client2:
        await wait_status(client2, "READY")
        r = await client2.post("/send", json=MSG, headers={"Idempotency-Key": "crashed"})
        assert r.status_code == 500 and r.json()["code"] == "SEND_OUTCOME_UNKNOWN"
        assert "may have been delivered" in r.json()["message"]
        assert await outbox_len(client2) == 1


def test_message_ids_are_whatsapp_like_and_differ_per_instance_key_and_record() -> None:
    ids = {message_id_for(i, k, t) for i in ("a", "b") for k in ("k1", "k2") for t in (1.0, 2.0)}
    assert len(ids) == 8
    assert all(re.fullmatch(r"3EB0[0-9A-F]{18}", m) for m in ids)
    assert message_id_for("a", "k1", 1.5) == message_id_for("a", "k1", 1.5)
