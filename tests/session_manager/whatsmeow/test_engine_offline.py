"""The real engine (the Go worker on whatsmeow), offline: dial failures, backoff, and whatsmeow's own events.

Events are real whatsmeow event structs, constructed in the worker by its test-only `test_drive` operation and
run through the same handler whatsmeow calls in production.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest

from leadmaster.contract.status import MessageStatus, Reason, SessionStatus
from leadmaster.session_manager.engines.base import Account, EngineNotReady
from leadmaster.session_manager.engines.whatsmeow import WhatsmeowEngine
from leadmaster.session_manager.engines.whatsmeow.process import WorkerError
from tests.support.whatsmeow import TestableEngine

from .conftest import Recorder, make_engine

pytestmark = pytest.mark.asyncio(loop_scope="module")

S = SessionStatus
PHONE_JID = "5491123456789:12@s.whatsapp.net"  # a companion device's JID, as PairSuccess carries it


async def seed(engine: TestableEngine, *instances: str) -> None:
    """Store paired devices (generated keys) for these instances, as a former pairing would have."""
    await engine.call_worker("test_seed", {"instances": list(instances), "first_user": 5491100000001})


async def test_dial_through_refusing_proxy_reports_connect_failed_and_backs_off(shared):
    engine, rec = shared
    await engine.connect("dial")
    await rec.wait_status("dial", S.ERROR, Reason.CONNECT_FAILED)
    await rec.wait(lambda: len(engine.retries.get("dial", ())) >= 5, within=15)
    attempts = list(engine.retries["dial"])[:5]
    assert [a for _, a, _ in attempts] == [1, 2, 3, 4, 5]
    # base 0.1 s doubling up to the 0.4 s cap, each spread by at most ±20 % and never above the cap.
    # The worker reports the delay truncated to whole milliseconds, so a true delay just above the lower bound
    # (0.4 * 0.8 is 0.32000000000000006 in floating point) may report up to 1 ms below it.
    for (_, attempt, wait), nominal in zip(attempts, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
        assert nominal * 0.8 - 0.001 <= wait <= min(0.4, nominal * 1.2), (attempt, wait)
    # The next dial really waited that long (the refused dial itself takes milliseconds).
    for (t0, _, wait), (t1, _, _) in itertools.pairwise(attempts):
        assert t1 - t0 >= wait * 0.9
    assert rec.statuses("dial")[-1] == (S.ERROR, Reason.CONNECT_FAILED)

    await engine.disconnect("dial")
    seen = len(rec.of("dial"))
    await asyncio.sleep(0.8)  # two more backoff periods: nothing may be reported after disconnect
    assert len(rec.of("dial")) == seen
    info = await engine.call_worker("ping")
    assert info["dials"] >= 5 and info["max_dials_in_flight"] <= info["max_dials"]


async def test_qr_rotation_then_timeout(shared):
    engine, rec = shared
    await engine.test_attach("qr")
    before = datetime.now(UTC)
    await engine.test_drive("qr", [{"event": "QR", "codes": ["2@first,noise,identity,adv", "2@second,n,i,a"]}])
    await rec.wait_status("qr", S.QR_REQUIRED)
    await rec.wait(lambda: rec.of("qr", "qr"))
    payload, expires = rec.of("qr", "qr")[0]
    assert payload == "2@first,noise,identity,adv"
    assert 55 <= (expires - before).total_seconds() <= 65  # the first code lives 60 s

    await engine.test_drive("qr", [{"qr_tick": True}])  # the first code's time is up
    await rec.wait(lambda: len(rec.of("qr", "qr")) >= 2)
    payload, expires = rec.of("qr", "qr")[1]
    assert payload.startswith("2@second") and 15 <= (expires - datetime.now(UTC)).total_seconds() <= 21

    await engine.test_drive("qr", [{"qr_tick": True}])  # the last code expired unscanned
    await rec.wait_status("qr", S.ERROR, Reason.QR_TIMEOUT)
    await rec.wait(lambda: rec.of("qr", "qr")[-1] == (None, None))
    assert rec.statuses("qr") == [(S.QR_REQUIRED, None), (S.ERROR, Reason.QR_TIMEOUT)]


async def test_scan_pairs_then_ready_then_network_drops_and_recovers(shared):
    engine, rec = shared
    await engine.test_attach("pair")
    await engine.test_drive("pair", [
        {"event": "QR", "codes": ["2@code,noise,identity,adv"]},
        {"sleep": 0.05},
        {"event": "PairSuccess", "jid": PHONE_JID},
    ])
    await rec.wait_status("pair", S.AUTHENTICATED)
    account = Account("5491123456789@s.whatsapp.net", "5491123456789", None)
    assert rec.of("pair", "paired")[0] == account
    await rec.wait(lambda: rec.of("pair", "qr")[-1] == (None, None))  # the QR is gone once scanned

    await engine.test_drive("pair", [{"event": "Connected"}])
    await rec.wait_status("pair", S.READY)
    assert await engine.account("pair") == account

    await engine.test_drive("pair", [{"event": "Disconnected"}])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.DISCONNECTED, Reason.CONNECTION_LOST))
    await engine.test_drive("pair", [{"event": "Connected"}])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.READY, None))
    await engine.test_drive("pair", [{"event": "KeepAliveTimeout", "error_count": 3}])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.DISCONNECTED, Reason.CONNECTION_LOST))
    await engine.test_drive("pair", [{"event": "KeepAliveRestored"}])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.READY, None))
    assert [s for s, _ in rec.statuses("pair")] == [
        S.QR_REQUIRED, S.AUTHENTICATED, S.READY, S.DISCONNECTED, S.READY, S.DISCONNECTED, S.READY]
    assert engine.credentials.stored("pair") == PHONE_JID  # any node sharing the store finds the device


async def test_stored_device_reports_its_account_when_connected(shared):
    engine, rec = shared
    await seed(engine, "stored")
    await engine.test_attach("stored")
    await engine.test_drive("stored", [{"event": "Connected"}])
    await rec.wait_status("stored", S.READY)
    assert rec.of("stored", "paired")[-1] == Account(
        "5491100000001@s.whatsapp.net", "5491100000001", "Seeded stored")


@pytest.mark.parametrize(("instance_id", "event", "reason"), [
    ("banned", {"event": "TemporaryBan", "code": 101, "expire_s": 3600}, Reason.TEMPORARY_BAN),
    ("replaced", {"event": "StreamReplaced"}, Reason.STREAM_REPLACED),
    ("refused", {"event": "ConnectFailure", "reason": 503, "message": "service unavailable"},
     Reason.CONNECT_FAILED),
])
async def test_library_errors_end_in_error_with_their_reason(shared, instance_id, event, reason):
    engine, rec = shared
    await engine.test_attach(instance_id)
    await engine.test_drive(instance_id, [{"event": "Connected"}, event])
    await rec.wait_status(instance_id, S.ERROR, reason)
    assert rec.statuses(instance_id)[-1] == (S.ERROR, reason)


async def test_logged_out_from_the_phone_unpairs_and_deletes_credentials(shared):
    engine, rec = shared
    await seed(engine, "unlinked")
    assert engine.credentials.stored("unlinked")
    await engine.test_attach("unlinked")
    await engine.test_drive("unlinked", [{"event": "Connected"}, {"event": "LoggedOut", "reason": 401}])
    await rec.wait_status("unlinked", S.ERROR, Reason.LOGGED_OUT)
    await rec.wait(lambda: rec.of("unlinked", "unpaired"))
    await rec.wait(lambda: engine.credentials.stored("unlinked") is None, within=5)
    assert (await engine.call_worker("test_stored", {"instance": "unlinked"}))["device"] is False


async def test_receipts_of_our_messages_reach_the_sink_and_nothing_else(shared):
    engine, rec = shared
    await engine.test_attach("rcpt")
    await engine.call_worker("test_record_sent", {"instance": "rcpt", "message_id": "3EB0AAAA"})
    chat = "5491100000000@s.whatsapp.net"
    await engine.test_drive("rcpt", [
        {"event": "Receipt", "ids": ["3EB0AAAA", "SOMEONE_ELSES"], "type": "", "chat": chat, "timestamp": 1.7e9},
        {"event": "Receipt", "ids": ["INCOMING"], "type": "read-self", "chat": chat},
        {"event": "Receipt", "ids": ["3EB0AAAA"], "type": "read", "chat": chat, "timestamp": 1.7e9 + 5},
    ])
    await rec.wait(lambda: len(rec.of("rcpt", "message_status")) >= 2)
    assert rec.of("rcpt", "message_status") == [
        ("3EB0AAAA", MessageStatus.DELIVERED, datetime.fromtimestamp(1.7e9, UTC)),
        ("3EB0AAAA", MessageStatus.READ, datetime.fromtimestamp(1.7e9 + 5, UTC)),
    ]


async def test_send_pair_code_and_check_need_a_live_session(shared):
    engine, rec = shared
    with pytest.raises(EngineNotReady):
        await engine.send_text("nobody", "5491123456789@s.whatsapp.net", "hola", message_id="3EB0X")
    with pytest.raises(EngineNotReady):
        await engine.pair_code("nobody", "5491123456789")
    with pytest.raises(EngineNotReady):
        await engine.check_numbers("nobody", ["5491123456789"])
    await engine.test_attach("undialed")
    await engine.test_drive("undialed", [{"event": "QR", "codes": ["2@x,y,z,w"]}])
    await rec.wait_status("undialed", S.QR_REQUIRED)
    with pytest.raises(EngineNotReady):  # a QR from a client that never dialed cannot pair
        await engine.pair_code("undialed", "5491123456789")
    assert await engine.account("undialed") is None
    assert WhatsmeowEngine.chooses_message_id is False  # docs/whatsmeow.md "Exactly-once"


async def test_logout_without_whatsapp_deletes_stored_credentials(shared):
    engine, rec = shared
    await seed(engine, "bye")
    await engine.connect("bye")
    await rec.wait_status("bye", S.ERROR, Reason.CONNECT_FAILED)
    assert engine.credentials.stored("bye")
    await engine.logout("bye")
    assert engine.credentials.stored("bye") is None
    seen = len(rec.of("bye"))
    await asyncio.sleep(0.5)
    assert len(rec.of("bye")) == seen


async def test_worker_logs_are_folded_into_ours(shared, caplog):
    engine, rec = shared
    caplog.set_level("INFO", logger="leadmaster.session_manager.engines.whatsmeow.worker")
    await engine.connect("logs")
    await rec.wait_status("logs", S.ERROR, Reason.CONNECT_FAILED)
    await rec.wait(lambda: any(r.getMessage() == "dial failed; retrying" for r in caplog.records), within=5)
    record = next(r for r in caplog.records if r.getMessage() == "dial failed; retrying")
    assert record.fields["worker_pid"] == engine.worker_pid and record.fields["instance_id"] == "logs"
    await engine.disconnect("logs")


async def test_test_hooks_are_refused_unless_enabled(tmp_path, wm_store_url):
    engine = make_engine(tmp_path, wm_store_url, test_hooks=False)
    await engine.start(Recorder())
    try:
        await engine.wait_ready()
        with pytest.raises(WorkerError, match="unknown operation"):
            await engine.test_attach("x")
    finally:
        await engine.stop()
