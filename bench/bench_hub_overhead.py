"""What the hub adds to a send: p50 latency at concurrency 1 and throughput at 16, vs direct calls.

One command: `uv run python bench/bench_hub_overhead.py`. Starts the real session-manager (sandbox engine)
and the real hub as processes, pairs cliente 1, then alternates direct and via-hub runs in one process with
Python http.client (one persistent connection per thread), as in PERF_NOTES.md. Auth (a user API key),
instance resolution and the interaction log are all on. Goals (issue 10): added p50 <= 0.5 ms, ratio >= 0.80.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.processes import Service, start_hub, start_session_manager  # noqa: E402

from bench import loadgen  # noqa: E402

SM_KEY = "bench-sm-key"
ADMIN = ("bench", "bench-password-1")
TO = "5491123456789"


class Target:
    def __init__(self, name: str, port: int, path: str, body: dict[str, Any], token: str) -> None:
        self.name, self.port, self.path = name, port, path
        self.body = json.dumps(body).encode()
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def request(self) -> loadgen.Request:
        return ("POST", self.path, self.body, self.headers)


def call_json(port: int, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, json.dumps(body).encode() if body is not None else None, headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
    return json.loads(data) if data else None


def cpu_seconds(pid: int) -> float:
    """user+system CPU of a process: less sensitive than wall time to a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential_p50(target: Target, n: int) -> float:
    return loadgen.latency(target.port, lambda _i: target.request(), n, warmup=0).p50_ms


def throughput(target: Target, threads: int, per_thread: int) -> float:
    return loadgen.throughput(target.port, lambda _t, _i: target.request(), threads, per_thread)


def upstream_p50(hub: Service, token: str, n: int) -> float:
    """Median duration of the hub's last n session-manager calls, from its own interaction log."""
    items = call_json(hub.port, "GET", f"/api/admin/interactions?limit={n}", token=token)["items"]
    return statistics.median(i["duration_ms"] for i in items if i["operation"] == "send")


def setup(sm: Service, hub: Service) -> tuple[Target, Target]:
    admin = call_json(hub.port, "POST", "/api/auth/login", {"username": ADMIN[0], "password": ADMIN[1]})
    token = admin["access_token"]
    call_json(hub.port, "POST", "/api/admin/clientes", {"id": 1, "name": "Bench"}, token)
    key = call_json(hub.port, "POST", "/api/admin/api-keys", {"name": "bench", "role": "user", "cliente_id": 1},
                    token)["key"]
    call_json(hub.port, "POST", "/api/whatsapp/1/connect", token=key)
    deadline = time.monotonic() + 20
    while call_json(hub.port, "GET", "/api/whatsapp/1/status", token=key)["status"] != "READY":
        if time.monotonic() > deadline:
            raise RuntimeError("cliente 1 never became READY")
        with contextlib.suppress(RuntimeError):  # not yet in QR_REQUIRED
            call_json(sm.port, "POST", "/api/session-manager/sandbox/sender_1/scan", token=SM_KEY)
        time.sleep(0.1)
    direct = Target("direct", sm.port, "/api/session-manager/sessions/sender_1/send",
                    {"cliente_id": 1, "to": TO, "message": "bench"}, SM_KEY)
    via = Target("via-hub", hub.port, "/api/whatsapp/1/send", {"to": TO, "message": "bench"}, key)
    return direct, via


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=500, help="sequential calls per p50 sample")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--per-thread", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="alternated direct/via-hub rounds")
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        root = Path(tmp)
        sm = start_session_manager(root / "sm", SESSION_MANAGER_API_KEY=SM_KEY)
        hub = start_hub(root / "hub", sm.base_url, SESSION_MANAGER_API_KEY=SM_KEY,
                        CENTRAL_HUB_ADMIN_USERNAME=ADMIN[0], CENTRAL_HUB_ADMIN_PASSWORD=ADMIN[1])
        try:
            direct, via = setup(sm, hub)
            for t in (direct, via):  # warm-up: connections, caches, JIT-less but allocator-warm
                sequential_p50(t, 200)
            p50: dict[str, list[float]] = {"direct": [], "via-hub": []}
            tput: dict[str, list[float]] = {"direct": [], "via-hub": []}
            cpu = {"hub": 0.0, "sm-direct": 0.0, "sm-via": 0.0}
            hop: list[float] = []
            admin = call_json(hub.port, "POST", "/api/auth/login", {"username": ADMIN[0], "password": ADMIN[1]})
            for _ in range(args.rounds):
                for t in (direct, via):
                    h0, s0 = cpu_seconds(hub.proc.pid), cpu_seconds(sm.proc.pid)
                    p50[t.name].append(sequential_p50(t, args.seq))
                    h1, s1 = cpu_seconds(hub.proc.pid), cpu_seconds(sm.proc.pid)
                    if t is via:
                        cpu["hub"] += h1 - h0
                        cpu["sm-via"] += s1 - s0
                        hop.append(upstream_p50(hub, admin["access_token"], args.seq))
                    else:
                        cpu["sm-direct"] += s1 - s0
                for t in (direct, via):
                    tput[t.name].append(throughput(t, args.threads, args.per_thread))
            d50, v50 = statistics.median(p50["direct"]), statistics.median(p50["via-hub"])
            dt, vt = statistics.median(tput["direct"]), statistics.median(tput["via-hub"])
            ratios = [v / d for v, d in zip(tput["via-hub"], tput["direct"], strict=True)]
            print(f"p50 direct          {d50:.3f} ms")
            print(f"p50 via hub         {v50:.3f} ms")
            print(f"p50 added by hub    {v50 - d50:.3f} ms   (goal <= 0.5 ms)")
            calls = args.rounds * args.seq / 1000
            print(f"cpu per send        hub {cpu['hub'] / calls:.3f} ms, session-manager {cpu['sm-via'] / calls:.3f} ms"
                  f" via hub / {cpu['sm-direct'] / calls:.3f} ms direct")
            print(f"upstream call p50   {statistics.median(hop):.3f} ms, timed inside the hub (its interaction log):"
                  f" the hub's own work is ~{v50 - statistics.median(hop):.3f} ms")
            print(f"throughput direct   {dt:.0f} req/s  ({args.threads} threads)")
            print(f"throughput via hub  {vt:.0f} req/s")
            print(f"throughput ratio    {vt / dt:.2f}   per round {', '.join(f'{r:.2f}' for r in ratios)}"
                  "   (goal >= 0.80)")
        finally:
            hub.stop()
            sm.stop()


if __name__ == "__main__":
    main()
