"""Worker side: the sessions of this worker process and the operations the engine asks for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from neonize._binder import gocode
from neonize.exc import NeonizeError
from neonize.proto.Neonize_pb2 import JID
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

from leadmaster.common.logs import log
from leadmaster.contract.status import SessionStatus
from leadmaster.session_manager.engines.whatsmeow import protocol
from leadmaster.session_manager.engines.whatsmeow.credentials import Credentials
from leadmaster.session_manager.engines.whatsmeow.sessions import (
    CONNECT_SETTLE_SECONDS,
    GO_CALL_TIMEOUT,
    Client,
    Emit,
    Session,
    WorkerConfig,
    proxy_settings,
)

logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow.worker")

T = TypeVar("T")

SEND_TIMEOUT = 20.0
PAIR_TIMEOUT = 20.0
LOGOUT_TIMEOUT = 8.0


class OpError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Manager:
    def __init__(self, config: WorkerConfig, emit: Emit) -> None:
        self.config = config
        self.emit = emit
        self.credentials = Credentials(Path(config.data_dir), config.store_url)
        self.credentials.prepare()
        self.sessions: dict[str, Session] = {}
        # One lock around every Go call that writes (or briefly reads) neonize's unlocked client maps.
        self.go_lock = asyncio.Lock()
        self.dials = 0
        self._recycle_asked = False
        self._signals: dict[int, asyncio.Event] = {}

    # -- helpers used by sessions ----------------------------------------------------------------

    async def dial(self, client: Client, session: Session) -> asyncio.Task[None]:
        """Start neonize's blocking connect, holding the lock until the Go side has set itself up."""
        settle = CONNECT_SETTLE_SECONDS * (4 if self.config.store_url else 1)
        async with self.go_lock:
            sign = self._signals[id(client)] = asyncio.Event()
            try:
                task: asyncio.Task[None] = await client.connect(proxy_settings(self.config.proxy))
                waiter = asyncio.ensure_future(sign.wait())
                await asyncio.wait({task, waiter}, timeout=settle, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
            finally:
                self._signals.pop(id(client), None)
        self.dials += 1
        # Each neonize connect leaves one SQLite handle open (~0.2 MB) that nothing closes: past a budget,
        # ask the engine for a planned restart of this worker instead of leaking without bound.
        if self.dials >= self.config.recycle_after_dials and not self._recycle_asked:
            self._recycle_asked = True
            self.emit({"ev": "recycle", "dials": self.dials})
        return task

    def signal(self, client: Client) -> None:
        sign = self._signals.get(id(client))
        if sign is not None:
            sign.set()

    async def stop_go(self, client: Client) -> None:
        await self.go_locked(asyncio.to_thread(gocode.Stop, client.uuid), default=None)

    async def go_locked(self, call: Awaitable[T], default: Any = None) -> Any:
        async with self.go_lock:
            try:
                return await asyncio.wait_for(call, GO_CALL_TIMEOUT)
            except (TimeoutError, NeonizeError, OSError) as exc:
                log(logger, logging.WARNING, "neonize call failed", error=repr(exc)[:300])
                return default

    def forget_credentials_later(self, session: Session) -> None:
        async def _forget() -> None:
            if session.task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(session.task), GO_CALL_TIMEOUT)
            await asyncio.to_thread(self.credentials.delete, session.instance_id)

        asyncio.get_running_loop().create_task(_forget())

    # -- operations ------------------------------------------------------------------------------

    async def handle(self, op: str, args: dict[str, Any]) -> Any:
        method = getattr(self, f"op_{op}", None)
        if method is None or (op.startswith("test_") and not self.config.test_hooks):
            raise OpError(protocol.BAD_REQUEST, f"unknown operation {op!r}")
        return await method(**args)

    async def op_ping(self) -> dict[str, Any]:
        return {"sessions": len(self.sessions), "dials": self.dials, "fds": _open_fds(), "pid": os.getpid()}

    async def op_connect(self, instance: str, gen: int) -> dict[str, Any]:
        await self._drop(instance)
        session = self.sessions[instance] = Session(self, instance, gen)
        session.task = asyncio.get_running_loop().create_task(session.run())
        return {"started": True}

    async def op_disconnect(self, instance: str) -> dict[str, Any]:
        await self._drop(instance)
        return {"stopped": True}

    async def op_logout(self, instance: str) -> dict[str, Any]:
        session = self.sessions.get(instance)
        unlinked = False
        if session is not None and session.client is not None and session.dialed:
            client = session.client
            try:
                # Unlinks the device and deletes its credentials on the Go side (no LoggedOutEv follows).
                await asyncio.wait_for(client.logout(), LOGOUT_TIMEOUT)
                unlinked = True
            except Exception as exc:
                log(logger, logging.WARNING, "logout could not reach WhatsApp; deleting local credentials",
                    instance_id=instance, error=repr(exc)[:300])
        await self._drop(instance)
        await asyncio.to_thread(self.credentials.delete, instance)
        return {"unlinked": unlinked}

    async def op_forget(self, instance: str) -> dict[str, Any]:
        await self._drop(instance)
        await asyncio.to_thread(self.credentials.delete, instance)
        return {"forgotten": True}

    async def op_pair_code(self, instance: str, phone: str) -> str:
        session = self._live(instance, SessionStatus.QR_REQUIRED)
        assert session.client is not None
        try:
            code: str = await asyncio.wait_for(
                session.client.PairPhone(phone, show_push_notification=True), PAIR_TIMEOUT
            )
        except TimeoutError as exc:
            raise OpError(protocol.FAILED, "WhatsApp did not answer the pairing request in time") from exc
        except NeonizeError as exc:
            raise OpError(protocol.FAILED, f"WhatsApp refused the pairing code request: {exc}") from exc
        return code

    async def op_send(self, instance: str, jid: str, text: str) -> dict[str, Any]:
        session = self._live(instance, SessionStatus.READY)
        assert session.client is not None
        user, _, server = jid.partition("@")
        to = JID(User=user, Server=server or "s.whatsapp.net", Device=0, RawAgent=0, Integrator=0,
                 IsEmpty=False)
        # A Message, never a str: neonize would scan a str for group mentions over the network.
        sending = session.client.send_message(to, Message(conversation=text))
        try:
            resp = await asyncio.wait_for(sending, SEND_TIMEOUT)
        except TimeoutError as exc:
            message = f"WhatsApp did not confirm the send within {SEND_TIMEOUT:.0f}s"
            raise OpError(protocol.SEND_FAILED, message) from exc
        except NeonizeError as exc:
            raise OpError(protocol.SEND_FAILED, f"WhatsApp failed the send: {exc}") from exc
        return {"id": resp.ID, "timestamp": int(resp.Timestamp)}

    async def op_account(self, instance: str) -> dict[str, Any] | None:
        session = self.sessions.get(instance)
        return session.account if session is not None else None

    async def op_shutdown(self, budget: float = 4.0) -> dict[str, Any]:
        sessions = list(self.sessions.values())
        self.sessions.clear()
        with contextlib.suppress(TimeoutError):
            drops = asyncio.gather(*(s.drop() for s in sessions), return_exceptions=True)
            await asyncio.wait_for(drops, budget)
        return {"stopped": len(sessions)}

    async def op_test_attach(self, instance: str, gen: int) -> dict[str, Any]:
        """Test hook: a session wired to a real neonize client, without dialing (events are then driven)."""
        await self._drop(instance)
        session = self.sessions[instance] = Session(self, instance, gen)
        session.new_client()
        return {"attached": True}

    async def op_test_drive(self, instance: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
        from leadmaster.session_manager.engines.whatsmeow.testhooks import drive

        session = self.sessions.get(instance)
        if session is None or session.client is None:
            raise OpError(protocol.NOT_READY, f"no session {instance!r} to drive")
        await asyncio.to_thread(drive, session.client, steps)
        return {"driven": len(steps)}

    async def op_test_go_crash(self) -> dict[str, Any]:
        """Test hook: a real Go-side crash (GetMe on a client Go never created dereferences nil)."""
        await asyncio.to_thread(gocode.GetMe, b"no-such-client")
        return {"survived": True}

    async def op_test_hang(self, seconds: float) -> dict[str, Any]:
        """Test hook: block this worker's event loop, as a stuck Go call holding the GIL would."""
        import time

        time.sleep(seconds)  # noqa: ASYNC251 - blocking on purpose
        return {"slept": seconds}

    # -- internals -------------------------------------------------------------------------------

    def _live(self, instance: str, status: SessionStatus) -> Session:
        session = self.sessions.get(instance)
        if session is None or session.client is None or not session.dialed or session.status is not status:
            current = session.status.value if session is not None and session.status else "DISCONNECTED"
            raise OpError(protocol.NOT_READY, f"session {instance!r} is {current}, not {status.value}")
        return session

    async def _drop(self, instance: str) -> None:
        session = self.sessions.pop(instance, None)
        if session is not None:
            await session.drop()


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1
