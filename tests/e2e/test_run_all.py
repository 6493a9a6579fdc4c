"""`leadmaster` (run_all): both services up with one command, credentials shown, clean stop on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import BIN, free_port, wait_healthy


@dataclass
class Run:
    proc: subprocess.Popen[str]
    hub_port: int
    sm_port: int
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := re.search(pattern, line):
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}; output:\n{self.output()[-4000:]}")

    def child_pids(self) -> dict[str, int]:
        found = re.findall(r"\[leadmaster\] (\S+) started \(pid (\d+)\)", self.output())
        return {name: int(pid) for name, pid in found}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; leadmaster reaps its children, so this is belt and braces.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    hub_port, sm_port = free_port(), free_port()
    env = {
        **os.environ,
        "SESSION_MANAGER_ENGINE": "sandbox",
        "PORT": str(sm_port),
        "CENTRAL_HUB_PORT": str(hub_port),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("CENTRAL_HUB_ADMIN_USERNAME", "CENTRAL_HUB_ADMIN_PASSWORD", "LEADMASTER_DATA_DIR",
                 "SESSION_MANAGER_DATA_DIR", "CENTRAL_HUB_DATA_DIR", "SESSION_MANAGER_BASE_URL"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [str(BIN / "leadmaster")], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    r = Run(proc, hub_port, sm_port)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            r.lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield r
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        for pid in r.child_pids().values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_leadmaster_starts_both_prints_credentials_and_stops_on_sigint(run: Run, tmp_path: Path) -> None:
    wait_healthy(f"http://127.0.0.1:{run.sm_port}/health", run.proc, timeout=60)
    wait_healthy(f"http://127.0.0.1:{run.hub_port}/health", run.proc, timeout=60)
    run.wait_for_line(rf"Dashboard: +http://127\.0\.0\.1:{run.hub_port}/")
    password = run.wait_for_line(r"Sign in as: admin / (\S+)").group(1)

    # The data lands in ./data of the working directory, and the printed password is the real one.
    assert (tmp_path / "data" / "central-hub" / "initial-admin-password").read_text().strip() == password
    assert (tmp_path / "data" / "session-manager").is_dir()
    req = urllib.request.Request(
        f"http://127.0.0.1:{run.hub_port}/api/auth/login",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    # Logs of both services are shown, prefixed by service name.
    run.wait_for_line(r"^\[session-manager\] \{")
    run.wait_for_line(r"^\[central-hub\] ")

    pids = run.child_pids()
    assert set(pids) == {"session-manager", "central-hub"}
    started = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    assert run.proc.wait(12) == 0, run.output()[-3000:]
    assert time.monotonic() - started < 10.5
    assert not any(alive(pid) for pid in pids.values())
    assert "stopped." in run.output()


def test_leadmaster_stops_the_hub_and_fails_when_the_session_manager_dies(run: Run) -> None:
    wait_healthy(f"http://127.0.0.1:{run.hub_port}/health", run.proc, timeout=60)
    run.wait_for_line(r"Sign in as: ")
    pids = run.child_pids()
    os.kill(pids["session-manager"], signal.SIGKILL)
    code = run.proc.wait(15)
    assert code != 0
    assert "session-manager exited unexpectedly" in run.output()
    assert not alive(pids["central-hub"])
