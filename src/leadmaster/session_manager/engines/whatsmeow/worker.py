"""The neonize worker process: `python -m leadmaster.session_manager.engines.whatsmeow.worker`.

Started and supervised by `WhatsmeowEngine`. A Go panic, a SIGSEGV or a stuck Go thread here takes down or
blocks only this process; the engine notices, reports ENGINE_CRASHED and starts a new one.
Frames go out on a duplicate of the original stdout; fd 1 and fd 2 both point at the stderr pipe, which the
engine folds into its JSON logs, so raw Go prints never reach the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from leadmaster.common.logs import JsonFormatter
from leadmaster.session_manager.engines.whatsmeow import protocol

logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow.worker")

# Every session parks one thread in neonize's blocking connect for its whole life.
THREADS = 1024


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("session-manager-worker"))
    root = logging.getLogger()
    for old in list(root.handlers):  # undo neonize's import-time basicConfig
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The Go side is told this logger's level: WARNING keeps its DEBUG/INFO lines from ever crossing over.
    logging.getLogger("neonize.utils.log").setLevel(logging.WARNING)
    logging.getLogger("whatsmeow").setLevel(logging.WARNING)
    logging.getLogger("Whatsmeow").setLevel(logging.WARNING)
    logging.getLogger("neonize").setLevel(logging.WARNING)
    logging.getLogger("neonize.utils.ffmpeg").setLevel(logging.ERROR)  # "ffmpeg not found", every connect


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 65536
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _serve(frames_fd: int) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="neonize"))

    reader = asyncio.StreamReader(limit=protocol.MAX_FRAME)
    stdin = os.fdopen(0, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(frames_fd, "wb", buffering=0))

    def emit(message: dict[str, Any]) -> None:
        if not transport.is_closing():
            transport.write(protocol.encode(message))

    async def read() -> dict[str, Any] | None:
        try:
            header = await reader.readexactly(protocol.HEADER.size)
            (size,) = protocol.HEADER.unpack(header)
            return protocol.decode(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            return None  # the engine went away: stdin closed

    init = await read()
    if init is None or init.get("op") != "init":
        return
    # Imported only now, and only here: neonize (43 MB, a Go runtime) never enters the API process.
    from neonize.aioze import events as neonize_events

    from leadmaster.session_manager.engines.whatsmeow.manager import Manager, OpError
    from leadmaster.session_manager.engines.whatsmeow.sessions import WorkerConfig

    _configure_logging(str(init["args"].get("log_level", "INFO")))
    # neonize binds its callbacks to the first loop it sees; make it this one, explicitly.
    neonize_events.event_global_loop = loop
    manager = Manager(WorkerConfig(**init["args"]["config"]), emit)
    emit({"id": init["id"], "ok": True, "result": {"pid": os.getpid()}})

    async def run(request: dict[str, Any]) -> None:
        rid = request.get("id")
        try:
            result = await manager.handle(str(request["op"]), dict(request.get("args") or {}))
            reply: dict[str, Any] = {"id": rid, "ok": True, "result": result}
        except OpError as exc:
            reply = {"id": rid, "ok": False, "error": exc.kind, "message": str(exc)}
        except Exception as exc:
            logger.exception("operation failed", extra={"fields": {"op": request.get("op")}})
            reply = {"id": rid, "ok": False, "error": protocol.FAILED, "message": repr(exc)[:500]}
        emit(reply)

    tasks: set[asyncio.Task[None]] = set()
    while True:
        request = await read()
        if request is None:
            break
        if request.get("op") == "shutdown":
            await run(request)
            break
        task = loop.create_task(run(request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if request is None:
        await manager.op_shutdown(budget=3.0)
    await asyncio.sleep(0.05)  # let the last frame drain


def main() -> None:
    frames_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _raise_fd_limit()
    _configure_logging("INFO")
    # Not asyncio.run(): its executor shutdown would wait forever for a Go thread stuck in a blocking call.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_serve(frames_fd))
    except KeyboardInterrupt:
        pass
    except Exception:
        logger.exception("worker failed")
    finally:
        sys.stderr.flush()
        # Go threads stuck in a blocking call would keep a normal interpreter exit waiting forever.
        os._exit(0)


if __name__ == "__main__":
    main()
