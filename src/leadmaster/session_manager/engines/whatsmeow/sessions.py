"""Worker side: one neonize client per instance, its callbacks and events turned into port statuses.

Runs only inside the worker process (it imports neonize). Every status goes out through `emit`, tagged with
the generation the engine gave to `connect`, so that the engine can drop events of an older generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from neonize._binder import ProxySettings
from neonize.aioze.client import NewAClient
from neonize.aioze.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    PairStatusEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.exc import NeonizeError

from leadmaster.common.logs import log
from leadmaster.contract.status import Reason, SessionStatus
from leadmaster.session_manager.engines.whatsmeow import backoff
from leadmaster.session_manager.engines.whatsmeow.credentials import DeviceJid

if TYPE_CHECKING:
    from leadmaster.session_manager.engines.whatsmeow.manager import Manager

logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow.worker")

Emit = Callable[[dict[str, Any]], None]

FIRST_QR_SECONDS = 60.0
NEXT_QR_SECONDS = 20.0
GO_CALL_TIMEOUT = 5.0
# Neonize() writes the Go side's unlocked client maps before it dials; hold the process-wide lock
# until the first sign of life (or this long) so that two of those writes never overlap.
CONNECT_SETTLE_SECONDS = 0.5
_TERMINAL = frozenset({Reason.QR_TIMEOUT, Reason.LOGGED_OUT, Reason.TEMPORARY_BAN, Reason.STREAM_REPLACED})


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    data_dir: str
    store_url: str | None
    proxy: str | None
    backoff_base: float
    backoff_cap: float
    recycle_after_dials: int
    test_hooks: bool


class Client(NewAClient):  # type: ignore[misc]
    """NewAClient whose private login-status callback (the only place a QR timeout shows) is forwarded."""

    on_login_status: Callable[[str], None] | None = None

    def _NewAClient__onLoginStatus(self, uuid: int, status: int) -> None:
        callback = self.on_login_status
        if callback is not None and status:
            callback(ctypes.string_at(status).decode(errors="replace"))


def jid_text(jid: Any) -> str:
    return f"{jid.User}@{jid.Server}"


class Session:
    def __init__(self, manager: Manager, instance_id: str, gen: int) -> None:
        self.manager = manager
        self.instance_id = instance_id
        self.gen = gen
        self.wanted = True
        self.status: SessionStatus | None = None
        self.reason: str | None = None
        self.client: Client | None = None
        self.dialed = False
        self.qr_count = 0
        self.attempt = 0
        self.no_retry = False
        self.account: dict[str, Any] | None = None
        self.task: asyncio.Task[None] | None = None

    # -- reporting -------------------------------------------------------------------------------

    def emit(self, ev: str, **fields: Any) -> None:
        if self.wanted:
            self.manager.emit({"ev": ev, "instance": self.instance_id, "gen": self.gen, **fields})

    def set_status(self, status: SessionStatus, reason: str | None = None, **extra: Any) -> None:
        if status is not SessionStatus.QR_REQUIRED and self.status is SessionStatus.QR_REQUIRED:
            self.emit("qr", payload=None, expires_at=None)
        if (status, reason) == (self.status, self.reason) and not extra:
            return
        self.status, self.reason = status, reason
        self.emit("status", status=status.value, reason=reason, **extra)

    # -- lifecycle -------------------------------------------------------------------------------

    def new_client(self) -> Client:
        creds = self.manager.credentials
        jid = None
        new_device = False
        if creds.store_url:
            known = creds.device(self.instance_id)
            if known is not None and creds.pg_device_exists(known):
                from neonize.proto.Neonize_pb2 import JID

                jid = JID(User=known.user, Server=known.server, Device=known.device, RawAgent=0,
                          Integrator=0, IsEmpty=False)
            else:
                new_device = True
        client = Client(creds.database(self.instance_id), jid=jid, uuid=self.instance_id,
                        new_device=new_device)
        # Our own key on the Go side (neonize would use the phone number when resuming by JID), and no
        # GC finalizer: a collected old client would otherwise Stop() the live one of the same key.
        client.uuid = self.instance_id.encode()
        client._stop_finalizer.detach()
        self._wire(client)
        self.client = client
        return client

    async def run(self) -> None:
        """Dial, live until stopped, and redial failed dials with backoff until told to stop."""
        try:
            await self._run()
        finally:
            # Still wanted yet finished: a terminal error (QR timeout, logged out, ...); never resumed.
            self.emit("ended")

    async def _run(self) -> None:
        cfg = self.manager.config
        while self.wanted:
            client = self.new_client()
            failure: str | None = None
            try:
                task = await self.manager.dial(client, self)
                self.dialed = True
                await task
            except NeonizeError as exc:
                failure = str(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = repr(exc)
            finally:
                self.dialed = False
                await self.manager.stop_go(client)
            if not self.wanted or self.no_retry or (
                self.status is SessionStatus.ERROR and self.reason in _TERMINAL
            ):
                return
            self.attempt += 1
            wait = backoff.delay(self.attempt, cfg.backoff_base, cfg.backoff_cap)
            log(logger, logging.WARNING, "dial failed; retrying", instance_id=self.instance_id,
                attempt=self.attempt, retry_in_s=round(wait, 3), error=(failure or "connection ended")[:300])
            self.set_status(SessionStatus.ERROR, Reason.CONNECT_FAILED, attempt=self.attempt,
                            retry_in=round(wait, 3))
            await asyncio.sleep(wait)

    def halt(self, status: SessionStatus, reason: str | None) -> None:
        """A library event ended this connection: report it, and stop the Go client off this callback."""
        self.set_status(status, reason)
        client = self.client
        if client is not None:
            asyncio.get_running_loop().create_task(self.manager.stop_go(client))

    async def drop(self) -> None:
        """Stop for good (disconnect/logout/shutdown): nothing is emitted afterwards."""
        self.wanted = False
        task = self.task
        if task is not None and not task.done():
            task.cancel()
        if self.client is not None:
            await self.manager.stop_go(self.client)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(task), GO_CALL_TIMEOUT)

    # -- library callbacks ----------------------------------------------------------------------

    def _wire(self, client: Client) -> None:
        loop = asyncio.get_running_loop()

        def on(event_type: Any) -> Callable[[Callable[[Any], Awaitable[None] | None]], None]:
            def register(fn: Callable[[Any], Awaitable[None] | None]) -> None:
                async def handler(_: Any, event: Any) -> None:
                    if self.client is not client:
                        return  # a late event of an older connection attempt
                    self.manager.signal(client)
                    try:
                        result = fn(event)
                        if result is not None:
                            await result
                    except Exception:
                        logger.exception("event handler failed", extra={"fields": {
                            "instance_id": self.instance_id, "event": type(event).__name__}})

                client.event(event_type)(handler)

            return register

        async def on_qr(_: Any, data: bytes) -> None:
            if self.client is client:
                self.manager.signal(client)
                self._on_qr(data.decode(errors="replace"))

        def on_login_status(status: str) -> None:
            loop.call_soon_threadsafe(self._on_login_status, client, status)

        client.event.qr(on_qr)
        client.on_login_status = on_login_status
        on(PairStatusEv)(self._on_pair_status)
        on(ConnectedEv)(self._on_connected)
        on(DisconnectedEv)(self._on_connection_lost)
        on(KeepAliveTimeoutEv)(self._on_connection_lost)
        on(KeepAliveRestoredEv)(self._on_keepalive_restored)
        on(LoggedOutEv)(self._on_logged_out)
        on(StreamReplacedEv)(lambda _e: self.halt(SessionStatus.ERROR, Reason.STREAM_REPLACED))
        on(TemporaryBanEv)(lambda _e: self.halt(SessionStatus.ERROR, Reason.TEMPORARY_BAN))
        on(ConnectFailureEv)(self._on_connect_failure)
        on(ClientOutdatedEv)(self._on_client_outdated)

    def _on_qr(self, payload: str) -> None:
        self.qr_count += 1
        ttl = FIRST_QR_SECONDS if self.qr_count == 1 else NEXT_QR_SECONDS
        self.set_status(SessionStatus.QR_REQUIRED)
        self.attempt = 0
        self.emit("qr", payload=payload, expires_at=time.time() + ttl)

    def _on_login_status(self, client: Client, status: str) -> None:
        if self.client is not client:
            return
        self.manager.signal(client)
        log(logger, logging.INFO, "login status", instance_id=self.instance_id, login_status=status)
        if status == "success":
            self.set_status(SessionStatus.AUTHENTICATED)
        elif status == "timeout":
            self.halt(SessionStatus.ERROR, Reason.QR_TIMEOUT)
        elif status.startswith("err"):
            self.no_retry = True  # a pairing error needs the user (scan again); no automatic retry
            self.halt(SessionStatus.ERROR, Reason.CONNECT_FAILED)

    def _on_pair_status(self, event: Any) -> None:
        if event.Status != PairStatusEv.SUCCESS:
            log(logger, logging.WARNING, "pairing failed", instance_id=self.instance_id, error=event.Error)
            return
        self.set_status(SessionStatus.AUTHENTICATED)
        self._paired(event.ID, None)

    async def _on_connected(self, _event: Any) -> None:
        self.attempt = 0
        client = self.client
        me = getattr(client, "me", None)
        if (me is None or not me.JID.User) and client is not None and self.dialed:
            # Safe only while the Go client is live (get_me on a stopped client is a SIGSEGV).
            me = await self.manager.go_locked(client.get_me())
        if me is not None and me.JID.User:
            self._paired(me.JID, me.PushName or None)
        self.set_status(SessionStatus.READY)

    def _on_connection_lost(self, _event: Any) -> None:
        if self.status in (SessionStatus.READY, SessionStatus.AUTHENTICATED):
            # whatsmeow reconnects by itself; ConnectedEv / KeepAliveRestoredEv bring READY back.
            self.set_status(SessionStatus.DISCONNECTED, Reason.CONNECTION_LOST)

    def _on_keepalive_restored(self, _event: Any) -> None:
        if self.status is SessionStatus.DISCONNECTED:
            self.set_status(SessionStatus.READY)

    def _on_logged_out(self, event: Any) -> None:
        log(logger, logging.WARNING, "logged out by WhatsApp", instance_id=self.instance_id,
            on_connect=bool(event.OnConnect), why=int(event.Reason))
        self.halt(SessionStatus.ERROR, Reason.LOGGED_OUT)
        self.account = None
        self.emit("unpaired")
        self.manager.forget_credentials_later(self)

    def _on_connect_failure(self, event: Any) -> None:
        log(logger, logging.WARNING, "WhatsApp refused the connection", instance_id=self.instance_id,
            why=int(event.Reason), message=event.Message)
        # Not terminal: `run` redials with backoff once the Go client has stopped.
        self.halt(SessionStatus.ERROR, Reason.CONNECT_FAILED)

    def _on_client_outdated(self, _event: Any) -> None:
        self.no_retry = True
        self.halt(SessionStatus.ERROR, Reason.CONNECT_FAILED)

    def _paired(self, jid: Any, push_name: str | None) -> None:
        if not jid.User:
            return
        self.account = {"jid": jid_text(jid), "phone": jid.User, "push_name": push_name}
        self.manager.credentials.remember(self.instance_id, DeviceJid(jid.User, jid.Server, int(jid.Device)))
        self.emit("paired", account=self.account)


def proxy_settings(proxy: str | None) -> ProxySettings | None:
    return ProxySettings(proxy) if proxy else None
