"""Fixtures for the real whatsmeow engine, offline: a refusing proxy makes every dial fail at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from leadmaster.contract.status import SessionStatus
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines.base import Account
from leadmaster.session_manager.engines.whatsmeow import WhatsmeowEngine

REFUSING_PROXY = "http://127.0.0.1:1"


@dataclass
class Recorder:
    """An EngineSink that records everything, with a way to wait for what a test expects."""

    events: list[tuple[float, str, str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _add(self, kind: str, instance_id: str, value: Any) -> None:
        self.events.append((time.monotonic(), kind, instance_id, value))
        self.changed.set()

    def status_changed(self, instance_id: str, status: SessionStatus, reason: str | None = None) -> None:
        self._add("status", instance_id, (status, reason))

    def qr_changed(self, instance_id: str, payload: str | None, expires_at: datetime | None) -> None:
        self._add("qr", instance_id, (payload, expires_at))

    def paired(self, instance_id: str, account: Account) -> None:
        self._add("paired", instance_id, account)

    def unpaired(self, instance_id: str) -> None:
        self._add("unpaired", instance_id, None)

    def of(self, instance_id: str, kind: str | None = None) -> list[Any]:
        return [v for _, k, i, v in self.events if i == instance_id and (kind is None or k == kind)]

    def statuses(self, instance_id: str) -> list[tuple[SessionStatus, str | None]]:
        return self.of(instance_id, "status")

    async def wait(self, predicate: Callable[[], Any], within: float = 10.0) -> Any:
        async with asyncio.timeout(within):
            while True:
                result = predicate()
                if result:
                    return result
                self.changed.clear()
                # Also re-checks now and then: some conditions (a file gone) raise no event.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.05)

    async def wait_status(self, instance_id: str, status: SessionStatus, reason: str | None = None,
                          within: float = 10.0) -> None:
        def seen() -> bool:
            return any(s is status and (reason is None or r == reason) for s, r in self.statuses(instance_id))

        try:
            await self.wait(seen, within)
        except TimeoutError:
            seen_so_far = self.statuses(instance_id)
            raise AssertionError(f"{instance_id}: no {status} {reason}; saw {seen_so_far}") from None


def make_engine(data_dir: Path, **options: Any) -> WhatsmeowEngine:
    settings = Settings(engine="whatsmeow", data_dir=data_dir, connect_on_start=False)
    options.setdefault("proxy", REFUSING_PROXY)
    options.setdefault("test_hooks", True)
    return WhatsmeowEngine(settings, **options)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[WhatsmeowEngine, Recorder]]:
    """One worker for the module's tests (each uses its own instance ids): a worker start costs ~1-3 s."""
    engine = make_engine(tmp_path_factory.mktemp("wm"), backoff_base=0.1, backoff_cap=0.4)
    recorder = Recorder()
    await engine.start(recorder)
    await engine.wait_ready()
    yield engine, recorder
    await engine.stop()
