"""Capacity of one node, real whatsmeow engine (the Go worker), offline through a refusing proxy.

For each store (PostgreSQL, then SQLite): 1,000 sessions are connected through the HTTP API; measured are the
time until every one reports ERROR/CONNECT_FAILED (goal: within 60 s of its connect), that they keep it for
10 s more (none INIT), the process tree's RSS (goal <= 600 MB) and the peak number of PostgreSQL server
connections of the node's database (pg_stat_activity; goal <= 20). Then 1,000 stored paired sessions
(devices with generated keys, seeded through the worker's test-only `test_seed`) and a restart: /health 200
time (goal <= 2 s) and the peak of dials in flight (the worker's "dial stats" log; bound 16).
Run: uv run python bench/bench_capacity.py   (BENCH_CAPACITY_SESSIONS=200 for a quicker look)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from tests.support import db
from tests.support.processes import start_session_manager
from tests.support.whatsmeow_store import plant_paired

from bench.bench_memory import call, rss_mb

SESSIONS = int(os.environ.get("BENCH_CAPACITY_SESSIONS", "1000"))
SETTLE_GOAL_S, RSS_GOAL_MB, PG_GOAL, HEALTH_GOAL_S, MAX_DIALS = 60.0, 600.0, 20, 2.0, 16
ENV = {
    "SESSION_MANAGER_ENGINE": "whatsmeow",
    "SESSION_MANAGER_WHATSMEOW_PROXY": "http://127.0.0.1:1",
    "SESSION_MANAGER_WHATSMEOW_MAX_DIALS": str(MAX_DIALS),
    "SESSION_MANAGER_LOG_LEVEL": "INFO",  # the worker's "dial stats" lines are INFO
}


def pg_connections(url: str | None) -> int:
    if not url:
        return 0
    with psycopg.connect(db.ADMIN_DSN, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                           (url.rsplit("/", 1)[1],)).fetchone()
    return int(row[0]) if row else 0


def sessions(base_url: str) -> dict[str, tuple[str, str | None]]:
    body = call("GET", f"{base_url}/api/session-manager/sessions")
    rows = body if isinstance(body, list) else body.get("sessions", [])
    return {r["instance_id"]: (r["status"], r.get("reason")) for r in rows}


def peak_dials(log: str) -> int:
    peak = 0
    for line in log.splitlines():
        if '"dial stats"' in line:
            peak = max(peak, int(json.loads(line).get("max_dials_in_flight", 0)))
    return peak


def all_failed(base_url: str, url: str | None, ids: list[str], started: float) -> tuple[float | None, int]:
    """Seconds from `started` until all are ERROR/CONNECT_FAILED (None: not in 120 s); peak PostgreSQL connections."""
    peak_pg = 0
    while time.monotonic() - started < 120:
        peak_pg = max(peak_pg, pg_connections(url))
        states = sessions(base_url)
        if all(states.get(i) == ("ERROR", "CONNECT_FAILED") for i in ids):
            return time.monotonic() - started, peak_pg
        time.sleep(0.25)
    return None, peak_pg


def settle(store: str, url: str | None, data_dir: Path, ids: list[str]) -> dict[str, Any]:
    svc = start_session_manager(data_dir, SESSION_MANAGER_STORE_URL=url or "", **ENV)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: call("POST", f"{svc.base_url}/api/session-manager/sessions/{i}/connect"), ids))
        connected = time.monotonic() - started
        settled_s, peak_pg = all_failed(svc.base_url, url, ids, started)
        kept = True
        hold_until = time.monotonic() + 10
        while time.monotonic() < hold_until:  # they keep it while redialling (none back to INIT for good)
            peak_pg = max(peak_pg, pg_connections(url))
            states = sessions(svc.base_url)
            kept = kept and not any(states.get(i, ("INIT",))[0] == "INIT" for i in ids)
            time.sleep(0.5)
        rss = rss_mb(svc.proc.pid)
    finally:
        svc.stop()
    return {"store": store, "sessions": len(ids), "connect_calls_s": round(connected, 2),
            "settle_s": None if settled_s is None else round(settled_s, 2), "kept": kept,
            "rss_mb": round(rss, 1), "pg_connections": peak_pg}


def startup(store: str, url: str | None, data_dir: Path, ids: list[str]) -> dict[str, Any]:
    # The same start with nothing stored: what the box's load alone costs (/health never waits for the engine).
    started = time.monotonic()
    start_session_manager(data_dir, SESSION_MANAGER_STORE_URL=url or "", **ENV).stop()
    empty = time.monotonic() - started
    asyncio.run(plant_paired(data_dir, url, ids))
    started = time.monotonic()
    svc = start_session_manager(data_dir, SESSION_MANAGER_STORE_URL=url or "", **ENV)
    healthy = time.monotonic() - started
    try:
        all_dialed, peak_pg = all_failed(svc.base_url, url, ids, started)
        time.sleep(5.5)  # one more "dial stats" line
    finally:
        svc.stop()
    return {"store": store, "stored_sessions": len(ids), "health_s": round(healthy, 2),
            "health_s_nothing_stored": round(empty, 2),
            "all_dialed_s": None if all_dialed is None else round(all_dialed, 2),
            "max_dials_in_flight": peak_dials(svc.logs()), "pg_connections": peak_pg}


def main() -> None:
    results: dict[str, Any] = {"bench": "capacity", "sessions": SESSIONS, "goals": {
        "settle_s": SETTLE_GOAL_S, "rss_mb": RSS_GOAL_MB, "pg_connections": PG_GOAL, "health_s": HEALTH_GOAL_S,
        "max_dials_in_flight": MAX_DIALS}}
    for store in ("postgres", "sqlite"):
        url = db.create_database("leadmaster_bench_capacity") if store == "postgres" else None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                results[store] = settle(store, url, Path(tmp) / "settle", [f"cap_{n}" for n in range(SESSIONS)])
                results[f"{store}_startup"] = startup(store, url, Path(tmp) / "start",
                                                      [f"stored_{n}" for n in range(SESSIONS)])
        finally:
            if url:
                db.drop_database(url)
    ok = all(
        r["settle_s"] is not None and r["settle_s"] <= SETTLE_GOAL_S and r["kept"] and r["rss_mb"] <= RSS_GOAL_MB
        and r["pg_connections"] <= PG_GOAL for r in (results["postgres"], results["sqlite"])
    ) and all(results[f"{s}_startup"]["health_s"] <= HEALTH_GOAL_S
              and results[f"{s}_startup"]["max_dials_in_flight"] <= MAX_DIALS for s in ("postgres", "sqlite"))
    results["ok"] = ok
    print(json.dumps(results))
    for store in ("postgres", "sqlite"):
        r, s = results[store], results[f"{store}_startup"]
        print(f"{SESSIONS} sessions on {store}: all CONNECT_FAILED after {r['settle_s']} s (kept: {r['kept']}), "
              f"RSS {r['rss_mb']} MB, PostgreSQL connections {r['pg_connections']}; start-up with {SESSIONS} "
              f"stored: /health 200 after {s['health_s']} s (nothing stored: {s['health_s_nothing_stored']} s), "
              f"all dialed after {s['all_dialed_s']} s, "
              f"max dials in flight {s['max_dials_in_flight']}, PostgreSQL connections {s['pg_connections']}")


if __name__ == "__main__":
    main()
