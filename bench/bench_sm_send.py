"""Session-manager send path with the sandbox engine, beside a bare FastAPI route in the same run.

Prints p50/p99 at concurrency 1 and throughput at 16 clients across 16 instances, with the ratio to the
bare route (PERF_NOTES' reference). Goals (issue 2): p50 <= 1 ms, >= 3,000 sends/s.
Usage: uv run python bench/bench_sm_send.py [--calls 2000] [--per-thread 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.processes import free_port, start_session_manager, wait_healthy  # noqa: E402

from bench.loadgen import latency, post_json, throughput  # noqa: E402

THREADS = 16
MSG = {"cliente_id": 1, "to": "5491123456789", "message": "bench"}


def pair_all(base: str, instances: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=10) as c:
        for i in instances:
            c.post(f"/api/session-manager/sessions/{i}/connect")
        for i in instances:
            deadline = time.monotonic() + 10
            while c.get(f"/api/session-manager/sessions/{i}/status").json()["status"] != "QR_REQUIRED":
                if time.monotonic() > deadline:
                    raise TimeoutError(i)
                time.sleep(0.02)
            c.post(f"/api/session-manager/sandbox/{i}/scan")
        for i in instances:
            while c.get(f"/api/session-manager/sessions/{i}/status").json()["status"] != "READY":
                time.sleep(0.02)


def measure(port: int, calls: int, per_thread: int) -> dict[str, float]:
    lat = latency(port, lambda _i: post_json("/api/session-manager/sessions/b0/send", MSG), calls)
    rps = throughput(
        port, lambda t, _i: post_json(f"/api/session-manager/sessions/b{t}/send", MSG), THREADS, per_thread
    )
    return {"p50_ms": lat.p50_ms, "p99_ms": lat.p99_ms, "rps": rps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--per-thread", type=int, default=300)
    args = ap.parse_args()
    instances = [f"b{i}" for i in range(THREADS)]
    with tempfile.TemporaryDirectory() as tmp:
        sm = start_session_manager(
            Path(tmp), SESSION_MANAGER_LOG_LEVEL="WARNING", SESSION_MANAGER_CONNECT_ON_START="false"
        )
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_app.py")], env={"PORT": str(bare_port), "PATH": "/usr/bin:/bin"}
        )
        try:
            wait_healthy(f"http://127.0.0.1:{bare_port}/health", bare)
            pair_all(sm.base_url, instances)
            # Alternate the two targets so that machine noise hits both alike.
            runs: dict[str, list[dict[str, float]]] = {"sm": [], "bare": []}
            for _ in range(2):
                runs["sm"].append(measure(sm.port, args.calls, args.per_thread))
                runs["bare"].append(measure(bare_port, args.calls, args.per_thread))
        finally:
            sm.stop()
            bare.terminate()
            bare.wait(10)
    best = {
        k: {m: (min if m != "rps" else max)(r[m] for r in v) for m in ("p50_ms", "p99_ms", "rps")}
        for k, v in runs.items()
    }
    result = {
        "bench": "sm_send",
        "sm_p50_ms": round(best["sm"]["p50_ms"], 3),
        "sm_p99_ms": round(best["sm"]["p99_ms"], 3),
        "sm_rps_16": round(best["sm"]["rps"]),
        "bare_p50_ms": round(best["bare"]["p50_ms"], 3),
        "bare_rps_16": round(best["bare"]["rps"]),
        "rps_ratio_sm_over_bare": round(best["sm"]["rps"] / best["bare"]["rps"], 2),
    }
    print(json.dumps(result))
    print(
        f"session-manager send: p50 {result['sm_p50_ms']} ms (goal <= 1), p99 {result['sm_p99_ms']} ms, "
        f"{result['sm_rps_16']} sends/s at 16 clients (goal >= 3000); bare route {result['bare_rps_16']}/s, "
        f"ratio {result['rps_ratio_sm_over_bare']}"
    )


if __name__ == "__main__":
    main()
