"""Session-manager send path with the sandbox engine: plain and keyed sends on SQLite and on PostgreSQL.

Prints p50/p99 at concurrency 1 and throughput at 16 clients across 16 instances for each of
plain/keyed (Idempotency-Key, a fresh one per send) x SQLite/PostgreSQL, beside a bare FastAPI route, all
alternated in one run so that machine noise hits every figure alike. Goals (issues 2 and 10): a plain
send p50 <= 1 ms and >= 3,000 sends/s; a keyed send on PostgreSQL keeps >= 0.7 of the plain SQLite send's
throughput and adds <= 0.5 ms at p50. PostgreSQL must listen on 127.0.0.1:5432 (LEADMASTER_TEST_PG_DSN):
the bench makes a throwaway database and drops it.
Usage: uv run python bench/bench_sm_send.py [--calls 2000] [--per-thread 300] [--rounds 2]
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.db import create_database, drop_database  # noqa: E402
from tests.support.processes import free_port, start_session_manager, wait_healthy  # noqa: E402

from bench.loadgen import Request, latency, post_json, throughput  # noqa: E402
from bench.sandbox import INSTANCES, MSG, THREADS, pair_all, send_args  # noqa: E402

_keys = itertools.count()


def send(instance: str, keyed: bool) -> Request:
    # A careful caller sends every message with a key of its own: each keyed send here is a new message.
    headers = {"Idempotency-Key": f"bench-{next(_keys)}"} if keyed else None
    return post_json(f"/api/session-manager/sessions/{instance}/send", MSG, headers)


def measure(port: int, calls: int, per_thread: int, keyed: bool) -> dict[str, float]:
    lat = latency(port, lambda _i: send("b0", keyed), calls)
    rps = throughput(port, lambda t, _i: send(f"b{t}", keyed), THREADS, per_thread)
    return {"p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms, "rps": rps}


def main() -> None:
    args = send_args()
    env = {"SESSION_MANAGER_LOG_LEVEL": "WARNING", "SESSION_MANAGER_CONNECT_ON_START": "false"}
    pg_url = create_database("leadmaster_bench")
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_sm = start_session_manager(Path(tmp) / "sqlite", **env)
        pg_sm = start_session_manager(Path(tmp) / "pg", SESSION_MANAGER_STORE_URL=pg_url, **env)
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py")], env={"PORT": str(bare_port), "PATH": "/usr/bin:/bin"}
        )
        targets: dict[str, Callable[[], dict[str, float]]] = {
            "plain_sqlite": lambda: measure(sqlite_sm.port, args.calls, args.per_thread, False),
            "keyed_sqlite": lambda: measure(sqlite_sm.port, args.calls, args.per_thread, True),
            "plain_pg": lambda: measure(pg_sm.port, args.calls, args.per_thread, False),
            "keyed_pg": lambda: measure(pg_sm.port, args.calls, args.per_thread, True),
            "bare": lambda: measure(bare_port, args.calls, args.per_thread, False),
        }
        try:
            wait_healthy(f"http://127.0.0.1:{bare_port}/health", bare)
            pair_all(sqlite_sm.base_url, INSTANCES)
            pair_all(pg_sm.base_url, INSTANCES)
            # Alternate the targets so that machine noise hits all alike.
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, run in targets.items():
                    runs[name].append(run())
        finally:
            sqlite_sm.stop()
            pg_sm.stop()
            bare.terminate()
            bare.wait(10)
            drop_database(pg_url)
    best = {
        k: {m: (min if m != "rps" else max)(r[m] for r in v) for m in ("p50_ms", "p99_ms", "rps")}
        for k, v in runs.items()
    }
    plain = best["plain_sqlite"]
    result: dict[str, object] = {
        "bench": "sm_send",
        "sm_p50_ms": round(plain["p50_ms"], 3),
        "sm_p99_ms": round(plain["p99_ms"], 3),
        "sm_rps_16": round(plain["rps"]),
        "bare_p50_ms": round(best["bare"]["p50_ms"], 3),
        "bare_rps_16": round(best["bare"]["rps"]),
        "rps_ratio_sm_over_bare": round(plain["rps"] / best["bare"]["rps"], 2),
    }
    for name in ("keyed_sqlite", "plain_pg", "keyed_pg"):
        result[f"{name}_p50_ms"] = round(best[name]["p50_ms"], 3)
        result[f"{name}_p99_ms"] = round(best[name]["p99_ms"], 3)
        result[f"{name}_rps_16"] = round(best[name]["rps"])
        result[f"{name}_added_p50_ms"] = round(best[name]["p50_ms"] - plain["p50_ms"], 3)
        result[f"{name}_rps_ratio"] = round(best[name]["rps"] / plain["rps"], 2)
    print(json.dumps(result))
    print(f"{'send':<14}{'p50 ms':>9}{'p99 ms':>9}{'sends/s':>9}{'vs plain SQLite':>18}")
    for name in ("plain_sqlite", "keyed_sqlite", "plain_pg", "keyed_pg", "bare"):
        b = best[name]
        vs = f"+{b['p50_ms'] - plain['p50_ms']:.3f} ms, x{b['rps'] / plain['rps']:.2f}"
        print(f"{name:<14}{b['p50_ms']:>9.3f}{b['p99_ms']:>9.3f}{b['rps']:>9.0f}{vs:>18}")
    print("goals: plain SQLite p50 <= 1 ms and >= 3000/s; keyed PostgreSQL +<= 0.5 ms at p50 and x>= 0.7")


if __name__ == "__main__":
    main()
