"""The real engine through the real library, offline: dial failures, backoff, and neonize's own callbacks.

Events are driven into the worker through neonize's entry points (the QR and login-status callbacks and
`client.event.execute` with serialized protobuf events), from a foreign thread, as the Go side calls them.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest

from leadmaster.contract.status import Reason, SessionStatus
from leadmaster.session_manager.engines.base import Account, EngineNotReady
from leadmaster.session_manager.engines.whatsmeow import WhatsmeowEngine, backoff
from leadmaster.session_manager.engines.whatsmeow.process import WorkerError

from .conftest import Recorder

pytestmark = pytest.mark.asyncio(loop_scope="module")

S = SessionStatus
JID = {"User": "5491123456789", "Server": "s.whatsapp.net", "RawAgent": 0, "Device": 0, "Integrator": 0}


async def test_dial_through_refusing_proxy_reports_connect_failed_and_backs_off(shared):
    engine, rec = shared
    await engine.connect("dial")
    await rec.wait_status("dial", S.ERROR, Reason.CONNECT_FAILED)
    await rec.wait(lambda: len(engine.retries.get("dial", ())) >= 5, within=15)
    attempts = list(engine.retries["dial"])[:5]
    assert [a for _, a, _ in attempts] == [1, 2, 3, 4, 5]
    # base 0.1 s doubling up to the 0.4 s cap, each spread by at most ±20 % and never above the cap.
    # The engine reports the delay rounded to 3 decimals, so the bounds are rounded the same way (rounding is
    # monotonic: a delay inside [lo, hi] reports inside [round(lo), round(hi)]); unrounded, 0.4 * 0.8 is
    # 0.32000000000000006 and a true delay of 0.3200001 reported as 0.32 would fail.
    for (_, attempt, wait), nominal in zip(attempts, [0.1, 0.2, 0.4, 0.4, 0.4], strict=True):
        assert round(nominal * 0.8, 3) <= wait <= round(min(0.4, nominal * 1.2), 3), (attempt, wait)
    # The next dial really waited that long (the refused dial itself takes milliseconds).
    for (t0, _, wait), (t1, _, _) in itertools.pairwise(attempts):
        assert t1 - t0 >= wait * 0.9
    assert rec.statuses("dial")[-1] == (S.ERROR, Reason.CONNECT_FAILED)
    assert (engine.settings.data_dir / "whatsmeow" / "dial.sqlite3").exists()

    await engine.disconnect("dial")
    seen = len(rec.of("dial"))
    await asyncio.sleep(0.8)  # two more backoff periods: nothing may be reported after disconnect
    assert len(rec.of("dial")) == seen
    info = await engine.call_worker("ping")
    assert info["dials"] >= 5


async def test_backoff_schedule_is_exponential_capped_and_jittered():
    assert [backoff.nominal_delay(n, 1.0, 300.0) for n in range(1, 11)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert backoff.nominal_delay(10_000, 1.0, 300.0) == 300.0
    delays = [backoff.delay(3, 1.0, 300.0) for _ in range(200)]
    assert all(3.2 <= d <= 4.8 for d in delays) and len({round(d, 6) for d in delays}) > 50
    assert all(backoff.delay(20, 1.0, 300.0) <= 300.0 for _ in range(100))


async def test_qr_rotation_then_timeout(shared):
    engine, rec = shared
    await engine.test_attach("qr")
    before = datetime.now(UTC)
    await engine.test_drive("qr", [{"qr": "2@first,noise,identity,adv"}])
    await rec.wait_status("qr", S.QR_REQUIRED)
    await rec.wait(lambda: rec.of("qr", "qr"))
    payload, expires = rec.of("qr", "qr")[0]
    assert payload == "2@first,noise,identity,adv"
    assert 55 <= (expires - before).total_seconds() <= 65  # the first code lives 60 s

    await engine.test_drive("qr", [{"qr": "2@second,noise,identity,adv"}])
    await rec.wait(lambda: len(rec.of("qr", "qr")) >= 2)
    payload, expires = rec.of("qr", "qr")[1]
    assert payload.startswith("2@second") and 15 <= (expires - datetime.now(UTC)).total_seconds() <= 21

    await engine.test_drive("qr", [{"login_status": "timeout"}])
    await rec.wait_status("qr", S.ERROR, Reason.QR_TIMEOUT)
    assert rec.of("qr", "qr")[-1] == (None, None)
    assert rec.statuses("qr") == [(S.QR_REQUIRED, None), (S.ERROR, Reason.QR_TIMEOUT)]


async def test_scan_pairs_then_ready_then_network_drops_and_recovers(shared):
    engine, rec = shared
    await engine.test_attach("pair")
    await engine.test_drive("pair", [
        {"qr": "2@code,noise,identity,adv"},
        {"event": "PairStatusEv", "fields": {"Status": "SUCCESS", "ID": JID, "Platform": "android",
                                                "BusinessName": ""}},
    ])
    await rec.wait_status("pair", S.AUTHENTICATED)
    assert rec.of("pair", "paired")[0] == Account("5491123456789@s.whatsapp.net", "5491123456789", None)
    assert rec.of("pair", "qr")[-1] == (None, None)  # the QR is gone once scanned

    await engine.test_drive("pair", [
        {"event": "Device", "fields": {"JID": JID, "PushName": "Acme Ventas", "Platform": "android",
                                      "BussinessName": "", "Initialized": True}},  # neonize sets client.me
        {"event": "ConnectedEv", "fields": {"status": True}},
    ])
    await rec.wait_status("pair", S.READY)
    account = Account("5491123456789@s.whatsapp.net", "5491123456789", "Acme Ventas")
    assert rec.of("pair", "paired")[-1] == account
    assert await engine.account("pair") == account

    await engine.test_drive("pair", [{"event": "DisconnectedEv", "fields": {"status": True}}])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.DISCONNECTED, Reason.CONNECTION_LOST))
    await engine.test_drive("pair", [{"event": "ConnectedEv", "fields": {"status": True}}])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.READY, None))
    keepalive_timeout = {"event": "KeepAliveTimeoutEv", "fields": {"ErrorCount": 3, "LastSuccess": 0}}
    await engine.test_drive("pair", [keepalive_timeout])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.DISCONNECTED, Reason.CONNECTION_LOST))
    await engine.test_drive("pair", [{"event": "KeepAliveRestoredEv"}])
    await rec.wait(lambda: rec.statuses("pair")[-1] == (S.READY, None))
    assert [s for s, _ in rec.statuses("pair")] == [
        S.QR_REQUIRED, S.AUTHENTICATED, S.READY, S.DISCONNECTED, S.READY, S.DISCONNECTED, S.READY]


@pytest.mark.parametrize(("instance_id", "event", "fields", "reason"), [
    ("banned", "TemporaryBanEv", {"Code": "SEND_TO_TOO_MANY_PEOPLE", "Expire": 3600}, Reason.TEMPORARY_BAN),
    ("replaced", "StreamReplacedEv", {}, Reason.STREAM_REPLACED),
    ("refused", "ConnectFailureEv",
     {"Reason": "SERVICE_UNAVAILABLE", "Message": "503", "Raw": {"Tag": "failure"}}, Reason.CONNECT_FAILED),
])
async def test_library_errors_end_in_error_with_their_reason(shared, instance_id, event, fields, reason):
    engine, rec = shared
    await engine.test_attach(instance_id)
    await engine.test_drive(instance_id, [{"event": "ConnectedEv", "fields": {"status": True}},
                                          {"event": event, "fields": fields}])
    await rec.wait_status(instance_id, S.ERROR, reason)
    assert rec.statuses(instance_id)[-1] == (S.ERROR, reason)


async def test_logged_out_from_the_phone_unpairs_and_deletes_credentials(shared):
    engine, rec = shared
    store = engine.settings.data_dir / "whatsmeow" / "unlinked.sqlite3"
    store.write_bytes(b"credentials")
    await engine.test_attach("unlinked")
    await engine.test_drive("unlinked", [
        {"event": "ConnectedEv", "fields": {"status": True}},
        {"event": "LoggedOutEv", "fields": {"OnConnect": False, "Reason": "LOGGED_OUT"}},
    ])
    await rec.wait_status("unlinked", S.ERROR, Reason.LOGGED_OUT)
    await rec.wait(lambda: rec.of("unlinked", "unpaired"))
    await rec.wait(lambda: not store.exists(), within=5)


async def test_send_and_pair_code_need_a_live_session(shared):
    engine, rec = shared
    with pytest.raises(EngineNotReady):
        await engine.send_text("nobody", "5491123456789@s.whatsapp.net", "hola")
    with pytest.raises(EngineNotReady):
        await engine.pair_code("nobody", "5491123456789")
    await engine.test_attach("undialed")
    await engine.test_drive("undialed", [{"qr": "2@x,y,z,w"}])
    await rec.wait_status("undialed", S.QR_REQUIRED)
    with pytest.raises(EngineNotReady):  # a QR from a client that never dialed cannot pair
        await engine.pair_code("undialed", "5491123456789")
    assert await engine.account("undialed") is None


async def test_logout_without_whatsapp_deletes_local_credentials(shared):
    engine, rec = shared
    await engine.connect("bye")
    await rec.wait_status("bye", S.ERROR, Reason.CONNECT_FAILED)
    store = engine.settings.data_dir / "whatsmeow" / "bye.sqlite3"
    assert store.exists()
    await engine.logout("bye")
    assert not store.exists()
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


async def test_test_hooks_are_refused_unless_enabled(tmp_path):
    from .conftest import make_engine

    engine = make_engine(tmp_path, test_hooks=False)
    await engine.start(Recorder())
    try:
        await engine.wait_ready()
        with pytest.raises(WorkerError, match="unknown operation"):
            await engine.test_attach("x")
    finally:
        started = time.monotonic()
        await engine.stop()
        assert time.monotonic() - started < 10


async def test_api_process_never_imports_neonize():
    code = (
        "import sys; from leadmaster.session_manager.engines.whatsmeow import WhatsmeowEngine; "
        "import leadmaster.session_manager.engines.whatsmeow.engine; "
        "assert 'neonize' not in sys.modules, 'neonize imported'"
    )
    await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code], check=True, timeout=60)
    assert WhatsmeowEngine.name == "whatsmeow"
