"""Run every benchmark of bench/ one after the other and print one table, each figure beside its goal.

Usage: `make bench` or `uv run python bench/run_all.py`. Each bench runs as its own process; the first JSON
line of its output is read (bench_hub_overhead prints labelled lines instead, parsed here). See
docs/benchmarks.md for how to read the table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ["bench_sm_send.py", "bench_message_status.py", "bench_hub_overhead.py", "bench_memory.py",
           "bench_startup.py", "bench_login_flood.py", "bench_cluster.py", "bench_capacity.py"]


def run(script: str) -> tuple[str, float, int]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800, check=False)
    sys.stderr.write(f"{script}: exit {proc.returncode} after {time.monotonic() - started:.0f} s\n")
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
    return proc.stdout, time.monotonic() - started, proc.returncode


def first_json(out: str) -> dict[str, Any]:
    for line in out.splitlines():
        if line.startswith("{"):
            value: dict[str, Any] = json.loads(line)
            return value
    return {}


def hub_figures(out: str) -> dict[str, float]:
    found: dict[str, float] = {}
    patterns = (("added_p50_ms", r"p50 added by hub\s+(-?[\d.]+)"), ("ratio", r"throughput ratio\s+([\d.]+)"),
                ("via_rps", r"throughput via hub\s+([\d.]+)"), ("direct_rps", r"throughput direct\s+([\d.]+)"))
    for key, pattern in patterns:
        m = re.search(pattern, out)
        if m:
            found[key] = float(m.group(1))
    return found


def rows(results: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(benchmark, measured, goal, verdict) for each figure."""
    out: list[tuple[str, str, str, str]] = []

    def row(name: str, value: float | None, unit: str, goal: str, ok: bool | None) -> None:
        shown = "n/a" if value is None else f"{value:g} {unit}"
        out.append((name, shown, goal, "-" if ok is None or value is None else ("ok" if ok else "MISSED")))

    sm = first_json(results.get("bench_sm_send.py", ""))
    row("session-manager send p50 (c=1)", sm.get("sm_p50_ms"), "ms", "<= 1 ms",
        sm.get("sm_p50_ms", 99) <= 1.0 if sm else None)
    row("session-manager sends/s (16 clients)", sm.get("sm_rps_16"), "/s", ">= 3000",
        sm.get("sm_rps_16", 0) >= 3000 if sm else None)
    row("  ratio to bare FastAPI route, same run", sm.get("rps_ratio_sm_over_bare"), "", "(reference)", None)
    for name, label in (("keyed_sqlite", "keyed, SQLite"), ("plain_pg", "plain, PostgreSQL")):
        row(f"  {label}: p50 / sends/s", sm.get(f"{name}_p50_ms"), f"ms, {sm.get(f'{name}_rps_16')}/s",
            "(reference)", None)
    row("keyed send on PostgreSQL: p50 added to plain SQLite", sm.get("keyed_pg_added_p50_ms"), "ms",
        "<= 0.5 ms", sm.get("keyed_pg_added_p50_ms", 99) <= 0.5 if sm else None)
    row("keyed send on PostgreSQL: sends/s / plain SQLite", sm.get("keyed_pg_rps_ratio"),
        f"({sm.get('keyed_pg_rps_16')}/s)", ">= 0.70", sm.get("keyed_pg_rps_ratio", 0) >= 0.7 if sm else None)
    ms = first_json(results.get("bench_message_status.py", ""))
    row("message status route p50 (c=1)", ms.get("status_p50_ms"), "ms", "<= 1 ms",
        ms.get("status_p50_ms", 99) <= 1.0 if ms else None)
    row("message status reads/s (16 clients)", ms.get("status_rps_16"), "/s", ">= 2000",
        ms.get("status_rps_16", 0) >= 2000 if ms else None)
    row("sends/s beside a 1,000 statuses/s poller / alone", ms.get("sends_ratio_with_poller"), "",
        ">= 0.90", ms.get("sends_ratio_with_poller", 0) >= 0.90 if ms else None)
    hub = hub_figures(results.get("bench_hub_overhead.py", ""))
    row("hub: p50 added per send", hub.get("added_p50_ms"), "ms", "<= 0.5 ms",
        hub.get("added_p50_ms", 99) <= 0.5 if hub else None)
    row("hub: throughput via hub / direct", hub.get("ratio"), "", ">= 0.80",
        hub.get("ratio", 0) >= 0.80 if hub else None)
    mem = first_json(results.get("bench_memory.py", ""))
    row("memory per additional session", mem.get("mb_per_additional_session"), "MB",
        f"<= {mem.get('goal_mb', 3.0)} MB", mem.get("ok"))
    start = first_json(results.get("bench_startup.py", ""))
    row("start-up, 50 stored sessions (/health 200)", start.get("seconds_to_health_200"), "s",
        f"<= {start.get('goal_s', 2.0)} s", start.get("ok"))
    flood = first_json(results.get("bench_login_flood.py", ""))
    row("hub: other route p50 under a 16-thread login flood", flood.get("flood_p50_ms"), "ms",
        f"<= {flood.get('goal_ms', 100.0):g} ms", flood.get("ok"))
    cl = first_json(results.get("bench_cluster.py", ""))
    goal = cl.get("takeover_goal_s", 8.0)
    row(f"cluster: takeover after SIGKILL, p50 (lease {cl.get('lease_s', '?')} s)", cl.get("takeover_p50_s"), "s",
        f"<= {goal} s (lease + 5)", cl.get("takeover_p50_s", 99) <= goal if cl else None)
    row("cluster: takeover after SIGKILL, max", cl.get("takeover_max_s"), "s", f"<= {goal} s (lease + 5)",
        cl.get("takeover_max_s", 99) <= goal if cl else None)
    row("cluster: sends/s, 3 nodes round-robin (PostgreSQL)", cl.get("rps_3_nodes"), "/s", "(reference)", None)
    row("cluster: sends/s, 1 node, same run", cl.get("rps_1_nodes"), "/s", "(reference)", None)
    # One 2-core machine runs all nodes: the hop's cost shows, not the capacity more machines add.
    row("cluster: throughput 3 nodes / 1 node", cl.get("ratio_3_over_1"), "", ">= 0.5 (2 cores shared)",
        cl.get("ratio_3_over_1", 0) >= 0.5 if cl else None)
    cap = first_json(results.get("bench_capacity.py", ""))
    goals = cap.get("goals", {})
    n = cap.get("sessions", 1000)
    for store in ("postgres", "sqlite"):
        r, s = cap.get(store, {}), cap.get(f"{store}_startup", {})
        settle = r.get("settle_s")
        row(f"capacity {store}: {n} sessions all CONNECT_FAILED", settle, "s", f"<= {goals.get('settle_s', 60)} s",
            None if settle is None else settle <= goals.get("settle_s", 60) and r.get("kept"))
        row(f"capacity {store}: process tree RSS", r.get("rss_mb"), "MB", f"<= {goals.get('rss_mb', 600)} MB",
            r.get("rss_mb", 1e9) <= goals.get("rss_mb", 600) if r else None)
        if store == "postgres":
            peak = max(r.get("pg_connections", 0), s.get("pg_connections", 0)) if r else None
            row("capacity postgres: server connections (peak)", peak, "", f"<= {goals.get('pg_connections', 20)}",
                None if peak is None else peak <= goals.get("pg_connections", 20))
        row(f"capacity {store}: start-up, {n} stored (/health 200)", s.get("health_s"), "s",
            f"<= {goals.get('health_s', 2.0)} s", s.get("health_s", 99) <= goals.get("health_s", 2.0) if s else None)
        row("  same start, nothing stored (box's load)", s.get("health_s_nothing_stored"), "s", "(reference)", None)
        row(f"capacity {store}: dials in flight at start-up (peak)", s.get("max_dials_in_flight"), "",
            f"<= {goals.get('max_dials_in_flight', 16)}",
            s.get("max_dials_in_flight", 99) <= goals.get("max_dials_in_flight", 16) if s else None)
    return out


def main() -> int:
    results: dict[str, str] = {}
    failed = []
    for script in BENCHES:
        stdout, _, code = run(script)
        results[script] = stdout
        if code != 0:
            failed.append(script)
    table = rows(results)
    widths = [max(len(r[i]) for r in [("benchmark", "measured", "goal", "verdict"), *table]) for i in range(4)]
    for r in [("benchmark", "measured", "goal", "verdict"), tuple("-" * w for w in widths), *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
