"""One send at a time per instance, parallel across instances; sessions survive restarts."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx

from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engine_storage import StoreSandboxStorage
from leadmaster.session_manager.engines.base import SentMessage
from leadmaster.session_manager.engines.sandbox import SandboxEngine, SandboxStorage
from leadmaster.session_manager.store import Store
from tests.session_manager.conftest import Harness, pair, wait_status

MSG: dict[str, Any] = {"cliente_id": 1, "to": "5491123456789", "message": "hi"}


class OverlapProbe(SandboxEngine):
    """Records how many sends run at once, per instance and overall."""

    def __init__(self, settings: Settings, storage: SandboxStorage) -> None:
        super().__init__(settings, storage)
        self.active: dict[str, int] = {}
        self.max_per_instance: dict[str, int] = {}
        self.total = 0
        self.max_total = 0

    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        self.active[instance_id] = self.active.get(instance_id, 0) + 1
        self.total += 1
        self.max_total = max(self.max_total, self.total)
        self.max_per_instance[instance_id] = max(self.max_per_instance.get(instance_id, 0), self.active[instance_id])
        try:
            await asyncio.sleep(0.05)
            return await super().send_text(instance_id, jid, text)
        finally:
            self.active[instance_id] -= 1
            self.total -= 1


async def probe_client(harness: Harness) -> tuple[httpx.AsyncClient, OverlapProbe]:
    settings = harness.settings_factory()
    engine = OverlapProbe(settings, StoreSandboxStorage(Store.open(settings.store_url, settings.data_dir)))
    return await harness.start(engine=engine), engine


async def test_concurrent_sends_to_one_instance_never_overlap(harness: Harness) -> None:
    client, probe = await probe_client(harness)
    await pair(client, "one")
    url = "/api/session-manager/sessions/one/send"
    started = time.perf_counter()
    replies = await asyncio.gather(*(client.post(url, json=MSG) for _ in range(8)))
    elapsed = time.perf_counter() - started
    assert [r.status_code for r in replies] == [200] * 8
    assert probe.max_per_instance["one"] == 1
    assert elapsed >= 8 * 0.05


async def test_sends_to_two_instances_run_in_parallel(harness: Harness) -> None:
    client, probe = await probe_client(harness)
    await pair(client, "a")
    await pair(client, "b")
    replies = await asyncio.gather(
        *(client.post(f"/api/session-manager/sessions/{i}/send", json=MSG) for i in ("a", "b") * 4)
    )
    assert all(r.status_code == 200 for r in replies)
    assert probe.max_per_instance == {"a": 1, "b": 1}
    assert probe.max_total == 2


async def test_send_that_waited_behind_a_drop_answers_503(client: httpx.AsyncClient) -> None:
    await pair(client)
    await client.post("/api/session-manager/sandbox/admin/faults", json={"send_delay_ms": 200})
    first = asyncio.create_task(client.post("/send", json=MSG))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(client.post("/send", json=MSG))
    await asyncio.sleep(0.05)
    await client.post(
        "/api/session-manager/sandbox/admin/faults", json={"drop_connection": True, "reconnect_after_ms": 5000}
    )
    r1, r2 = await first, await second
    assert r1.status_code == 503 and r2.status_code == 503
    assert r2.json()["status"] == "DISCONNECTED"


async def test_restart_resumes_paired_sessions_without_qr(harness: Harness) -> None:
    client = await harness.start()
    await pair(client, "admin")
    await pair(client, "sender_2")
    await client.post("/api/session-manager/sessions/unpaired/connect")
    await harness.stack.aclose()
    async with AsyncExitStack() as stack:
        client2 = await Harness(stack, harness.settings_factory).start(connect_on_start=True)
        await wait_status(client2, "READY", "/api/session-manager/sessions/sender_2/status")
        await wait_status(client2, "READY")
        # Known but never paired: remembered, not dialed.
        assert (await client2.get("/api/session-manager/sessions/unpaired/status")).json()["status"] == "DISCONNECTED"
        assert (await client2.post("/send", json=MSG)).status_code == 200


async def test_start_up_connects_the_single_admin_instance(harness: Harness) -> None:
    client = await harness.start(connect_on_start=True)
    await wait_status(client, "QR_REQUIRED")
