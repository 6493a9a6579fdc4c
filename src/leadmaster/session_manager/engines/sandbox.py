"""The sandbox engine: a WhatsApp simulator with real, rotating, scannable QR payloads (CONTRACT §2.1).

It is a product feature (like a payment provider's test mode): what it keeps durably (its linked phones and
WhatsApp's copy of sent messages) goes through `SandboxStorage`, which the store implements in the same database
as the service's bookkeeping, so restarts behave the same way; faults can be injected on request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import secrets
import string
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from leadmaster.contract.status import MessageStatus, Reason, SessionStatus
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines.base import (
    Account,
    Engine,
    EngineNotReady,
    EngineSink,
    SendFailed,
    SentMessage,
    current_send,
)

logger = logging.getLogger("leadmaster.session_manager.engines.sandbox")

# How long a freshly scanned session stays AUTHENTICATED before READY (the real one syncs keys meanwhile).
AUTHENTICATED_SECONDS = 0.3
_PAIR_ALPHABET = string.ascii_uppercase + string.digits

# Sandbox message IDs need to be unique, not secret: a generator seeded once, rather than a getrandom system
# call per send (measurable on the send path).
_ids = random.Random(secrets.token_bytes(16))


class SandboxStorage(Protocol):
    """What the simulator keeps durably; the store implements it and `create_app` wires it in.

    `device` mirrors whatsmeow's device store: the engine learns from its own record of a linked phone, not
    from the service's paired bookkeeping, whether `connect` resumes or shows a QR. The outbox stands for
    WhatsApp's servers: one message per (instance, message ID).
    """

    async def device(self, instance_id: str) -> Account | None:
        """The linked phone's account, or None when the instance has no credentials."""
        ...

    def save_device(self, instance_id: str, account: Account) -> Awaitable[bool]:
        """Queue the credentials write (in order with every other write); await it to know it is durable."""
        ...

    def delete_device(self, instance_id: str) -> Awaitable[bool]:
        """Queue the deletion of the credentials."""
        ...

    async def add_outbox(self, instance_id: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        """Add a sent message, or return the entry already there under its message_id.

        Raises `EngineNotReady` when this node may not write for the instance (a cluster moved it elsewhere).
        """
        ...

    async def outbox(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's sent messages, oldest first."""
        ...


class NoQrToScan(Exception):
    """Scan asked while the session shows no QR."""


@dataclass
class _Sim:
    status: SessionStatus = SessionStatus.DISCONNECTED
    task: asyncio.Task[None] | None = None
    send_errors: int = 0
    send_delay_ms: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    undelivered: bool = False  # later messages get no receipts: they stay SENT
    not_on_whatsapp: set[str] = field(default_factory=set)  # digits that check as not on WhatsApp
    lookups: int = 0  # numbers asked about through check_numbers (tests read it)
    # Bumped by every cancel: receipts scheduled before it are not reported, and a connect that was reading the
    # store knows it is stale.
    generation: int = 0


def _qr_payload() -> str:
    """A payload shaped like whatsmeow's: ref,noise-key,identity-key,adv-secret (base64 parts)."""

    def b64(n: int) -> str:
        return base64.b64encode(secrets.token_bytes(n)).decode()

    return f"2@{b64(24)},{b64(32)},{b64(32)},{b64(32)}"


class SandboxEngine(Engine):
    name: ClassVar[str] = "sandbox"
    # Like WhatsApp, the outbox keeps one message per ID: a re-send under a known ID answers as the first did.
    chooses_message_id: ClassVar[bool] = True

    def __init__(self, settings: Settings, storage: SandboxStorage) -> None:
        self.settings = settings
        self.storage = storage
        self.sims: dict[str, _Sim] = {}
        self._sink: EngineSink | None = None

    @property
    def sink(self) -> EngineSink:
        assert self._sink is not None, "engine not started"
        return self._sink

    async def start(self, sink: EngineSink) -> None:
        self._sink = sink

    async def stop(self) -> None:
        for instance_id in list(self.sims):
            self._cancel(instance_id)

    def _sim(self, instance_id: str) -> _Sim:
        return self.sims.setdefault(instance_id, _Sim())

    def _cancel(self, instance_id: str) -> None:
        sim = self.sims.get(instance_id)
        if sim is None:
            return
        for task in [sim.task, *sim.tasks]:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        sim.task, sim.tasks = None, set()
        sim.status = SessionStatus.DISCONNECTED
        sim.generation += 1

    def _spawn(self, instance_id: str, coro: Any) -> None:
        sim = self._sim(instance_id)
        task = asyncio.get_running_loop().create_task(coro)
        sim.tasks.add(task)
        task.add_done_callback(sim.tasks.discard)

    def _emit(self, instance_id: str, status: SessionStatus, reason: str | None = None) -> None:
        self._sim(instance_id).status = status
        self.sink.status_changed(instance_id, status, reason)

    async def connect(self, instance_id: str) -> None:
        self._cancel(instance_id)
        sim = self._sim(instance_id)
        generation = sim.generation
        device = await self.storage.device(instance_id)
        if sim.generation != generation or self.sims.get(instance_id) is not sim:
            return  # disconnected (or forgotten) while the device was read: emit nothing more
        if device is not None:
            sim.task = asyncio.get_running_loop().create_task(self._resume(instance_id))
        else:
            sim.task = asyncio.get_running_loop().create_task(self._qr_loop(instance_id))

    async def _resume(self, instance_id: str) -> None:
        await asyncio.sleep(0)  # Let `connect` answer INIT first, as a real dial would.
        self._emit(instance_id, SessionStatus.READY)

    async def _qr_loop(self, instance_id: str) -> None:
        s = self.settings
        auto_pair_at = asyncio.get_running_loop().time() + s.sandbox_auto_pair_seconds
        for i in range(s.sandbox_qr_count):
            lifetime = s.sandbox_qr_first_seconds if i == 0 else s.sandbox_qr_seconds
            self.sink.qr_changed(instance_id, _qr_payload(), datetime.now(UTC) + timedelta(seconds=lifetime))
            if i == 0:
                self._emit(instance_id, SessionStatus.QR_REQUIRED)
            if s.sandbox_auto_pair_seconds > 0:
                wait = auto_pair_at - asyncio.get_running_loop().time()
                if wait <= lifetime:
                    await asyncio.sleep(max(wait, 0))
                    self._pair(instance_id, None)
                    return
            await asyncio.sleep(lifetime)
        self.sink.qr_changed(instance_id, None, None)
        self._emit(instance_id, SessionStatus.ERROR, Reason.QR_TIMEOUT)

    def _pair(self, instance_id: str, phone: str | None) -> None:
        """The phone accepted the link: credentials stored, AUTHENTICATED now, READY shortly after."""
        sim = self._sim(instance_id)
        if sim.task is not None and sim.task is not asyncio.current_task():
            sim.task.cancel()
        sim.task = None
        self.sink.qr_changed(instance_id, None, None)
        digits = phone or "1555" + str(int(hashlib.sha256(instance_id.encode()).hexdigest(), 16))[:7]
        account = Account(f"{digits}@s.whatsapp.net", digits, f"Sandbox {instance_id}")
        # Credentials first, then the event, as whatsmeow stores its device before reporting PairSuccess;
        # READY waits until they are durable, so a restart after READY always resumes.
        saved = asyncio.ensure_future(self.storage.save_device(instance_id, account))
        self.sink.paired(instance_id, account)
        self._emit(instance_id, SessionStatus.AUTHENTICATED)
        self._spawn(instance_id, self._ready_after(instance_id, AUTHENTICATED_SECONDS, saved))

    async def _ready_after(self, instance_id: str, seconds: float, saved: Awaitable[bool] | None = None) -> None:
        await asyncio.sleep(seconds)
        if saved is not None:
            try:
                await saved
            except Exception:
                logger.exception("sandbox device write failed", extra={"fields": {"instance_id": instance_id}})
        if self._sim(instance_id).status in (SessionStatus.AUTHENTICATED, SessionStatus.DISCONNECTED):
            self._emit(instance_id, SessionStatus.READY)

    # -- sandbox-only controls (CONTRACT §2.1) ----------------------------------------------------

    def scan(self, instance_id: str, phone: str | None = None) -> None:
        if self._sim(instance_id).status is not SessionStatus.QR_REQUIRED:
            raise NoQrToScan(instance_id)
        self._pair(instance_id, phone)

    async def outbox(self, instance_id: str) -> list[dict[str, Any]]:
        return await self.storage.outbox(instance_id)

    async def inject(self, instance_id: str, faults: dict[str, Any]) -> None:
        """Apply validated faults (see api/routes/sandbox.py for the accepted shapes)."""
        sim = self._sim(instance_id)
        if "send_error" in faults:
            sim.send_errors = faults["send_error"]
        if "send_delay_ms" in faults:
            sim.send_delay_ms = faults["send_delay_ms"]
        if "undelivered" in faults:
            sim.undelivered = faults["undelivered"]
        if "not_on_whatsapp" in faults:
            sim.not_on_whatsapp = set(faults["not_on_whatsapp"])
        if faults.get("drop_connection") and sim.status is SessionStatus.READY:
            self._emit(instance_id, SessionStatus.DISCONNECTED, Reason.CONNECTION_LOST)
            self._spawn(instance_id, self._ready_after(instance_id, faults.get("reconnect_after_ms", 1000) / 1000))
        if faults.get("logout"):
            self._cancel(instance_id)
            await self.storage.delete_device(instance_id)  # gone before anyone can ask to connect again
            self.sink.unpaired(instance_id)
            self._emit(instance_id, SessionStatus.ERROR, Reason.LOGGED_OUT)

    # -- the port ---------------------------------------------------------------------------------

    async def disconnect(self, instance_id: str) -> None:
        self._cancel(instance_id)

    async def logout(self, instance_id: str) -> None:
        self._cancel(instance_id)
        await self.storage.delete_device(instance_id)

    async def forget(self, instance_id: str) -> None:
        self.sims.pop(instance_id, None)

    async def pair_code(self, instance_id: str, phone: str) -> str:
        if self._sim(instance_id).status is not SessionStatus.QR_REQUIRED:
            raise EngineNotReady("no QR flow in progress")
        code = "".join(secrets.choice(_PAIR_ALPHABET) for _ in range(8))
        return f"{code[:4]}-{code[4:]}"

    async def send_text(
        self, instance_id: str, jid: str, text: str, message_id: str | None = None
    ) -> SentMessage:
        sim = self._sim(instance_id)
        if sim.send_delay_ms:
            await asyncio.sleep(sim.send_delay_ms / 1000)
        if sim.status is not SessionStatus.READY:
            raise EngineNotReady("connection dropped")
        if sim.send_errors > 0:
            sim.send_errors -= 1
            raise SendFailed("sandbox fault: send_error")
        ctx = current_send.get()
        sent = SentMessage(message_id or f"3EB0{_ids.getrandbits(72):018X}", datetime.now(UTC))
        # EngineNotReady when another node owns the instance now: like WhatsApp refusing a replaced connection.
        first = await self.storage.add_outbox(
            instance_id,
            {
                "message_id": sent.message_id,
                "cliente_id": ctx.cliente_id if ctx else 0,
                "to": ctx.to if ctx else jid,
                "jid": jid,
                "message": text,
                "timestamp": sent.timestamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            },
        )
        if first is not None:
            # WhatsApp treats a re-send under the same ID as the one message it already has.
            return SentMessage(first["message_id"], datetime.fromisoformat(first["timestamp"]))
        if not sim.undelivered:
            self._schedule_receipts(instance_id, sim, sent.message_id)
        return sent

    def _schedule_receipts(self, instance_id: str, sim: _Sim, message_id: str) -> None:
        """The recipient's phone: DELIVERED after SANDBOX_DELIVERY_MS, READ after SANDBOX_READ_MS (CONTRACT §5)."""
        loop = asyncio.get_running_loop()
        generation = sim.generation
        # Timer handles rather than tasks: two per message, and cheap to let fire into nothing after a disconnect.
        for delay_ms, status in (
            (self.settings.sandbox_delivery_ms, MessageStatus.DELIVERED),
            (self.settings.sandbox_read_ms, MessageStatus.READ),
        ):
            loop.call_later(delay_ms / 1000, self._receipt, instance_id, sim, generation, message_id, status)

    def _receipt(self, instance_id: str, sim: _Sim, generation: int, message_id: str, status: MessageStatus) -> None:
        if self.sims.get(instance_id) is sim and sim.generation == generation:
            self.sink.message_status(instance_id, message_id, status, datetime.now(UTC))

    async def check_numbers(self, instance_id: str, phones: list[str]) -> dict[str, str | None]:
        sim = self._sim(instance_id)
        if sim.status is not SessionStatus.READY:
            raise EngineNotReady("not connected")
        sim.lookups += len(phones)
        return {p: None if p in sim.not_on_whatsapp else f"{p}@s.whatsapp.net" for p in phones}

    async def account(self, instance_id: str) -> Account | None:
        return await self.storage.device(instance_id)

