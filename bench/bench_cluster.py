"""A session-manager cluster on PostgreSQL (CONTRACT §4): takeover time after SIGKILL, and the send
throughput of three nodes behind a round-robin "load balancer" against one node, in one run.

Sends go to instances spread over the nodes; a client of a three-node cluster reaches the owner directly
for a third of its sends and through one forwarding hop for the rest, as behind any HTTP load balancer.
On this 2-core machine the three nodes, PostgreSQL and the clients share the same cores, so the ratio shows
the cost of the hop, not the capacity a cluster of real machines adds. Needs PostgreSQL (127.0.0.1:5432).
Usage: uv run python bench/bench_cluster.py [--per-thread 150] [--instances 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import db as testdb  # noqa: E402
from tests.support.processes import Service, free_port, start_session_manager  # noqa: E402

from bench.loadgen import post_json, throughput  # noqa: E402
from bench.sandbox import MSG, pair_all  # noqa: E402

LEASE = 3.0
THREADS = 12


def start_nodes(root: Path, n: int, store_url: str) -> list[Service]:
    env = {"SESSION_MANAGER_STORE_URL": store_url, "SESSION_MANAGER_LEASE_SECONDS": str(LEASE),
           "SESSION_MANAGER_LOG_LEVEL": "WARNING", "SESSION_MANAGER_CONNECT_ON_START": "false"}
    return [start_session_manager(root / f"n{i}", port=free_port(), SESSION_MANAGER_NODE_ID=f"n{i}", **env)
            for i in range(n)]


def sends_per_second(nodes: list[Service], instances: list[str], per_thread: int) -> float:
    pair_all(nodes[0].base_url, instances)
    ports = [n.port for n in nodes]
    return throughput(ports, lambda t, _i: post_json(f"/api/session-manager/sessions/{instances[t % len(instances)]}"
                                                     "/send", MSG), THREADS, per_thread)


def takeover(nodes: list[Service], instances: list[str]) -> list[float]:
    """Kill the node running the most instances; seconds until each of them is READY on another node."""
    with httpx.Client(base_url=nodes[0].base_url, timeout=30) as c:
        owners = {i: c.get(f"/api/session-manager/sessions/{i}/status").headers["x-served-by"] for i in instances}
        victim = max(set(owners.values()) - {"n0"}, key=list(owners.values()).count)
        moved = [i for i, o in owners.items() if o == victim]
        nodes[int(victim[1:])].kill()
        started, done = time.monotonic(), {}
        while len(done) < len(moved) and time.monotonic() < started + LEASE + 30:
            for i in moved:
                if i not in done:
                    r = c.get(f"/api/session-manager/sessions/{i}/status")
                    if r.status_code == 200 and r.json()["status"] == "READY" and r.headers["x-served-by"] != victim:
                        done[i] = time.monotonic() - started
            time.sleep(0.02)
    if len(done) < len(moved):
        raise RuntimeError(f"not taken over: {sorted(set(moved) - set(done))}")
    return sorted(done.values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-thread", type=int, default=150)
    ap.add_argument("--instances", type=int, default=15)
    args = ap.parse_args()
    instances = [f"c{i}" for i in range(args.instances)]
    result: dict[str, float] = {"lease_s": LEASE}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 3):
            url = testdb.create_database("leadmaster_bench_cluster")
            nodes = start_nodes(Path(tmp) / f"c{n}", n, url)
            try:
                result[f"rps_{n}_nodes"] = round(sends_per_second(nodes, instances, args.per_thread), 1)
                if n == 3:
                    times = takeover(nodes, instances)
                    result["takeover_p50_s"] = round(statistics.median(times), 2)
                    result["takeover_max_s"] = round(times[-1], 2)
                    result["takeover_instances"] = len(times)
            finally:
                for node in nodes:
                    node.stop()
                testdb.drop_database(url)
    result["ratio_3_over_1"] = round(result["rps_3_nodes"] / result["rps_1_nodes"], 2)
    result["takeover_goal_s"] = LEASE + 5
    print(json.dumps(result))


if __name__ == "__main__":
    main()
