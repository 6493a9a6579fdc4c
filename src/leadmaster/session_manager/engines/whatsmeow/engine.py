"""`WhatsmeowEngine`: the real WhatsApp engine, whatsmeow in a supervised Go worker process.

The API process keeps only bookkeeping: which instances should be connected (each with a generation, so a
late event of an older connection is dropped), the last account seen, and the worker's health. The worker
(`engine-worker/`, Go) owns every whatsmeow client of the node. When it dies or hangs, every affected
session reports ERROR/ENGINE_CRASHED, a new worker starts after a backoff, and the sessions are dialed again
from their stores.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from leadmaster.common.logs import log
from leadmaster.contract.status import MessageStatus, Reason, SessionStatus
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines.base import (
    Account,
    Engine,
    EngineError,
    EngineNotReady,
    EngineSink,
    SendFailed,
    SendOutcomeUnknown,
    SentMessage,
)
from leadmaster.session_manager.engines.whatsmeow import protocol
from leadmaster.session_manager.engines.whatsmeow.credentials import Credentials
from leadmaster.session_manager.engines.whatsmeow.process import (
    WorkerError,
    WorkerGone,
    WorkerProcess,
    WorkerTimeout,
)

logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow")

SEND_RPC_TIMEOUT = 25.0  # under the hub's 30 s read timeout; the worker itself gives up at 20 s
CALL_TIMEOUT = 10.0
STOP_BUDGET = 9.0
INIT_TIMEOUT = 30.0
HEALTHY_AFTER = 60.0  # a worker that lived this long resets the restart backoff


class WhatsmeowEngine(Engine):
    name: ClassVar[str] = "whatsmeow"
    # The worker does send under the port's message_id (SendRequestExtra.ID), so receipts can still tell
    # what became of a send whose outcome was lost; but no evidence shows WhatsApp treating a re-send under
    # the same ID as one message (docs/whatsmeow.md "Exactly-once"), so such retries stay refused.
    chooses_message_id: ClassVar[bool] = False

    def __init__(
        self,
        settings: Settings,
        *,
        proxy: str | None = None,
        backoff_base: float | None = None,
        backoff_cap: float | None = None,
        max_dials: int | None = None,
        db_connections: int | None = None,
        restart_base: float = 0.5,
        restart_cap: float = 30.0,
        ping_interval: float = 5.0,
        ping_timeout: float = 10.0,
        test_hooks: bool = False,
    ) -> None:
        self.settings = settings
        self.credentials = Credentials(settings.data_dir, settings.store_url)
        self.worker_config: dict[str, Any] = {
            # The worker keeps its stores in data_dir/whatsmeow, where `Credentials` looks too.
            "data_dir": str(settings.data_dir),
            "store_url": settings.store_url,
            "proxy": proxy or settings.whatsmeow_proxy or None,
            "backoff_base": backoff_base or settings.whatsmeow_backoff_base_seconds,
            "backoff_cap": backoff_cap or settings.whatsmeow_backoff_cap_seconds,
            # Dials in flight at once (a start-up with 1,000 stored sessions never storms WhatsApp) and the
            # one database pool of every device of the node.
            "max_dials": max_dials or settings.whatsmeow_max_dials,
            "db_connections": db_connections or settings.whatsmeow_db_connections,
            "test_hooks": test_hooks,
        }
        self.restart_base, self.restart_cap = restart_base, restart_cap
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self._sink: EngineSink | None = None
        self._worker: WorkerProcess | None = None
        self._ready = False
        self._ready_event = asyncio.Event()
        self._stopping = False
        self._wanted: dict[str, int] = {}  # instance → generation of its current connect
        self._ended: set[str] = set()  # finished on a terminal error: not resumed after a restart
        self._accounts: dict[str, Account] = {}
        self._gens = itertools.count(1)
        self._lease_until: float | None = None  # time.monotonic() deadline given by the cluster; None: none
        self._supervisor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.restarts = 0
        self.crashes = 0
        # Recent dial failures per instance, (monotonic time, attempt, retry delay): for tests and logs.
        self.retries: dict[str, collections.deque[tuple[float, int, float]]] = {}

    # -- port: lifecycle -------------------------------------------------------------------------

    async def start(self, sink: EngineSink) -> None:
        self._sink = sink
        await asyncio.to_thread(self.credentials.prepare)
        # Returns at once: /health never waits for the worker.
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        deadline = time.monotonic() + STOP_BUDGET
        self._stopping = True
        self._ready = False
        self._wanted.clear()  # nothing more is reported once stop returns
        worker = self._worker
        if worker is not None and worker.alive:
            with contextlib.suppress(WorkerGone, WorkerTimeout, WorkerError):
                await worker.call("shutdown", {"budget": 3.0}, within=4.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(worker.exited.wait(), max(0.1, min(1.0, deadline - time.monotonic())))
            await worker.terminate(grace=max(0.1, min(2.0, deadline - time.monotonic() - 2.0)))
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        for task in list(self._background):
            task.cancel()
        if worker is not None:
            worker.close()

    # -- port: commands --------------------------------------------------------------------------

    async def connect(self, instance_id: str) -> None:
        gen = self._wanted[instance_id] = next(self._gens)
        self._ended.discard(instance_id)
        if self._ready:
            self._spawn(self._send_connect(instance_id, gen))
        # Otherwise the supervisor dials it as soon as the worker is up.

    async def disconnect(self, instance_id: str) -> None:
        self._wanted.pop(instance_id, None)
        self._ended.discard(instance_id)
        await self._best_effort("disconnect", instance_id)

    async def logout(self, instance_id: str) -> None:
        self._wanted.pop(instance_id, None)
        self._ended.discard(instance_id)
        self._accounts.pop(instance_id, None)
        if not await self._best_effort("logout", instance_id, within=15.0):
            # No worker to unlink through: at least the credentials go.
            await asyncio.to_thread(self.credentials.delete, instance_id)

    async def forget(self, instance_id: str) -> None:
        self._wanted.pop(instance_id, None)
        self._ended.discard(instance_id)
        self._accounts.pop(instance_id, None)
        if not await self._best_effort("forget", instance_id):
            await asyncio.to_thread(self.credentials.delete, instance_id)

    async def pair_code(self, instance_id: str, phone: str) -> str:
        return str(await self._command("pair_code", {"instance": instance_id, "phone": phone}, 25.0))

    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        try:
            args = {"instance": instance_id, "jid": jid, "text": text, "message_id": message_id}
            # Lost in flight: maybe handed to WhatsApp, maybe not; the caller may retry with its
            # idempotency key.
            result = await self._call("send", args, SEND_RPC_TIMEOUT, lost=SendOutcomeUnknown)
        except WorkerError as exc:
            if exc.kind == protocol.SEND_OUTCOME_UNKNOWN:
                raise SendOutcomeUnknown(str(exc)) from exc
            raise _refusal(exc, SendFailed) from exc
        except WorkerTimeout as exc:
            raise SendOutcomeUnknown(f"the WhatsApp worker did not answer the send: {exc}") from exc
        return SentMessage(str(result["id"]), _timestamp(int(result.get("timestamp") or 0)))

    async def check_numbers(self, instance_id: str, phones: list[str]) -> dict[str, str | None]:
        found = await self._command("check_numbers", {"instance": instance_id, "phones": phones}, 20.0)
        return {phone: (str(found[phone]) if found.get(phone) else None) for phone in phones}

    async def account(self, instance_id: str) -> Account | None:
        cached = self._accounts.get(instance_id)
        if cached is not None or not self._ready:
            return cached
        try:
            raw = await self._call("account", {"instance": instance_id}, 5.0)
        except (EngineNotReady, WorkerError, WorkerTimeout):
            return None
        return _account(raw) if isinstance(raw, dict) else None

    async def lease(self, seconds: float) -> None:
        # An instant of CLOCK_MONOTONIC, which the worker reads too: a frame read late cannot move it later.
        self._lease_until = time.monotonic() + seconds
        self._post_lease(self._worker if self._ready else None)

    def _post_lease(self, worker: WorkerProcess | None) -> None:
        if worker is None or self._lease_until is None:
            return
        with contextlib.suppress(WorkerGone, ConnectionError, RuntimeError):
            worker.post("lease", {"until": self._lease_until})

    # Calls to the worker's test-only operations live in tests/support/whatsmeow.py (TestableEngine).

    async def wait_ready(self, within: float = 60.0) -> int:
        """Wait until a worker is up (tests, benches); returns its pid."""
        async with asyncio.timeout(within):
            while True:
                await self._ready_event.wait()
                pid = self.worker_pid
                if pid is not None:
                    return pid
                await asyncio.sleep(0.01)

    @property
    def worker_pid(self) -> int | None:
        worker = self._worker
        return worker.pid if worker is not None and worker.alive and self._ready else None

    # -- supervision -----------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        first = True
        while not self._stopping:
            worker = self._worker = WorkerProcess(self._on_event)
            started = time.monotonic()
            try:
                await worker.spawn({"config": self.worker_config, "log_level": self.settings.log_level},
                                   INIT_TIMEOUT)
            except Exception as exc:
                log(logger, logging.ERROR, "whatsmeow worker failed to start", error=repr(exc)[:500],
                    tail=list(worker.tail)[-10:])
                worker.kill()
            else:
                # A new worker gets the cluster's deadline before anything else, the sessions it resumes
                # included (the worker applies a lease in pipe order).
                self._post_lease(worker)
                self._ready = True
                self._ready_event.set()
                log(logger, logging.INFO, "whatsmeow worker ready", worker_pid=worker.pid,
                    restart=not first, startup_s=round(time.monotonic() - started, 3))
                self._resume(announce=not first)
                first = False
                pinger = asyncio.get_running_loop().create_task(self._ping(worker))
                await worker.exited.wait()
                pinger.cancel()
            await worker.exited.wait()
            self._ready = False
            self._ready_event.clear()
            worker.close()
            if self._stopping:
                return
            self._crashed(worker)
            failures = 1 if time.monotonic() - started > HEALTHY_AFTER else failures + 1
            await asyncio.sleep(min(self.restart_cap, self.restart_base * 2 ** (failures - 1)))
            self.restarts += 1

    def _crashed(self, worker: WorkerProcess) -> None:
        self.crashes += 1
        code = worker.proc.returncode if worker.proc is not None else None
        log(logger, logging.ERROR, "whatsmeow worker died; restarting it", worker_pid=worker.pid,
            exit_code=code, sessions=len(self._wanted), tail="\n".join(list(worker.tail)[-20:]))
        for instance_id in list(self._wanted):
            if instance_id in self._ended:
                continue
            self._notify("qr_changed", instance_id, None, None)
            self._notify("status_changed", instance_id, SessionStatus.ERROR, Reason.ENGINE_CRASHED)

    def _resume(self, announce: bool) -> None:
        for instance_id, gen in list(self._wanted.items()):
            if instance_id in self._ended:
                continue
            if announce:
                self._notify("status_changed", instance_id, SessionStatus.INIT, None)
            self._spawn(self._send_connect(instance_id, gen))

    async def _ping(self, worker: WorkerProcess) -> None:
        while worker.alive:
            await asyncio.sleep(self.ping_interval)
            try:
                await worker.call("ping", within=self.ping_timeout)
            except WorkerTimeout:
                log(logger, logging.ERROR, "whatsmeow worker unresponsive; killing it", worker_pid=worker.pid)
                worker.kill()
                return
            except WorkerGone:
                return

    # -- events from the worker ------------------------------------------------------------------

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("ev")
        instance_id = str(message.get("instance"))
        if self._stopping or self._wanted.get(instance_id) != message.get("gen"):
            return  # disconnected since, or an older connection's late event
        if kind == "status":
            status = SessionStatus(str(message["status"]))
            if "attempt" in message:
                history = self.retries.setdefault(instance_id, collections.deque(maxlen=50))
                history.append((time.monotonic(), int(message["attempt"]), float(message["retry_in"])))
            self._notify("status_changed", instance_id, status, message.get("reason"))
        elif kind == "qr":
            expires = message.get("expires_at")
            at = datetime.fromtimestamp(float(expires), UTC) if expires else None
            self._notify("qr_changed", instance_id, message.get("payload"), at)
        elif kind == "paired":
            account = _account(message.get("account"))
            if account is not None:
                self._accounts[instance_id] = account
                self._notify("paired", instance_id, account)
        elif kind == "unpaired":
            self._accounts.pop(instance_id, None)
            self._notify("unpaired", instance_id)
        elif kind == "ended":
            self._ended.add(instance_id)
        elif kind == "receipt":
            at = datetime.fromtimestamp(float(message["at"]), UTC)
            self._notify("message_status", instance_id, str(message["message_id"]),
                         MessageStatus(str(message["status"])), at)

    def _notify(self, method: str, *args: Any) -> None:
        if self._sink is None:
            return
        try:
            getattr(self._sink, method)(*args)
        except Exception:
            logger.exception("engine sink failed", extra={"fields": {"method": method}})

    # -- calls -----------------------------------------------------------------------------------

    async def _call(self, op: str, args: dict[str, Any], within: float,
                    lost: type[EngineError] = EngineNotReady) -> Any:
        """One RPC; `lost` is raised when the worker dies with the call in flight."""
        worker = self._worker
        if not self._ready or worker is None:
            raise EngineNotReady("the WhatsApp worker is (re)starting; try again in a few seconds")
        try:
            return await worker.call(op, args, within)
        except WorkerGone as exc:
            raise lost(f"the WhatsApp worker stopped: {exc}") from exc

    async def _command(self, op: str, args: dict[str, Any], within: float) -> Any:
        """One RPC of a command other than send: a refusal or no answer in time is the port's EngineError."""
        try:
            return await self._call(op, args, within)
        except WorkerError as exc:
            raise _refusal(exc, EngineError) from exc
        except WorkerTimeout as exc:
            raise EngineError(str(exc)) from exc

    async def _send_connect(self, instance_id: str, gen: int) -> None:
        try:
            await self._call("connect", {"instance": instance_id, "gen": gen}, CALL_TIMEOUT)
        except (EngineNotReady, WorkerError, WorkerTimeout) as exc:
            # A dead worker is handled by the supervisor (ENGINE_CRASHED, then resume); log the rest.
            log(logger, logging.WARNING, "connect not delivered to the worker", instance_id=instance_id,
                error=repr(exc)[:300])

    async def _best_effort(self, op: str, instance_id: str, within: float = CALL_TIMEOUT) -> bool:
        try:
            await self._call(op, {"instance": instance_id}, within)
            return True
        except (EngineNotReady, WorkerError, WorkerTimeout) as exc:
            log(logger, logging.WARNING, f"{op} not confirmed by the worker", instance_id=instance_id,
                error=repr(exc)[:300])
            return False

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _refusal(exc: WorkerError, otherwise: type[EngineError]) -> EngineError:
    """The port's error for a worker's refusal: EngineNotReady when the session is not ready, else `otherwise`."""
    if exc.kind == protocol.NOT_READY:
        return EngineNotReady(str(exc))
    return otherwise(str(exc))


def _account(raw: Any) -> Account | None:
    if not isinstance(raw, dict) or not raw.get("jid"):
        return None
    return Account(str(raw["jid"]), str(raw.get("phone") or ""), raw.get("push_name") or None)


def _timestamp(value: int) -> datetime:
    if value <= 0:
        return datetime.now(UTC)
    while value > 10**11:  # milli-, micro- or nanoseconds: accepted, whatever the worker sends
        value //= 1000
    return datetime.fromtimestamp(value, UTC)
