"""Fixtures: the session-manager app in-process (real ASGI stack, sandbox engine, real store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from leadmaster.session_manager.app import create_app
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines.base import Engine
from tests.support import db


@pytest.fixture(scope="session")
def store_url() -> Any:
    """None (SQLite in the data dir) or a throwaway PostgreSQL database for the whole run."""
    if not db.use_postgres():
        yield None
        return
    url = db.create_database("leadmaster_sm_test")
    yield url
    db.drop_database(url)


@pytest.fixture
def settings_factory(tmp_path: Path, store_url: str | None) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "engine": "sandbox",
            "data_dir": tmp_path / "sm",
            "store_url": store_url,
            "connect_on_start": False,
            "default_instance": "admin",
        }
        base.update(overrides)
        return Settings(**base)

    return make


class Harness:
    """An app with its lifespan entered and an HTTP client bound to it."""

    def __init__(self, stack: AsyncExitStack, settings_factory: Callable[..., Settings]) -> None:
        self.stack = stack
        self.settings_factory = settings_factory

    async def start(
        self, engine: Engine | None = None, send_shortcut: bool = True, **overrides: Any
    ) -> httpx.AsyncClient:
        settings = self.settings_factory(**overrides)
        app = create_app(settings, engine=engine, send_shortcut=send_shortcut)
        await self.stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sm.test")
        await self.stack.enter_async_context(client)
        self.app = app
        return client


@pytest.fixture
async def harness(settings_factory: Callable[..., Settings], store_url: str | None) -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        yield Harness(stack, settings_factory)
    if store_url:
        _truncate(store_url)


def _truncate(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE sm_instances, sm_idempotency, sm_sandbox_outbox")
        # On PostgreSQL every app is a cluster node (CONTRACT §4): the next test starts a fresh cluster.
        if conn.execute("SELECT to_regclass('sm_cluster_leases')").fetchone() != (None,):
            conn.execute("TRUNCATE sm_cluster_leases, sm_cluster_nodes")


@pytest.fixture
async def client(harness: Harness) -> httpx.AsyncClient:
    return await harness.start()


async def wait_status(
    client: httpx.AsyncClient, want: str, path: str = "/status", timeout: float = 5.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    body: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        body = (await client.get(path)).json()
        if body["status"] == want:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"status never became {want}; last {body}")


async def pair(client: httpx.AsyncClient, instance_id: str = "admin") -> None:
    """Connect an instance and scan its QR with the sandbox phone until READY."""
    base = f"/api/session-manager/sessions/{instance_id}"
    await client.post(f"{base}/connect")
    await wait_status(client, "QR_REQUIRED", f"{base}/status")
    r = await client.post(f"/api/session-manager/sandbox/{instance_id}/scan")
    assert r.status_code == 200, r.text
    await wait_status(client, "READY", f"{base}/status")


Pair = Callable[[httpx.AsyncClient, str], Awaitable[None]]
