"""Start the real services as processes on free loopback ports, for end-to-end tests and benches."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import db

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Service:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def wait_healthy(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} not healthy after {timeout}s (last error: {last!r})")


def start_service(
    name: str,
    command: str,
    env: dict[str, str],
    log_dir: Path,
    port: int | None = None,
    timeout: float = 30.0,
) -> Service:
    """Run a console script of this project with `env` on top of os.environ; wait for GET /health."""
    port = port or free_port()
    full_env = {**os.environ, **env}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{port}.log"
    log_file = log_path.open("ab")
    proc = subprocess.Popen([str(BIN / command)], env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
    svc = Service(name, port, proc, log_path, env)
    try:
        wait_healthy(f"{svc.base_url}/health", proc, timeout)
    except Exception:
        svc.stop()
        raise RuntimeError(f"{name} did not start; log:\n{svc.logs()[-4000:]}") from None
    return svc


def start_session_manager(data_dir: Path, port: int | None = None, **env: str) -> Service:
    port = port or free_port()
    base = {
        "PORT": str(port),
        "SESSION_MANAGER_ENGINE": "sandbox",
        "SESSION_MANAGER_DATA_DIR": str(data_dir),
    }
    return start_service("session-manager", "session-manager", {**base, **env}, data_dir / "logs", port)


def start_hub(data_dir: Path, session_manager_url: str, port: int | None = None, **env: str) -> Service:
    port = port or free_port()
    base = {
        "CENTRAL_HUB_PORT": str(port),
        "CENTRAL_HUB_DATA_DIR": str(data_dir),
        "SESSION_MANAGER_BASE_URL": session_manager_url,
    }
    return start_service("central-hub", "central-hub", {**base, **env}, data_dir / "logs", port)


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    try:
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def running_stack(
    root: Path, sm_env: dict[str, str], hub_env: dict[str, str], db_prefix: str
) -> Iterator[tuple[Service, Service]]:
    """A session-manager and a hub wired to it (on the PostgreSQL pass each on a throwaway database)."""
    pg_urls = db.service_databases(db_prefix, sm_env, hub_env)
    try:
        sm = start_session_manager(root / "sm", **sm_env)
        try:
            hub = start_hub(root / "hub", sm.base_url, **hub_env)
            try:
                yield sm, hub
            finally:
                hub.stop()
        finally:
            sm.stop()
    finally:
        for url in pg_urls:
            db.drop_database(url)
