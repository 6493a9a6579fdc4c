"""The cluster's fence on the worker's connections (`Engine.lease`, docs/deploy.md "A stalled node"): past the
deadline the worker dials nothing, a later lease resumes it, and a restarted worker gets the deadline first."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from leadmaster.contract.status import Reason, SessionStatus
from tests.support.whatsmeow import TestableEngine

from .conftest import Recorder, make_engine

S = SessionStatus
PAUSED = (S.DISCONNECTED, "LEASE_EXPIRED")


async def _dials(engine: TestableEngine) -> int:
    return int((await engine.call_worker("ping"))["dials"])


@pytest.mark.asyncio
async def test_past_the_lease_the_worker_dials_nothing_even_after_a_restart(tmp_path, wm_store_url):
    engine = make_engine(tmp_path, wm_store_url, backoff_base=0.05, backoff_cap=0.1, restart_base=0.2)
    rec = Recorder()
    await engine.start(rec)
    try:
        pid = await engine.wait_ready()
        await engine.lease(0.6)
        await engine.connect("leased")
        await rec.wait_status("leased", S.ERROR, Reason.CONNECT_FAILED)
        await rec.wait(lambda: rec.statuses("leased")[-1] == PAUSED, within=5)
        paused = await _dials(engine)
        assert paused >= 2  # it did dial while the lease was live
        await asyncio.sleep(0.5)  # five backoffs' worth
        assert await _dials(engine) == paused

        # A new worker gets the (past) deadline before the sessions it resumes: it never dials them.
        os.kill(pid, signal.SIGKILL)
        await rec.wait_status("leased", S.ERROR, Reason.ENGINE_CRASHED)
        await rec.wait(lambda: engine.worker_pid not in (None, pid), within=10)
        crashed = rec.statuses("leased").index((S.ERROR, Reason.ENGINE_CRASHED))
        await rec.wait(lambda: rec.statuses("leased")[crashed + 1:][-1:] == [PAUSED], within=5)
        await asyncio.sleep(0.3)
        assert await _dials(engine) == 0

        # Renewed: dialling again, and the status back to what the dial says.
        await engine.lease(30)
        await rec.wait(lambda: rec.statuses("leased")[-1] == (S.ERROR, Reason.CONNECT_FAILED), within=5)
        assert await _dials(engine) >= 1
    finally:
        await engine.stop()
