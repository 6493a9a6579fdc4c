"""RSS of the session-manager's process tree with 1 and with 51 sessions (real whatsmeow engine, offline).

Each session is dialed once through the HTTP API; a refusing proxy makes every dial fail at once, so each
session holds what a real one holds between redials (a whatsmeow client in the Go worker, its device in the
shared store).
Run: uv run python bench/bench_memory.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.processes import start_session_manager


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += descendants(int(child))
    return found


def rss_mb(pid: int, tree: bool = True) -> float:
    """Resident memory of a process and (with `tree`) all its descendants (API process + worker), in MB."""
    total_kb = 0
    for p in descendants(pid) if tree else [pid]:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def call(method: str, url: str) -> dict:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def wait_all(base_url: str, ids: list[str], reason: str, within: float = 120.0) -> None:
    """Wait until every session in `ids` reports `reason`."""
    deadline = time.monotonic() + within
    wanted = set(ids)
    while time.monotonic() < deadline:
        rows = call("GET", f"{base_url}/api/session-manager/sessions")
        rows = rows if isinstance(rows, list) else rows.get("sessions", rows.get("items", []))
        if wanted <= {r["instance_id"] for r in rows if r.get("reason") == reason}:
            return
        time.sleep(0.1)
    raise TimeoutError(f"not all of {len(ids)} sessions reached {reason}")


EXTRA = 50
GOAL_MB = 3.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        svc = start_session_manager(
            Path(tmp),
            SESSION_MANAGER_ENGINE="whatsmeow",
            SESSION_MANAGER_WHATSMEOW_PROXY="http://127.0.0.1:1",
            # One dial per session during the measurement: no redial inside the window.
            SESSION_MANAGER_WHATSMEOW_BACKOFF_BASE_SECONDS="3600",
            SESSION_MANAGER_LOG_LEVEL="WARNING",
        )
        try:
            base = svc.base_url
            # The single-admin instance is dialed on start-up: that is the first session.
            wait_all(base, ["admin"], "CONNECT_FAILED")
            time.sleep(1.0)
            one = rss_mb(svc.proc.pid)
            ids = [f"bench_{n}" for n in range(EXTRA)]
            for instance_id in ids:
                call("POST", f"{base}/api/session-manager/sessions/{instance_id}/connect")
            wait_all(base, ids, "CONNECT_FAILED")
            time.sleep(1.0)
            many = rss_mb(svc.proc.pid)
            api_only = rss_mb(svc.proc.pid, tree=False)
        finally:
            svc.stop()
    per = (many - one) / EXTRA
    result = {"bench": "memory", "rss_mb_1_session": round(one, 1), "rss_mb_51_sessions": round(many, 1),
              "mb_per_additional_session": round(per, 3),
              "api_process_mb_51": round(api_only, 1), "worker_mb_51": round(many - api_only, 1),
              "goal_mb": GOAL_MB, "ok": per <= GOAL_MB}
    print(json.dumps(result))
    print(f"session-manager tree RSS: {one:.1f} MB with 1 session, {many:.1f} MB with {EXTRA + 1}: "
          f"{per:.2f} MB per additional session (goal <= {GOAL_MB} MB)")


if __name__ == "__main__":
    main()
