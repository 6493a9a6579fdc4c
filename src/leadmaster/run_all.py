"""`leadmaster`: run the session-manager and the central hub together, for a laptop or a small server.

Both services run as child processes (the same console scripts you would run by hand), so each keeps its
own settings, logs and crash behaviour; this module only wires them together, prefixes their logs and
stops them as one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from leadmaster.common.logs import LOG_FORMAT_VAR, pretty_line, resolve_log_format

STOP_GRACE_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 90.0  # generous: a loaded box can take seconds to import the app
CREDENTIALS_WAIT_SECONDS = 10.0
PREFIX = "[leadmaster]"

_print_lock = threading.Lock()


def say(line: str, stream: IO[str] | None = None) -> None:
    """Print one whole line; the lock keeps child log lines from interleaving mid-line."""
    with _print_lock:
        out = stream or sys.stdout
        out.write(line + "\n")
        out.flush()


@dataclass
class Child:
    name: str
    port: int
    proc: subprocess.Popen[str]

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"


def shown(name: str, line: str, pretty: bool) -> str:
    """A child's output line as we print it: a JSON log entry drawn by `pretty_line`, else `[name] line`."""
    if pretty:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and "msg" in entry:
            return pretty_line({"service": name, **entry})  # the entry names its service: no prefix
    return f"[{name}] {line}"


def _pump(child: Child, pretty: bool) -> None:
    assert child.proc.stdout is not None
    for raw in child.proc.stdout:
        say(shown(child.name, raw.rstrip(), pretty))


def _spawn(name: str, module: str, port: int, env: dict[str, str], pretty: bool) -> Child:
    # `python -c`, not the console script: behaves the same under `uv run`, a venv or an editable install.
    code = f"import sys; from {module} import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        # Own process group: a terminal Ctrl-C reaches only us, and we forward exactly one signal,
        # so uvicorn does a graceful shutdown instead of treating a second SIGINT as "force quit".
        process_group=0,
    )
    child = Child(name, port, proc)
    say(f"{PREFIX} {name} started (pid {proc.pid})")
    threading.Thread(target=_pump, args=(child, pretty), name=f"log-{name}", daemon=True).start()
    return child


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
            return bool(resp.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _wait_healthy(child: Child, stop: threading.Event) -> bool:
    deadline = time.monotonic() + HEALTH_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not stop.is_set():
        if child.proc.poll() is not None:
            return False
        if _healthy(child.health_url):
            return True
        stop.wait(0.2)
    return False


def _stop_all(children: list[Child], sig: int) -> None:
    """Forward `sig` to every live child, wait up to 10 s in total, then kill what is left."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(sig)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{PREFIX} {child.name} still up after {STOP_GRACE_SECONDS:.0f} s; killing it.", sys.stderr)
            child.proc.kill()
            child.proc.wait()


def _credentials_line(hub_data_dir: Path, env: dict[str, str], stop: threading.Event) -> str:
    user = env.get("CENTRAL_HUB_ADMIN_USERNAME")
    if user and env.get("CENTRAL_HUB_ADMIN_PASSWORD"):
        return f"Sign in as: {user} (password from CENTRAL_HUB_ADMIN_PASSWORD)"
    path = hub_data_dir / "initial-admin-password"
    deadline = time.monotonic() + CREDENTIALS_WAIT_SECONDS
    while not path.exists() and time.monotonic() < deadline and not stop.is_set():
        stop.wait(0.2)
    try:
        password = path.read_text().strip()
    except OSError:
        return f"Sign in with your existing hub account (no {path} found)."
    # The hub keeps the file after the first run; the password may have been changed since.
    return f"Sign in as: admin / {password}   (first-run password, kept in {path})"


def _install_signal_handlers(stop: threading.Event, received: list[int]) -> Callable[[], None]:
    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def _port(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "") or str(default)
    try:
        return int(raw)
    except ValueError:
        say(f"{PREFIX} {name}={raw!r} is not a port number; set it to e.g. {default}.", sys.stderr)
        raise SystemExit(2) from None


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="leadmaster", description="Run the session-manager and the central hub.")
    parser.add_argument("--nodes", type=int, default=1, metavar="N",
                        help="start N session-manager nodes as one cluster on ports PORT..PORT+N-1 "
                        "(needs SESSION_MANAGER_STORE_URL=postgresql://...; see docs/deploy.md)")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 16:
        parser.error(f"--nodes {args.nodes}: use 1 to 16")
    return args


def _cluster_store_or_exit(env: dict[str, str], nodes: int) -> None:
    url = env.get("SESSION_MANAGER_STORE_URL", "")
    if nodes > 1 and not url.startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
        say(f"{PREFIX} --nodes {nodes} needs SESSION_MANAGER_STORE_URL to name a PostgreSQL database "
            f"(the cluster's only coordinator), got {url!r}. E.g. "
            "SESSION_MANAGER_STORE_URL=postgresql://postgres@127.0.0.1:5432/leadmaster ./run.sh --nodes 3",
            sys.stderr)
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    """Start session-manager(s) then central-hub, show their logs, stop all on Ctrl-C/SIGTERM or a crash."""
    args = _parse(argv)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    _cluster_store_or_exit(env, args.nodes)
    sm_port = _port(env, "PORT", 3001)
    hub_port = _port(env, "CENTRAL_HUB_PORT", 3000)
    data = Path(env.get("LEADMASTER_DATA_DIR") or "./data").resolve()
    sm_data = Path(env.get("SESSION_MANAGER_DATA_DIR") or data / "session-manager")
    hub_data = Path(env.get("CENTRAL_HUB_DATA_DIR") or data / "central-hub")
    # One node keeps the historical names; a cluster gets session-manager-1..N, each its own port and data dir.
    nodes = [("session-manager", sm_port, sm_data)] if args.nodes == 1 else [
        (f"session-manager-{i + 1}", sm_port + i, sm_data.with_name(f"{sm_data.name}-{i + 1}"))
        for i in range(args.nodes)
    ]
    hub_env = {
        **env,
        "CENTRAL_HUB_PORT": str(hub_port),
        "CENTRAL_HUB_DATA_DIR": str(hub_data),
        # We started this session-manager, so the hub must talk to exactly it.
        "SESSION_MANAGER_BASE_URL": f"http://127.0.0.1:{sm_port}",
    }
    engine = env.get("SESSION_MANAGER_ENGINE") or "whatsmeow"
    # People at a terminal get readable lines; pipes and log collectors keep the services' JSON.
    try:
        pretty = resolve_log_format(env.get(LOG_FORMAT_VAR), sys.stdout) == "pretty"
    except ValueError as exc:
        say(f"{PREFIX} {exc}", sys.stderr)
        return 2
    # The children always write JSON to us; we draw it (so a child never draws it a second time).
    env[LOG_FORMAT_VAR] = hub_env[LOG_FORMAT_VAR] = "json"

    stop = threading.Event()
    received: list[int] = []
    restore = _install_signal_handlers(stop, received)
    children: list[Child] = []
    try:
        for name, port, node_data in nodes:
            say(f"{PREFIX} starting {name} on port {port} (engine {engine}, data {node_data})")
            node_env = {**env, "PORT": str(port), "SESSION_MANAGER_DATA_DIR": str(node_data)}
            children.append(_spawn(name, "leadmaster.session_manager.cli", port, node_env, pretty))
        for sm in children:
            if not _wait_healthy(sm, stop):
                return _startup_failed(children, sm, stop, received)
        say(f"{PREFIX} starting central-hub on port {hub_port} (data {hub_data})")
        hub = _spawn("central-hub", "leadmaster.central_hub.cli", hub_port, hub_env, pretty)
        children.append(hub)
        if not _wait_healthy(hub, stop):
            return _startup_failed(children, hub, stop, received)

        host = env.get("CENTRAL_HUB_HOST") or "127.0.0.1"
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        banner = [
            "-" * 72,
            f"Dashboard:  http://{shown}:{hub_port}/",
            _credentials_line(hub_data, env, stop),
            "Sandbox engine: no phone needed; use 'Simulate scan' on a cliente page." if engine == "sandbox"
            else "Open a cliente, press Connect, scan the QR with WhatsApp > Linked devices.",
            "Press Ctrl-C to stop both services." if len(nodes) == 1 else
            f"Cluster of {len(nodes)} nodes: http://127.0.0.1:{sm_port}/api/session-manager/cluster "
            "(kill one: its instances move). Press Ctrl-C to stop all.",
            "-" * 72,
        ]
        # One write under the lock, so the block is not split by a log line from a child.
        say("\n".join(f"{PREFIX} {line}" for line in banner))
        return _supervise(children, stop, received, expendable=len(nodes) > 1)
    finally:
        restore()


def _startup_failed(children: list[Child], child: Child, stop: threading.Event, received: list[int]) -> int:
    if stop.is_set():
        # SIGTERM, not the SIGINT we got: a child still importing would print a KeyboardInterrupt traceback.
        say(f"{PREFIX} stopping during start-up…")
        _stop_all(children, signal.SIGTERM)
        say(f"{PREFIX} stopped.")
        return 0
    code = child.proc.poll()
    why = f"exited with code {code}" if code is not None else f"did not answer {child.health_url} in time"
    say(f"{PREFIX} {child.name} {why}; stopping. See its log lines above.", sys.stderr)
    _stop_all(children, signal.SIGTERM)
    return 1


def _supervise(children: list[Child], stop: threading.Event, received: list[int], expendable: bool = False) -> int:
    while not stop.wait(0.2):
        for child in children:
            code = child.proc.poll()
            nodes_left = [c for c in children if c.name.startswith("session-manager-") and c.proc.poll() is None]
            if code is not None and expendable and child.name.startswith("session-manager-") and nodes_left:
                # A cluster outlives a node: the others take its instances over (CONTRACT §4).
                say(f"{PREFIX} {child.name} exited (code {code}); the other nodes take its instances over.",
                    sys.stderr)
                children.remove(child)
                break
            if code is not None:
                others = [c for c in children if c is not child]
                names = ", ".join(c.name for c in others)
                say(f"{PREFIX} {child.name} exited unexpectedly (code {code}); stopping {names}.", sys.stderr)
                _stop_all(others, signal.SIGTERM)
                return code or 1
    sig = received[0] if received else signal.SIGTERM
    say(f"{PREFIX} {signal.Signals(sig).name} received; stopping both services…")
    _stop_all(list(reversed(children)), sig)
    say(f"{PREFIX} stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
