"""`leadmaster --nodes 3`: a local cluster for a demo, one command (and a clear refusal without PostgreSQL)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import urllib.request
from pathlib import Path

from tests.cluster.stack import poll
from tests.support.processes import BIN, free_port, wait_healthy


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "SESSION_MANAGER_ENGINE": "sandbox", "PYTHONUNBUFFERED": "1",
           "LEADMASTER_DATA_DIR": str(tmp_path / "data"), **extra}
    for name in ("SESSION_MANAGER_DATA_DIR", "CENTRAL_HUB_DATA_DIR", "SESSION_MANAGER_BASE_URL",
                 "SESSION_MANAGER_STORE_URL", "CENTRAL_HUB_DATABASE_URL"):
        if name not in extra:
            env.pop(name, None)
    return env


def _three_free_ports() -> int:
    """A port whose next two are free too (nodes take PORT..PORT+2)."""
    for _ in range(50):
        base = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in (base + 1, base + 2):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return base
    raise RuntimeError("no three consecutive free ports")


def test_nodes_without_postgresql_is_refused_clearly(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "leadmaster"), "--nodes", "3"], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "SESSION_MANAGER_STORE_URL" in proc.stderr and "PostgreSQL" in proc.stderr, proc.stderr


def test_three_nodes_and_a_hub_start_form_one_cluster_and_stop(cluster_db: str, tmp_path: Path) -> None:
    sm_port, hub_port = _three_free_ports(), free_port()
    env = _env(tmp_path, PORT=str(sm_port), CENTRAL_HUB_PORT=str(hub_port), SESSION_MANAGER_STORE_URL=cluster_db,
               SESSION_MANAGER_LEASE_SECONDS="3")
    proc = subprocess.Popen([str(BIN / "leadmaster"), "--nodes", "3"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(ln.rstrip() for ln in proc.stdout or []), daemon=True).start()
    try:
        for port in (sm_port, sm_port + 1, sm_port + 2, hub_port):
            try:
                wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout=90)
            except (RuntimeError, TimeoutError) as exc:
                raise AssertionError("\n".join(lines[-40:])) from exc

        def view() -> dict[str, object]:
            with urllib.request.urlopen(f"http://127.0.0.1:{sm_port}/api/session-manager/cluster", timeout=5) as r:
                body: dict[str, object] = json.load(r)
                return body

        poll(lambda: [n["alive"] for n in view()["nodes"]] == [True] * 3, 20, "three live nodes")  # type: ignore[attr-defined]
        poll(lambda: any("Cluster of 3 nodes" in ln for ln in lines), 20, "the cluster banner")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0, "\n".join(lines[-30:])
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # leadmaster stops its children itself
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                # Its children run in their own process group and outlive a SIGKILL of leadmaster: stop them.
                for pid in (int(m) for m in re.findall(r"\] \S+ started \(pid (\d+)\)", "\n".join(lines))):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
