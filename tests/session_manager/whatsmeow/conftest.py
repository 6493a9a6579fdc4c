"""Fixtures for the real whatsmeow engine (the Go worker), offline: a refusing proxy makes every dial fail at once.

On the PostgreSQL pass (LEADMASTER_TEST_DB=postgres) every engine gets its own throwaway database.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from leadmaster.contract.status import MessageStatus, SessionStatus
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines.base import Account
from leadmaster.session_manager.engines.whatsmeow.process import REPO_ROOT
from tests.support import db
from tests.support.whatsmeow import TestableEngine

REFUSING_PROXY = "http://127.0.0.1:1"


@pytest.fixture(scope="session", autouse=True)
def worker_built() -> None:
    """The Go worker, rebuilt when its sources changed (a no-op when ./test.sh already built it)."""
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "build_worker.py")], check=True, timeout=900,
                   stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def wm_store_url() -> Iterator[str | None]:
    """None (SQLite in the data dir) or a throwaway PostgreSQL database for the module's engines."""
    if not db.use_postgres():
        yield None
        return
    url = db.create_database("leadmaster_wm_test")
    yield url
    db.drop_database(url)


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

    def message_status(self, instance_id: str, message_id: str, status: MessageStatus, at: datetime) -> None:
        self._add("message_status", instance_id, (message_id, status, at))

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


def make_engine(data_dir: Path, store_url: str | None = None, **options: Any) -> TestableEngine:
    settings = Settings(engine="whatsmeow", data_dir=data_dir, store_url=store_url, connect_on_start=False)
    options.setdefault("proxy", REFUSING_PROXY)
    options.setdefault("test_hooks", True)
    return TestableEngine(settings, **options)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, wm_store_url: str | None
) -> AsyncIterator[tuple[TestableEngine, Recorder]]:
    """One worker for the module's tests (each uses its own instance ids)."""
    engine = make_engine(tmp_path_factory.mktemp("wm"), wm_store_url, backoff_base=0.1, backoff_cap=0.4)
    recorder = Recorder()
    await engine.start(recorder)
    await engine.wait_ready()
    yield engine, recorder
    await engine.stop()
