"""A dead or stuck worker never takes the API down: sessions report ENGINE_CRASHED, then come back."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from leadmaster.contract.status import Reason, SessionStatus
from leadmaster.session_manager.engines.base import EngineNotReady, SendOutcomeUnknown

from .conftest import Recorder, make_engine

S = SessionStatus
TO_READY = [{"event": "Connected"}]


class LoopWatch:
    """Measures the API event loop's worst scheduling delay while the worker misbehaves."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            self.worst = max(self.worst, time.monotonic() - started - 0.01)

    def stop(self) -> float:
        self._task.cancel()
        return self.worst


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); its state tells.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1].startswith("Z")


async def test_sigkill_with_calls_in_flight_reports_engine_crashed_and_resumes(tmp_path, wm_store_url):
    engine = make_engine(tmp_path, wm_store_url, backoff_base=30, restart_base=0.2)
    rec = Recorder()
    await engine.start(rec)
    try:
        pid = await engine.wait_ready()
        await engine.call_worker("test_seed", {"instances": ["ready1"], "first_user": 5491100000009})
        await engine.test_attach("ready1")
        await engine.test_drive("ready1", TO_READY)
        await rec.wait_status("ready1", S.READY)
        await engine.connect("dialer")
        await rec.wait_status("dialer", S.ERROR, Reason.CONNECT_FAILED)

        watch = LoopWatch()
        hang = asyncio.ensure_future(engine.call_worker("test_hang", {"seconds": 30}, within=20))
        send = asyncio.ensure_future(engine.send_text("ready1", "5491100000000@s.whatsapp.net", "hola"))
        await asyncio.sleep(0.3)  # both are now waiting on a worker whose loop is blocked
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)

        with pytest.raises(EngineNotReady):
            await hang
        with pytest.raises(SendOutcomeUnknown):
            await send
        assert time.monotonic() - killed_at < 2.0, "in-flight calls must fail fast, not time out"
        for instance_id in ("ready1", "dialer"):
            await rec.wait_status(instance_id, S.ERROR, Reason.ENGINE_CRASHED)
        with pytest.raises(EngineNotReady):  # while the worker restarts
            await engine.send_text("ready1", "5491100000000@s.whatsapp.net", "hola")

        new_pid = await engine.wait_ready(within=30)
        assert new_pid != pid and gone(pid)
        for instance_id in ("ready1", "dialer"):
            # Dialed again from their stores (offline here, so the dial fails again, reported as such).
            await rec.wait(lambda i=instance_id: rec.statuses(i)[-2:] == [
                (S.INIT, None), (S.ERROR, Reason.CONNECT_FAILED)], within=15)
        assert engine.crashes == 1
        assert watch.stop() < 0.25
    finally:
        await engine.stop()


async def test_go_crash_in_worker_is_contained_and_logged(tmp_path, wm_store_url, caplog):
    caplog.set_level("INFO", logger="leadmaster.session_manager.engines.whatsmeow")
    engine = make_engine(tmp_path, wm_store_url, backoff_base=30, restart_base=0.2)
    rec = Recorder()
    await engine.start(rec)
    try:
        pid = await engine.wait_ready()
        await engine.connect("victim")
        await rec.wait_status("victim", S.ERROR, Reason.CONNECT_FAILED)
        with pytest.raises(EngineNotReady):
            await engine.call_worker("test_go_crash")
        await rec.wait_status("victim", S.ERROR, Reason.ENGINE_CRASHED)
        assert await engine.wait_ready(within=30) != pid
        await rec.wait(lambda: rec.statuses("victim")[-1] == (S.ERROR, Reason.CONNECT_FAILED), within=15)
        crash = [r for r in caplog.records if r.getMessage() == "whatsmeow worker died; restarting it"]
        assert crash and crash[0].fields["worker_pid"] == pid and crash[0].fields["exit_code"] != 0
        # The Go runtime's own crash report went through our JSON logging, not straight to the console.
        assert any(getattr(r, "fields", {}).get("raw") and r.levelname == "ERROR" for r in caplog.records)
    finally:
        await engine.stop()


async def test_hung_worker_is_killed_and_stop_is_bounded(tmp_path, wm_store_url):
    engine = make_engine(tmp_path, wm_store_url, backoff_base=30, restart_base=0.2, ping_interval=0.3,
                         ping_timeout=1.0)
    rec = Recorder()
    await engine.start(rec)
    try:
        pid = await engine.wait_ready()
        await engine.connect("stuck")
        await rec.wait_status("stuck", S.ERROR, Reason.CONNECT_FAILED)
        watch = LoopWatch()
        hang = asyncio.ensure_future(engine.call_worker("test_hang", {"seconds": 120}, within=60))
        await rec.wait_status("stuck", S.ERROR, Reason.ENGINE_CRASHED, within=5)
        with pytest.raises(EngineNotReady):
            await hang
        second = await engine.wait_ready(within=30)
        assert second != pid
        assert watch.stop() < 0.25

        # Stop must finish within 10 s even with the worker stuck.
        stuck = asyncio.ensure_future(engine.call_worker("test_hang", {"seconds": 120}, within=60))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await engine.stop()
        assert time.monotonic() - started < 10
        await asyncio.sleep(0.1)
        assert gone(second)
        with pytest.raises(EngineNotReady):
            await stuck
    finally:
        await engine.stop()
