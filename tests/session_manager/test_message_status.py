"""CONTRACT §5 message status: SENT/DELIVERED/READ/FAILED, forward only, kept 30 days, polled by updated_at."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from leadmaster.contract.status import MessageStatus
from leadmaster.session_manager.engine_storage import StoreSandboxStorage
from leadmaster.session_manager.engines.base import SentMessage
from leadmaster.session_manager.engines.sandbox import SandboxEngine
from leadmaster.session_manager.messages import messages, to_us
from leadmaster.session_manager.service import SessionService
from leadmaster.session_manager.store import Store
from tests.session_manager.conftest import Harness, pair

S = "/api/session-manager/sessions"
MSG = {"cliente_id": 7, "to": "+5491123456789", "message": "Hola"}
NEVER = {"sandbox_delivery_ms": 600_000, "sandbox_read_ms": 600_000}  # receipts only from the test itself


async def send(client: httpx.AsyncClient, instance: str = "admin", to: str = MSG["to"]) -> str:
    r = await client.post(f"{S}/{instance}/send", json={**MSG, "to": to})
    assert r.status_code == 200, r.text
    message_id: str = r.json()["data"]["message_id"]
    return message_id


async def status_of(client: httpx.AsyncClient, message_id: str, instance: str = "admin") -> dict[str, Any]:
    r = await client.get(f"{S}/{instance}/messages/{message_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def wait_for(client: httpx.AsyncClient, message_id: str, want: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body = await status_of(client, message_id)
        if body["status"] == want:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"never {want}: {body}"
        await asyncio.sleep(0.01)


def service(harness: Harness) -> SessionService:
    svc: SessionService = harness.app.state.service
    return svc


async def settled(svc: SessionService) -> None:
    """Wait until every receipt and write so far is committed (their lane commits in queue order)."""
    svc.messages.flush()
    await svc.store.writer.write(status=True)


async def test_sandbox_message_goes_sent_delivered_read_with_each_time(harness: Harness) -> None:
    client = await harness.start(sandbox_delivery_ms=100, sandbox_read_ms=300)
    await pair(client)
    mid = await send(client)
    first = await status_of(client, mid)
    assert set(first) == {"message_id", "to", "status", "sent_at", "delivered_at", "read_at", "updated_at"}
    assert (first["message_id"], first["to"], first["status"]) == (mid, MSG["to"], "SENT")
    assert first["delivered_at"] is None and first["read_at"] is None
    delivered = await wait_for(client, mid, "DELIVERED")
    read = await wait_for(client, mid, "READ")
    sent_at = datetime.fromisoformat(first["sent_at"])
    delivered_at = datetime.fromisoformat(read["delivered_at"])
    read_at = datetime.fromisoformat(read["read_at"])
    assert read["delivered_at"] == delivered["delivered_at"]
    assert sent_at < delivered_at < read_at
    assert first["updated_at"] < delivered["updated_at"] < read["updated_at"]
    assert read_at - sent_at >= timedelta(milliseconds=250)


async def test_unknown_message_is_404_and_bad_instance_400(harness: Harness) -> None:
    client = await harness.start()
    r = await client.get(f"{S}/admin/messages/3EB0NOPE")
    assert r.status_code == 404 and r.json()["code"] == "MESSAGE_NOT_FOUND" and "3EB0NOPE" in r.json()["message"]
    r = await client.get(f"{S}/bad%20id/messages/x")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_INSTANCE_ID"


async def test_messages_of_one_instance_are_not_visible_on_another(harness: Harness) -> None:
    client = await harness.start(**NEVER)
    await pair(client, "one")
    mid = await send(client, "one")
    r = await client.get(f"{S}/two/messages/{mid}")
    assert r.status_code == 404
    assert (await client.get(f"{S}/two/messages")).json() == {"messages": []}


async def test_undelivered_fault_keeps_later_messages_sent_until_cleared(harness: Harness) -> None:
    client = await harness.start(sandbox_delivery_ms=20, sandbox_read_ms=60)
    await pair(client)
    r = await client.post("/api/session-manager/sandbox/admin/faults", json={"undelivered": True})
    assert r.status_code == 200
    stuck = await send(client)
    await client.post("/api/session-manager/sandbox/admin/faults", json={"undelivered": False})
    moving = await send(client)
    await wait_for(client, moving, "READ")  # read after the stuck one's receipts would have come
    assert (await status_of(client, stuck))["status"] == "SENT"


@pytest.mark.parametrize(
    ("receipts", "final"),
    [
        (["DELIVERED", "READ"], "READ"),
        (["READ", "DELIVERED"], "READ"),
        (["READ", "READ", "SENT"], "READ"),
        (["DELIVERED", "FAILED"], "DELIVERED"),
        (["FAILED", "DELIVERED", "READ"], "FAILED"),
        (["SENT"], "SENT"),
    ],
)
async def test_statuses_only_move_forward(harness: Harness, receipts: list[str], final: str) -> None:
    client = await harness.start(**NEVER)
    await pair(client)
    mid = await send(client)
    svc = service(harness)
    base = datetime.now(UTC)
    for i, name in enumerate(receipts):
        svc.message_status("admin", mid, MessageStatus(name), base + timedelta(seconds=i + 1))
    await settled(svc)
    body = await status_of(client, mid)
    assert body["status"] == final
    if final == "READ":
        first_read = receipts.index("READ") + 1
        assert body["read_at"] == (base + timedelta(seconds=first_read)).isoformat().replace("+00:00", "Z")
        # A read message was delivered: at its delivery receipt if that came first, else when read.
        delivered = receipts.index("DELIVERED") + 1 if receipts[0] == "DELIVERED" else first_read
        assert body["delivered_at"] == (base + timedelta(seconds=delivered)).isoformat().replace("+00:00", "Z")
    if final == "FAILED":
        assert body["delivered_at"] is None and body["read_at"] is None


async def test_receipts_for_messages_it_did_not_send_are_dropped(harness: Harness) -> None:
    client = await harness.start(**NEVER)
    await pair(client)
    svc = service(harness)
    svc.message_status("admin", "SOMEONE-ELSES", MessageStatus.READ, datetime.now(UTC))
    await settled(svc)
    assert (await client.get(f"{S}/admin/messages/SOMEONE-ELSES")).status_code == 404
    with svc.store.engine.connect() as conn:
        assert conn.execute(messages.select()).all() == []


async def test_receipt_before_the_sent_row_is_applied_once_the_row_exists(harness: Harness) -> None:
    client = await harness.start(**NEVER)
    svc = service(harness)
    at = datetime.now(UTC)
    svc.message_status("admin", "EARLY1", MessageStatus.DELIVERED, at)
    svc.message_status("admin", "EARLY1", MessageStatus.READ, at + timedelta(milliseconds=5))
    await settled(svc)
    assert (await client.get(f"{S}/admin/messages/EARLY1")).status_code == 404  # nothing stored of it yet
    await svc.messages.record_sent("admin", "EARLY1", "5491100000000", at - timedelta(milliseconds=5))
    await settled(svc)
    body = await status_of(client, "EARLY1")
    assert body["status"] == "READ" and body["delivered_at"] is not None


class OvertakingEngine(SandboxEngine):
    """The phone's receipt reaches the service before the send's own answer does (seen with real sockets)."""

    async def send_text(self, instance_id: str, jid: str, text: str, message_id: str | None = None) -> SentMessage:
        sent = await super().send_text(instance_id, jid, text, message_id)
        self.sink.message_status(instance_id, sent.message_id, MessageStatus.DELIVERED, datetime.now(UTC))
        return sent


async def test_receipt_overtaking_the_send_answer_is_not_lost(harness: Harness, settings_factory: Any) -> None:
    settings = settings_factory(**NEVER)
    store = Store.open(settings.store_url, settings.data_dir)
    client = await harness.start(engine=OvertakingEngine(settings, StoreSandboxStorage(store)), store=store, **NEVER)
    await pair(client)
    mid = await send(client)
    await settled(service(harness))
    assert (await status_of(client, mid))["status"] == "DELIVERED"


async def test_rows_are_kept_30_days_then_purged(harness: Harness) -> None:
    client = await harness.start(**NEVER)
    await pair(client)
    mid = await send(client)
    svc = service(harness)
    now = to_us(datetime.now(UTC))
    day = 86_400 * 1_000_000
    assert await asyncio.to_thread(svc.messages.purge, now + 29 * day) == 0
    assert (await client.get(f"{S}/admin/messages/{mid}")).status_code == 200
    assert await asyncio.to_thread(svc.messages.purge, now + 31 * day) == 1
    assert (await client.get(f"{S}/admin/messages/{mid}")).status_code == 404


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("since=yesterday", "INVALID_SINCE"),
        ("since=2024-13-01T00:00:00Z", "INVALID_SINCE"),
        ("limit=0", "INVALID_LIMIT"),
        ("limit=1001", "INVALID_LIMIT"),
        ("limit=ten", "INVALID_LIMIT"),
        ("limit=-1", "INVALID_LIMIT"),
        ("limit=%D9%A3", "INVALID_LIMIT"),  # Arabic-Indic digit three: not ASCII
    ],
)
async def test_bad_since_or_limit_is_400(harness: Harness, query: str, code: str) -> None:
    client = await harness.start()
    r = await client.get(f"{S}/admin/messages?{query}")
    assert r.status_code == 400 and r.json()["code"] == code, r.text


async def test_polling_returns_changes_in_updated_at_order_from_since(harness: Harness) -> None:
    client = await harness.start(**NEVER)
    await pair(client)
    ids = [await send(client) for _ in range(3)]
    svc = service(harness)
    svc.message_status("admin", ids[0], MessageStatus.DELIVERED, datetime.now(UTC))
    await settled(svc)
    page = (await client.get(f"{S}/admin/messages?limit=1000")).json()["messages"]
    assert [m["message_id"] for m in page] == [ids[1], ids[2], ids[0]]
    assert [m["status"] for m in page] == ["SENT", "SENT", "DELIVERED"]
    after = (await client.get(f"{S}/admin/messages", params={"since": page[0]["updated_at"]})).json()["messages"]
    assert [m["message_id"] for m in after] == [ids[2], ids[0]]
    naive = page[1]["updated_at"].removesuffix("Z")  # no offset: read as UTC
    assert [m["message_id"] for m in (await client.get(f"{S}/admin/messages?since={naive}")).json()["messages"]] == [
        ids[0]
    ]
    assert (await client.get(f"{S}/admin/messages", params={"since": page[2]["updated_at"]})).json() == {
        "messages": []
    }


async def test_a_page_never_splits_rows_that_share_an_updated_at(harness: Harness) -> None:
    client = await harness.start()
    svc = service(harness)
    now = to_us(datetime.now(UTC))
    row = {"instance_id": "admin", "to": "5491100000000", "status": "SENT", "sent_at": now, "updated_at": now}
    with svc.store.engine.begin() as conn:
        conn.execute(messages.insert(), [{**row, "message_id": m} for m in ("A", "B", "C")])
        conn.execute(messages.insert(), [{**row, "message_id": "D", "updated_at": now + 1}])
    first = (await client.get(f"{S}/admin/messages?limit=2")).json()["messages"]
    assert [m["message_id"] for m in first] == ["A", "B", "C"]
    rest = (await client.get(f"{S}/admin/messages", params={"limit": 2, "since": first[-1]["updated_at"]})).json()
    assert [m["message_id"] for m in rest["messages"]] == ["D"]


async def test_a_poller_never_misses_a_change_under_concurrent_sends(harness: Harness) -> None:
    client = await harness.start(sandbox_delivery_ms=3, sandbox_read_ms=9)
    await pair(client)
    seen: dict[str, list[str]] = {}
    stamps: list[str] = []
    done = asyncio.Event()

    async def poll() -> None:
        since: str | None = None
        while True:
            finished = done.is_set()
            params = {"limit": 7, **({"since": since} if since else {})}
            page = (await client.get(f"{S}/admin/messages", params=params)).json()["messages"]
            for m in page:
                seen.setdefault(m["message_id"], []).append(m["status"])
                stamps.append(m["updated_at"])
            if page:
                since = page[-1]["updated_at"]
            elif finished:
                return

    poller = asyncio.create_task(poll())
    sent = await asyncio.gather(*(send(client) for _ in range(60)))
    for mid in sent:
        await wait_for(client, mid, "READ")
    done.set()
    await asyncio.wait_for(poller, 30)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # strictly increasing cursor
    assert set(seen) == set(sent)
    order = ["SENT", "DELIVERED", "READ"]
    for mid, statuses in seen.items():
        assert statuses[-1] == "READ", (mid, statuses)  # the last change was seen
        assert [order.index(s) for s in statuses] == sorted(order.index(s) for s in statuses)


async def test_statuses_survive_a_restart_and_later_receipts_still_apply(
    harness: Harness, settings_factory: Any
) -> None:
    from leadmaster.session_manager.app import create_app

    first = create_app(settings_factory(**NEVER))
    transport = httpx.ASGITransport(app=first)
    async with first.router.lifespan_context(first), httpx.AsyncClient(transport=transport, base_url="http://x") as c:
        await pair(c)
        mid = await send(c)
    client = await harness.start(**NEVER)  # a new process on the same store
    assert (await status_of(client, mid))["status"] == "SENT"
    svc = service(harness)
    svc.message_status("admin", mid, MessageStatus.READ, datetime.now(UTC))
    await settled(svc)
    assert (await status_of(client, mid))["status"] == "READ"


async def test_deleting_an_instance_forgets_its_messages(harness: Harness) -> None:
    client = await harness.start(**NEVER)
    await pair(client)
    mid = await send(client)
    assert (await client.delete(f"{S}/admin")).status_code == 200
    assert (await client.get(f"{S}/admin/messages/{mid}")).status_code == 404
