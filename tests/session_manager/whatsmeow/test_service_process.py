"""End to end: the real session-manager process, whatsmeow engine; its worker is SIGKILLed under load."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

from tests.support.processes import start_session_manager

from .conftest import REFUSING_PROXY


def worker_pids(parent: int) -> list[int]:
    pids = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"leadmaster-whatsmeow-worker" in cmdline:
                pids.append(int(child))
    return pids


def wait_for(predicate, within: float, what: str):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def status_reason(base_url: str) -> str | None:
    return get(f"{base_url}/status")[1].get("reason")


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status, json.load(resp)


def test_worker_killed_under_load_api_answers_everything_and_recovers(tmp_path):
    svc = start_session_manager(
        tmp_path,
        SESSION_MANAGER_ENGINE="whatsmeow",
        SESSION_MANAGER_WHATSMEOW_PROXY=REFUSING_PROXY,
        SESSION_MANAGER_WHATSMEOW_BACKOFF_BASE_SECONDS="30",
    )
    try:
        first = wait_for(lambda: worker_pids(svc.proc.pid), 30, "the worker process")[0]
        # The single-admin instance is dialed on start-up; offline, the dial fails and is reported so.
        wait_for(lambda: status_reason(svc.base_url) == "CONNECT_FAILED", 30, "CONNECT_FAILED")

        answers: list[tuple[str, int, dict]] = []
        failures: list[str] = []
        done = threading.Event()

        def hammer() -> None:
            while not done.is_set():
                for path in ("/health", "/status"):
                    try:
                        status, body = get(svc.base_url + path)
                        answers.append((path, status, body))
                    except Exception as exc:
                        failures.append(f"{path}: {exc!r}")
                time.sleep(0.01)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        os.kill(first, signal.SIGKILL)
        try:
            wait_for(lambda: any(b.get("reason") == "ENGINE_CRASHED" for _, _, b in answers), 10,
                     "ENGINE_CRASHED in /status")
            pid = svc.proc.pid
            second = wait_for(lambda: [p for p in worker_pids(pid) if p != first], 30, "a new worker")[0]
            # Back from its store: dialed again by the new worker (offline: CONNECT_FAILED again).
            wait_for(lambda: status_reason(svc.base_url) == "CONNECT_FAILED", 30, "resume")
        finally:
            done.set()
            for t in threads:
                t.join()

        assert failures == []
        assert len(answers) > 50 and all(status == 200 for _, status, _ in answers)
        seen = [b.get("reason") for p, _, b in answers if p == "/status"]
        assert "ENGINE_CRASHED" in seen
        assert get(f"{svc.base_url}/health")[0] == 200
        assert second != first
    finally:
        started = time.monotonic()
        code = svc.stop()
        assert time.monotonic() - started < 10, "SIGTERM must end the service within 10 s"
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the SIGTERM after its clean shutdown
    assert "Application shutdown complete." in svc.logs()
    time.sleep(0.2)
    assert not Path(f"/proc/{second}").exists() or "Z" in Path(f"/proc/{second}/stat").read_text().split()[2]
    # Nothing raw reached the console: every line the process wrote is one of our JSON log records.
    lines = [line for line in svc.logs().splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not_json == [], not_json[:5]
    assert any('"logger":"leadmaster.session_manager.engines.whatsmeow.worker"' in line for line in lines)
