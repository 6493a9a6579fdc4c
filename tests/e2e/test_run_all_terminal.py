"""`leadmaster` (./run.sh) on a real terminal (a pty): readable log lines; JSON when asked for or piped."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.test_run_all import alive
from tests.support.processes import BIN, free_port

PRETTY = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +(session-manager|central-hub) +\S")
HEALTH = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} INFO    session-manager request  method=GET path=/health status=200 "
                    r"duration_ms=[\d.]+ request_id=[0-9a-f]{32}$")


class Terminal:
    """`leadmaster` with stdout and stderr on a pty, as from ./run.sh in a terminal; lines read as they come."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        master, slave = os.openpty()
        full_env = {**os.environ, "SESSION_MANAGER_ENGINE": "sandbox", "PORT": str(free_port()),
                    "CENTRAL_HUB_PORT": str(free_port()), "PYTHONUNBUFFERED": "1", **env}
        for name in ("CENTRAL_HUB_ADMIN_USERNAME", "CENTRAL_HUB_ADMIN_PASSWORD", "LEADMASTER_DATA_DIR",
                     "SESSION_MANAGER_DATA_DIR", "CENTRAL_HUB_DATA_DIR", "SESSION_MANAGER_BASE_URL"):
            full_env.pop(name, None)
        if "LEADMASTER_LOG_FORMAT" not in env:
            full_env.pop("LEADMASTER_LOG_FORMAT", None)
        self.proc = subprocess.Popen([str(BIN / "leadmaster")], cwd=tmp_path, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=slave, stderr=slave)
        os.close(slave)
        self.master = master
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed its side
                break
            if not chunk:
                break
            pending += chunk
            *whole, pending = pending.split(b"\n")
            self.lines.extend(line.decode(errors="replace").rstrip("\r") for line in whole)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r}:\n" + "\n".join(self.lines[-60:]))

    def stop(self) -> None:
        if self.master < 0:
            return
        pids = [int(p) for p in re.findall(r"started \(pid (\d+)\)", "\n".join(self.lines))]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.reader.join(5)
        os.close(self.master)
        self.master = -1


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(**env: str) -> Terminal:
        t = Terminal(tmp_path, **env)
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()


def test_terminal_gets_readable_lines(terminal: Callable[..., Terminal]) -> None:
    t = terminal()
    t.wait_for(r"Sign in as: ")
    # The hub's first health probe of the session-manager, drawn: time, level, service, message, fields.
    t.wait_for(HEALTH)
    t.stop()
    logged = [line for line in t.lines if not line.startswith("[")]
    assert logged and all(PRETTY.match(line) or line.startswith("    ") for line in logged), "\n".join(logged)
    assert not any("{" in line and '"msg"' in line for line in t.lines)  # no raw JSON anywhere


def test_terminal_gets_json_when_asked(terminal: Callable[..., Terminal]) -> None:
    t = terminal(LEADMASTER_LOG_FORMAT="json")
    t.wait_for(r"Sign in as: ")
    t.wait_for(r'^\[session-manager\] \{"ts":"[^"]+","level":"info","service":"session-manager"')
    t.stop()
    assert not any(PRETTY.match(line) for line in t.lines)


def test_unknown_format_stops_at_once_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "LEADMASTER_LOG_FORMAT": "xml"}
    proc = subprocess.run([str(BIN / "leadmaster")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["[leadmaster] LEADMASTER_LOG_FORMAT='xml' is invalid: use json or pretty"]
    assert "started" not in proc.stdout
