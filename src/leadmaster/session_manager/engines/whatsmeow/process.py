"""API-process side of one worker process: spawn it, talk to it with timeouts, fold its stderr into logs.

The worker is the Go program of `engine-worker/` (built into `.build/` by scripts/build_worker.py).
Everything here is non-blocking for the event loop: a worker that hangs only makes calls time out, and
`kill` always works.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from leadmaster.common.logs import log
from leadmaster.session_manager.engines.whatsmeow import protocol

logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow")
worker_logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow.worker")

# src/leadmaster/session_manager/engines/whatsmeow/process.py → the repository root, five levels up.
REPO_ROOT = Path(__file__).resolve().parents[5]
WORKER_BINARY_ENV = "SESSION_MANAGER_WHATSMEOW_WORKER_BIN"


def worker_binary() -> Path:
    """The Go engine worker: $SESSION_MANAGER_WHATSMEOW_WORKER_BIN, else the repository's build output."""
    override = os.environ.get(WORKER_BINARY_ENV)
    if override:
        return Path(override)
    built = REPO_ROOT / ".build" / "leadmaster-whatsmeow-worker"
    # A non-editable install puts this file in site-packages: then look where the service was started.
    return built if built.exists() else Path.cwd() / ".build" / "leadmaster-whatsmeow-worker"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}
_JSON_OWN_KEYS = frozenset({"ts", "level", "service", "logger", "msg", "request_id"})
_DUMP_MARKERS = ("panic:", "fatal error:", "SIGSEGV", "SIGABRT", "unexpected signal")


class WorkerGone(Exception):
    """The worker died (or was killed) before answering."""


class WorkerTimeout(Exception):
    """The worker did not answer in time."""


class WorkerError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class WorkerProcess:
    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event
        self.proc: asyncio.subprocess.Process | None = None
        self.pid: int | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self._dumping = False
        self.exited = asyncio.Event()

    async def spawn(self, init_args: dict[str, Any], within: float) -> None:
        binary = worker_binary()
        if not os.access(binary, os.X_OK):
            raise WorkerGone(f"no engine worker at {binary}: run ./run.sh or python3 scripts/build_worker.py")
        self.proc = await asyncio.create_subprocess_exec(
            str(binary),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            # Its own session: a Ctrl+C meant for the service reaches the worker only through `stop()`.
            start_new_session=True, limit=protocol.MAX_FRAME,
        )
        self.pid = self.proc.pid
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_frames()), loop.create_task(self._read_stderr()),
                       loop.create_task(self._watch_exit())]
        await self.call("init", init_args, within)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def call(self, op: str, args: dict[str, Any] | None = None, within: float = 10.0) -> Any:
        rid = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        try:
            stdin = self._write(rid, op, args or {})
            async with asyncio.timeout(within):
                await stdin.drain()
                return await future
        except TimeoutError as exc:
            raise WorkerTimeout(f"worker gave no answer to {op!r} within {within:g}s") from exc
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WorkerGone(f"worker pipe closed during {op!r}") from exc
        finally:
            self._pending.pop(rid, None)

    def post(self, op: str, args: dict[str, Any]) -> None:
        """Write one request now, in order with every call made after it, without waiting for the answer
        (dropped: no pending call has its id). For the lease, which the heartbeat must never wait on."""
        self._write(next(self._ids), op, args)

    def _write(self, rid: int, op: str, args: dict[str, Any]) -> asyncio.StreamWriter:
        if not self.alive:
            raise WorkerGone("the worker is not running")
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(protocol.encode({"id": rid, "op": op, "args": args}))
        return self.proc.stdin

    def kill(self) -> None:
        if self.alive and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    async def terminate(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
        if self.alive and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exited.wait(), grace)
        self.kill()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.exited.wait(), 2.0)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    # -- readers ---------------------------------------------------------------------------------

    async def _read_frames(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        while True:
            try:
                header = await stdout.readexactly(protocol.HEADER.size)
                (size,) = protocol.HEADER.unpack(header)
                if size > protocol.MAX_FRAME:
                    raise ValueError(f"frame of {size} bytes")
                message = protocol.decode(await stdout.readexactly(size))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except ValueError as exc:
                log(logger, logging.ERROR, "bad frame from worker; killing it", error=repr(exc)[:300])
                self.kill()
                return
            rid = message.get("id")
            if rid is not None:
                future = self._pending.get(int(rid))
                if future is not None and not future.done():
                    if message.get("ok"):
                        future.set_result(message.get("result"))
                    else:
                        error = WorkerError(str(message.get("error")), str(message.get("message")))
                        future.set_exception(error)
            else:
                try:
                    self.on_event(message)
                except Exception:
                    logger.exception("worker event handling failed")

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        stderr = self.proc.stderr
        while True:
            try:
                raw = await stderr.readline()
            except ValueError:  # a line longer than the limit: take what is there
                raw = await stderr.read(65536)
            if not raw:
                return
            self._fold(raw.decode(errors="replace").rstrip("\n"))

    def _fold(self, line: str) -> None:
        """One worker stderr line → one JSON log record of ours (raw Go output included)."""
        if not line.strip():
            return
        if line.startswith("{"):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                entry = None
            if isinstance(entry, dict) and "msg" in entry:
                level = _LEVELS.get(str(entry.get("level")), logging.INFO)
                fields = {k: v for k, v in entry.items() if k not in _JSON_OWN_KEYS}
                fields["worker_logger"] = entry.get("logger")
                fields["worker_pid"] = self.pid
                # When the worker wrote it: a line folded late (this process stalled) still says so.
                fields["worker_ts"] = entry.get("ts")
                log(worker_logger, level, str(entry["msg"]), **fields)
                return
        self.tail.append(line[:2000])
        if any(marker in line for marker in _DUMP_MARKERS):
            # A Go crash dump can run to thousands of lines: log its first line now, the tail at exit.
            self._dumping = True
            log(worker_logger, logging.ERROR, line[:2000], raw=True, worker_pid=self.pid)
        elif not self._dumping:
            log(worker_logger, logging.INFO, line[:2000], raw=True, worker_pid=self.pid)

    async def _watch_exit(self) -> None:
        assert self.proc is not None
        await self.proc.wait()
        # Let the readers drain what the worker wrote before dying.
        await asyncio.sleep(0.05)
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(WorkerGone(f"worker exited ({self.proc.returncode}) before answering"))
        self.exited.set()
