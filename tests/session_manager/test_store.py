"""The store's send-path writes: a pending mark that reports a used key, the outbox's one-per-ID, lazy finishes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.store import Store
from tests.session_manager.conftest import _truncate

ENTRY = {"cliente_id": 1, "to": "5491123456789", "jid": "5491123456789@s.whatsapp.net", "message": "hi",
         "timestamp": "2026-01-02T03:04:05.678Z"}


@pytest.fixture(autouse=True)
def _empty_afterwards(store_url: str | None) -> Iterator[None]:
    yield
    if store_url:  # PostgreSQL pass: one database for the whole run
        _truncate(store_url)


def open_store(settings_factory: Callable[..., Settings]) -> Store:
    settings = settings_factory()
    return Store.open(settings.store_url, settings.data_dir)


async def test_pending_mark_tells_whether_the_key_was_used(settings_factory: Callable[..., Settings]) -> None:
    store = open_store(settings_factory)
    try:
        created = time.time()
        assert await store.begin_idempotency("i", "k", "hash", created) is True
        assert await store.begin_idempotency("i", "k", "other", time.time()) is False
        assert await store.begin_idempotency("j", "k", "hash", created) is True  # keys are per instance
        record = await store.get_idempotency("i", "k")
        assert record is not None and record.pending and record.body_hash == "hash"
        assert record.created_at == created  # the seed of the derived message ID survives the round trip
        assert await store.begin_idempotency("i", "k", "new", time.time(), replace=True) is True
        replaced = await store.get_idempotency("i", "k")
        assert replaced is not None and replaced.body_hash == "new"
    finally:
        store.close()


async def test_outbox_keeps_one_message_per_id(settings_factory: Callable[..., Settings]) -> None:
    store = open_store(settings_factory)
    try:
        assert await store.add_outbox("i", {**ENTRY, "message_id": "3EB0A"}) is None
        again = await store.add_outbox("i", {**ENTRY, "message_id": "3EB0A", "timestamp": "later"})
        assert again is not None and again["timestamp"] == ENTRY["timestamp"]
        assert await store.add_outbox("j", {**ENTRY, "message_id": "3EB0A"}) is None  # per instance
        assert [m["message_id"] for m in await store.outbox("i")] == ["3EB0A"]
    finally:
        store.close()


async def test_lazy_finish_is_written_without_a_commit_of_its_own_and_flushed_on_close(
    settings_factory: Callable[..., Settings],
) -> None:
    store = open_store(settings_factory)
    await store.begin_idempotency("i", "a", "h", time.time())
    await store.begin_idempotency("i", "b", "h", time.time())
    first = store.finish_idempotency("i", "a", 200, {"n": 1}, lazy=True)
    await store.add_outbox("i", {**ENTRY, "message_id": "3EB0B"})  # relaxed, like the lazy finish
    assert await first is True
    record = await store.get_idempotency("i", "a")
    assert record is not None and not record.pending and record.response == {"n": 1}
    store.finish_idempotency("i", "b", 200, {"n": 2}, lazy=True)
    store.close()  # shutdown commits what is still queued
    reopened = open_store(settings_factory)
    try:
        record = await reopened.get_idempotency("i", "b")
        assert record is not None and not record.pending and record.response == {"n": 2}
    finally:
        reopened.close()


async def test_sandbox_device_is_saved_replaced_and_deleted(settings_factory: Callable[..., Settings]) -> None:
    store = open_store(settings_factory)
    try:
        assert await store.sandbox_device("i") is None
        await store.save_sandbox_device("i", "1@s.whatsapp.net", "1", None)
        await store.save_sandbox_device("i", "2@s.whatsapp.net", "2", "Two")  # a new link replaces the old
        assert await store.sandbox_device("i") == ("2@s.whatsapp.net", "2", "Two")
        await store.delete_sandbox_device("i")
        assert await store.sandbox_device("i") is None
        await store.save_sandbox_device("j", "3@s.whatsapp.net", "3", None)
        await store.ensure_instance("j")
        await store.delete_instance("j")
        assert await store.sandbox_device("j") is None
    finally:
        store.close()


async def test_store_from_before_sandbox_devices_keeps_its_paired_sandbox_sessions(
    settings_factory: Callable[..., Settings],
) -> None:
    store = open_store(settings_factory)
    await store.ensure_instance("never")
    await store.set_paired("old", "5491100000001@s.whatsapp.net", "5491100000001", "Old")
    with store.engine.begin() as conn:  # the store as the previous version left it
        conn.exec_driver_sql("DROP TABLE sm_sandbox_devices")
    store.close()
    reopened = open_store(settings_factory)
    try:
        assert await reopened.sandbox_device("old") == ("5491100000001@s.whatsapp.net", "5491100000001", "Old")
        assert await reopened.sandbox_device("never") is None
    finally:
        reopened.close()
