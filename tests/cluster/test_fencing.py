"""The two fences of docs/deploy.md, each alone and without timing luck: a node whose lease was taken sends
nothing, whether its own clock still trusts the lease (the database refuses the write) or not (it must renew
first, fails, and stops the engine session). In-process app on a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from leadmaster.session_manager.app import create_app
from leadmaster.session_manager.config import Settings
from tests.session_manager.conftest import pair

MSG = {"cliente_id": 5, "to": "5491123456789", "message": "fenced"}
SEND = "/api/session-manager/sessions/f1/send"


@pytest.fixture
async def node(cluster_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[
        tuple[FastAPI, httpx.AsyncClient]]:
    monkeypatch.setenv("SESSION_MANAGER_LEASE_SECONDS", "3")
    monkeypatch.setenv("SESSION_MANAGER_NODE_ID", "fenced-node")
    settings = Settings(engine="sandbox", data_dir=tmp_path, store_url=cluster_db, connect_on_start=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sm.test") as client:
        await pair(client, "f1")
        assert (await client.post(SEND, json=MSG)).status_code == 200
        yield app, client


def steal(db: str) -> None:
    """Another node takes the lease, as a takeover does: new owner, token + 1, live."""
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE sm_cluster_leases SET owner = 'thief', token = token + 1, "
                     "expires_at = extract(epoch from clock_timestamp()) + 60 WHERE instance_id = 'f1'")


def rows(db: str, table: str) -> int:
    with psycopg.connect(db) as conn:
        found = conn.execute(f"SELECT count(*) FROM {table} WHERE instance_id = 'f1'").fetchone()
    assert found is not None
    return int(found[0])


async def test_the_database_refuses_a_send_under_a_lost_lease(
        node: tuple[FastAPI, httpx.AsyncClient], cluster_db: str) -> None:
    app, client = node
    steal(cluster_db)
    assert app.state.cluster.owns("f1")  # this node's clock still trusts its lease: only the database knows
    r = await client.post(SEND, json={**MSG, "message": "unkeyed"})
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY", r.text
    r = await client.post(SEND, json={**MSG, "message": "keyed"}, headers={"Idempotency-Key": "fence-k1"})
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY", r.text
    assert rows(cluster_db, "sm_sandbox_outbox") == 1  # only the send before the theft
    assert rows(cluster_db, "sm_idempotency") == 0  # the keyed one left no record: the key is free again


async def test_a_node_past_its_own_deadline_renews_fails_and_stops_the_session(
        node: tuple[FastAPI, httpx.AsyncClient], cluster_db: str) -> None:
    app, client = node
    steal(cluster_db)
    app.state.cluster.held["f1"].deadline = 0.0  # as after a SIGSTOP longer than the lease
    r = await client.post(SEND, json={**MSG, "message": "after pause"})
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY", r.text
    assert "f1" not in app.state.cluster.held and "f1" not in app.state.service.sessions
    assert app.state.service.engine.sims["f1"].status.value == "DISCONNECTED"  # the engine session is stopped
    assert rows(cluster_db, "sm_sandbox_outbox") == 1


async def test_renewal_notices_a_lost_lease_without_any_request(
        node: tuple[FastAPI, httpx.AsyncClient], cluster_db: str) -> None:
    app, _client = node
    steal(cluster_db)
    for _ in range(100):  # the heartbeat runs every lease/3 = 1 s
        if "f1" not in app.state.service.sessions:
            break
        await asyncio.sleep(0.05)
    assert "f1" not in app.state.cluster.held and "f1" not in app.state.service.sessions


async def test_cut_off_from_the_database_a_node_stops_sending_and_answers_503(
        node: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, client = node
    cluster = app.state.cluster

    def unreachable(*_args: object) -> None:
        raise OSError("connection to the database refused")

    monkeypatch.setattr(cluster.leases, "beat", unreachable)
    monkeypatch.setattr(cluster.leases, "lookup", unreachable)
    cluster.held["f1"].deadline = 0.0  # its own clock says the lease may have lapsed
    r = await client.post(SEND, json={**MSG, "message": "partitioned"})
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY", r.text
    assert r.headers["retry-after"]
    assert "f1" not in cluster.held and "f1" not in app.state.service.sessions  # the engine session is stopped
    r = await client.get("/api/session-manager/sessions/f1/status")
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY", r.text


async def test_a_hung_renewal_does_not_keep_the_session_past_the_nodes_deadline(
        node: tuple[FastAPI, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch) -> None:
    app, _client = node
    cluster = app.state.cluster
    released = threading.Event()

    def hangs(*_args: object) -> dict[str, int]:
        released.wait(10)  # a database that stopped answering
        raise OSError("timed out")

    monkeypatch.setattr(cluster.leases, "beat", hangs)
    cluster.held["f1"].deadline = time.monotonic() + 0.3
    try:
        for _ in range(60):
            if "f1" not in app.state.service.sessions:
                break
            await asyncio.sleep(0.05)
        assert "f1" not in cluster.held and "f1" not in app.state.service.sessions
    finally:
        released.set()
