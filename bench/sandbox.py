"""What the sandbox send benches share: the message they send, pairing instances, and their command line."""

from __future__ import annotations

import argparse
import time

import httpx

MSG = {"cliente_id": 1, "to": "5491123456789", "message": "bench"}
THREADS = 16  # clients of a throughput run, client t sending through instance b{t}
INSTANCES = [f"b{i}" for i in range(THREADS)]


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


def send_args(rounds: int = 2) -> argparse.Namespace:
    """--calls (sequential latency samples), --per-thread (calls of each throughput client), --rounds."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--per-thread", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=rounds)
    return ap.parse_args()
