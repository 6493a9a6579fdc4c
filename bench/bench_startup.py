"""Start-up time of the session-manager with the real whatsmeow engine and 50 stored sessions.

First run: 50 sessions are dialed once and recorded as paired, so the measured start resumes all of them
(bench_capacity.py does the same with 1,000 sessions that have stored devices). Measured: process start to the
first `GET /health` 200, plus (for information) until every stored session has been dialed by the worker.
Offline: dials go to a refusing proxy.
Run: uv run python bench/bench_startup.py
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import start_session_manager

from bench.bench_memory import call, wait_all
from leadmaster.session_manager.store import Store

SESSIONS = 50
TRIALS = 3  # median of three starts: a loaded CI box adds seconds of noise to a single one
GOAL_S = 2.0
ENV = {
    "SESSION_MANAGER_ENGINE": "whatsmeow",
    "SESSION_MANAGER_WHATSMEOW_PROXY": "http://127.0.0.1:1",
    "SESSION_MANAGER_WHATSMEOW_BACKOFF_BASE_SECONDS": "3600",
    "SESSION_MANAGER_LOG_LEVEL": "WARNING",
}


async def mark_paired(store: Store, ids: list[str]) -> None:
    await asyncio.gather(*(
        store.set_paired(instance_id, f"54911{n:08d}@s.whatsapp.net", f"54911{n:08d}", None)
        for n, instance_id in enumerate(ids)
    ))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        ids = [f"stored_{n}" for n in range(SESSIONS)]
        svc = start_session_manager(data_dir, **ENV)
        try:
            for instance_id in ids:
                call("POST", f"{svc.base_url}/api/session-manager/sessions/{instance_id}/connect")
            wait_all(svc.base_url, ids, "CONNECT_FAILED")
        finally:
            svc.stop()
        store = Store.open(None, data_dir)
        asyncio.run(mark_paired(store, ids))
        store.close()

        healthy_runs, dialed_runs = [], []
        for _ in range(TRIALS):
            started = time.monotonic()
            svc = start_session_manager(data_dir, port=svc.port, **ENV)
            healthy_runs.append(time.monotonic() - started)
            try:
                wait_all(svc.base_url, ids, "CONNECT_FAILED")
                dialed_runs.append(time.monotonic() - started)
            finally:
                svc.stop()
    healthy, all_dialed = statistics.median(healthy_runs), statistics.median(dialed_runs)
    result = {"bench": "startup", "stored_sessions": SESSIONS, "trials": TRIALS,
              "seconds_to_health_200": round(healthy, 3), "min_seconds_to_health_200": round(min(healthy_runs), 3),
              "seconds_to_all_dialed": round(all_dialed, 3), "goal_s": GOAL_S, "ok": healthy <= GOAL_S}
    print(json.dumps(result))
    print(f"session-manager (whatsmeow, {SESSIONS} stored sessions): /health 200 after {healthy:.2f} s "
          f"(median of {TRIALS}, min {min(healthy_runs):.2f} s; goal <= {GOAL_S} s); "
          f"all sessions dialed after {all_dialed:.2f} s")


if __name__ == "__main__":
    main()
