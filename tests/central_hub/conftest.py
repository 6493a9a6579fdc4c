"""Hub fixtures: a real fake session-manager on loopback, the hub app in-process, SQLite or PostgreSQL.

LEADMASTER_TEST_DB=postgres runs every hub test against a throwaway PostgreSQL database created for the
run (tables emptied between tests); the default is a SQLite file per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from leadmaster.central_hub.app import create_app
from leadmaster.central_hub.config import Settings
from tests.central_hub.fake_upstream import FakeUpstream
from tests.support import db as testdb

ADMIN_USER, ADMIN_PASSWORD = "root", "root-password-123"


def sqlalchemy_url(libpq_url: str) -> str:
    return libpq_url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    if not testdb.use_postgres():
        yield None
        return
    url = testdb.create_database("leadmaster_test_hub")
    try:
        yield url
    finally:
        testdb.drop_database(url)


def empty_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'")]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def database_url(postgres_url: str | None) -> str | None:
    """None = the hub's default SQLite file in its data dir; else a freshly emptied PostgreSQL database."""
    if postgres_url is None:
        return None
    empty_postgres(postgres_url)
    return sqlalchemy_url(postgres_url)


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    upstream = await FakeUpstream().start()
    yield upstream
    await upstream.stop()


def hub_settings(base_url: str, data_dir: Path, database_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "session_manager_base_url": base_url, "data_dir": data_dir, "database_url": database_url,
        "admin_username": ADMIN_USER, "admin_password": ADMIN_PASSWORD, "sm_connect_timeout": 0.5,
        "sm_read_timeout": 0.5, "sm_health_interval": 0, "sm_api": "instances", "sm_api_key": "sm-secret",
        "secret_key": None,
    }
    values.update(overrides)
    return Settings(**values)


class HubClient:
    """The hub app in-process behind httpx, plus helpers to set up tenants."""

    def __init__(self, http: httpx.AsyncClient, app: Any) -> None:
        self.http = http
        self.app = app
        self.admin_token = ""

    @property
    def hub(self) -> Any:
        return self.app.state.hub

    async def login(self, username: str, password: str) -> str:
        r = await self.http.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    async def admin_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.http.post(path, json=body, headers=self.auth())
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    async def cliente(self, cid: int, **extra: Any) -> dict[str, Any]:
        return await self.admin_post("/api/admin/clientes", {"id": cid, "name": f"Cliente {cid}", **extra})

    async def user_token(self, username: str, cliente_id: int) -> str:
        await self.admin_post("/api/admin/users", {"username": username, "password": "user-password-1",
                                                   "role": "user", "cliente_id": cliente_id})
        return await self.login(username, "user-password-1")

    async def api_key(self, role: str = "admin", cliente_id: int | None = None) -> dict[str, Any]:
        return await self.admin_post("/api/admin/api-keys", {"name": "k", "role": role, "cliente_id": cliente_id})


async def start_hub_client(settings: Settings, **app_options: Any) -> tuple[HubClient, Any]:
    app = create_app(settings, **app_options)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")
    client = HubClient(http, app)
    client.admin_token = await client.login(ADMIN_USER, ADMIN_PASSWORD)
    return client, lifespan


@pytest.fixture
async def hub(fake: FakeUpstream, tmp_path: Path, database_url: str | None) -> AsyncIterator[HubClient]:
    client, lifespan = await start_hub_client(hub_settings(fake.url, tmp_path / "hub", database_url))
    try:
        yield client
    finally:
        await client.http.aclose()
        await lifespan.__aexit__(None, None, None)
