"""Load generation shared by the benchmarks: the method of ../shared/PERF_NOTES.md.

Python `http.client`, one persistent connection per thread; sequential latency over N calls; throughput
with T threads. Loopback only; every loop is bounded in count.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Request = tuple[str, str, bytes | None, dict[str, str]]  # method, path, body, headers


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    calls: int


def _call(conn: http.client.HTTPConnection, req: Request) -> int:
    method, path, body, headers = req
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def latency(port: int, make: Callable[[int], Request], calls: int, warmup: int = 50) -> Latency:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(warmup):
        _call(conn, make(i))
    samples = []
    for i in range(calls):
        t = time.perf_counter()
        status = _call(conn, make(warmup + i))
        samples.append(time.perf_counter() - t)
        if status >= 400:
            raise RuntimeError(f"bench request failed with {status}")
    conn.close()
    samples.sort()
    return Latency(statistics.median(samples) * 1000, samples[int(len(samples) * 0.99) - 1] * 1000, calls)


def throughput(port: int | list[int], make: Callable[[int, int], Request], threads: int, calls_each: int) -> float:
    """Requests per second over `threads` clients each making `calls_each` calls (thread index, call index).

    With a list of ports, client t talks to ports[t % len(ports)] (a round-robin load balancer)."""
    ports = port if isinstance(port, list) else [port]
    errors: list[str] = []
    barrier = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ports[t % len(ports)], timeout=30)
        _call(conn, make(t, -1))  # connect + warm before the clock starts
        barrier.wait()
        for i in range(calls_each):
            status = _call(conn, make(t, i))
            if status >= 400:
                errors.append(str(status))
        conn.close()

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    barrier.wait()
    started = time.perf_counter()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests during throughput run, e.g. {errors[:3]}")
    return threads * calls_each / elapsed


def post_json(path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Request:
    return ("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})
