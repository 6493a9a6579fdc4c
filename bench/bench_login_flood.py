"""A flood of bad sign-ins must not starve the hub's other routes (issue 11 row 3).

Real hub and session-manager processes. 16 threads post wrong passwords for ever-new usernames (so the login
limit never answers for them and every attempt costs a full argon2 verification) while one client times
`GET /api/admin/clientes`. Prints one JSON line: p50/p95 of that route idle and during the flood, and how
many sign-ins were verified or turned away meanwhile. Goal: p50 during the flood <= 100 ms on 2 cores.
Run: uv run python bench/bench_login_flood.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import start_hub, start_session_manager

THREADS = 16
SAMPLES = 200
GOAL_MS = 100.0
ADMIN = ("chief", "chief-password-0123")


def timed(client: httpx.Client, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get("/api/admin/clientes")
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
        time.sleep(0.01)
    return out


def pct(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1], 2)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sm = start_session_manager(Path(tmp) / "sm", SESSION_MANAGER_LOG_LEVEL="WARNING")
        hub = start_hub(Path(tmp) / "hub", sm.base_url, CENTRAL_HUB_ADMIN_USERNAME=ADMIN[0],
                        CENTRAL_HUB_ADMIN_PASSWORD=ADMIN[1], CENTRAL_HUB_LOG_LEVEL="WARNING",
                        SESSION_MANAGER_HEALTH_INTERVAL="0")
        try:
            token = httpx.post(hub.base_url + "/api/auth/login", json=dict(zip(("username", "password"), ADMIN,
                                                                                  strict=True))).json()["access_token"]
            client = httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            idle = timed(client, SAMPLES)
            stop = threading.Event()
            codes: dict[int, int] = {}
            lock = threading.Lock()

            def flood() -> None:
                with httpx.Client(base_url=hub.base_url, timeout=60) as c:
                    while not stop.is_set():
                        r = c.post("/api/auth/login", json={"username": uuid.uuid4().hex, "password": "wrong"})
                        with lock:
                            codes[r.status_code] = codes.get(r.status_code, 0) + 1

            threads = [threading.Thread(target=flood, daemon=True) for _ in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(2)  # let the flood fill the queue
            flooded = timed(client, SAMPLES)
            stop.set()
            for t in threads:
                t.join(60)
        finally:
            hub.stop()
            sm.stop()
    p50 = pct(flooded, 50)
    print(json.dumps({
        "idle_p50_ms": pct(idle, 50), "idle_p95_ms": pct(idle, 95), "flood_p50_ms": p50,
        "flood_p95_ms": pct(flooded, 95), "login_answers": codes, "threads": THREADS,
        "goal_ms": GOAL_MS, "ok": p50 <= GOAL_MS,
    }))


if __name__ == "__main__":
    main()
