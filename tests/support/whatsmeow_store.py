"""Stored, paired whatsmeow credentials for tests and benchmarks, as a real pairing leaves them.

The worker's test-only `test_seed` stores a device with generated keys (a made-up JID) in the whatsmeow
store and maps the instance to it; the session-manager's own row is then marked paired, as
`SessionService.paired` does after a real pairing. A session-manager treats such an instance as paired: it
redials it from the stored credentials (offline, through a refusing proxy, that dial fails with
CONNECT_FAILED) and never asks for a QR.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from leadmaster.contract.status import MessageStatus, SessionStatus
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines.base import Account
from leadmaster.session_manager.store import Store
from tests.support.whatsmeow import TestableEngine

REFUSING_PROXY = "http://127.0.0.1:1"
FIRST_USER = 5491100000000
SEEDED_DEVICE = 7  # the device number `test_seed` gives every seeded JID


class _Ignore:
    """An EngineSink for a worker that only runs test operations (it connects nothing)."""

    def status_changed(self, instance_id: str, status: SessionStatus, reason: str | None = None) -> None:
        pass

    def qr_changed(self, instance_id: str, payload: str | None, expires_at: datetime | None) -> None:
        pass

    def paired(self, instance_id: str, account: Account) -> None:
        pass

    def unpaired(self, instance_id: str) -> None:
        pass

    def message_status(self, instance_id: str, message_id: str, status: MessageStatus, at: datetime) -> None:
        pass


@contextlib.asynccontextmanager
async def hooked_engine(data_dir: Path, store_url: str | None) -> AsyncIterator[TestableEngine]:
    """A whatsmeow engine whose worker accepts the test operations, on the given store."""
    settings = Settings(engine="whatsmeow", data_dir=data_dir, store_url=store_url, connect_on_start=False)
    engine = TestableEngine(settings, proxy=REFUSING_PROXY, test_hooks=True)
    await engine.start(_Ignore())
    try:
        await engine.wait_ready()
        yield engine
    finally:
        await engine.stop()


def device_jid(user: int) -> str:
    """The device JID `test_seed` stores for a user number (what the worker logs when it dials it)."""
    return f"{user}:{SEEDED_DEVICE}@s.whatsapp.net"


async def plant_paired(data_dir: Path, store_url: str | None, ids: list[str],
                       first_user: int = FIRST_USER) -> dict[str, str]:
    """Store paired credentials for each instance and mark its row paired; instance -> stored device JID."""
    async with hooked_engine(data_dir, store_url) as engine:
        await engine.call_worker("test_seed", {"instances": ids, "first_user": first_user}, within=600)
    store = Store.open(store_url, data_dir)
    try:
        # As a real pairing records it: the account JID without the device, the phone, the push name.
        await asyncio.gather(*(store.set_paired(instance_id, f"{first_user + n}@s.whatsapp.net",
                                                str(first_user + n), f"Seeded {instance_id}")
                               for n, instance_id in enumerate(ids)))
    finally:
        await store.aclose()
    return {instance_id: device_jid(first_user + n) for n, instance_id in enumerate(ids)}


async def stored_devices(data_dir: Path, store_url: str | None, ids: list[str]) -> dict[str, bool]:
    """instance -> whether the whatsmeow store still holds its device (the worker's `test_stored`)."""
    async with hooked_engine(data_dir, store_url) as engine:
        return {instance_id: bool((await engine.call_worker("test_stored", {"instance": instance_id}))["device"])
                for instance_id in ids}
