"""The behaviour both engines share, written once: state machine, send serialization (idempotency.py).

Engines report events through the `EngineSink` methods below; HTTP routes call the public coroutines.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from leadmaster.common.logs import log, mask_phone
from leadmaster.contract.ids import is_valid_idempotency_key, is_valid_instance_id
from leadmaster.contract.status import MessageStatus, Reason, SessionStatus
from leadmaster.session_manager import errors
from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.contacts import ContactChecker
from leadmaster.session_manager.engines.base import (
    Account,
    Engine,
    EngineError,
    EngineNotReady,
    SendContext,
    SendFailed,
    SendOutcomeUnknown,
    current_send,
)
from leadmaster.session_manager.idempotency import KeyedSends
from leadmaster.session_manager.messages import MessageLog
from leadmaster.session_manager.metrics import Metrics
from leadmaster.session_manager.parsing import SendBody, json_object, parse_phone, parse_send
from leadmaster.session_manager.store import FenceRejected, Store

logger = logging.getLogger("leadmaster.session_manager.service")

RETRY_AFTER_SECONDS = "5"
_RESTARTABLE = frozenset({SessionStatus.ERROR, SessionStatus.DISCONNECTED})


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Session:
    instance_id: str
    status: SessionStatus = SessionStatus.DISCONNECTED
    reason: str | None = None
    updated_at: datetime = field(default_factory=now)
    qr_payload: str | None = None
    qr_expires_at: datetime | None = None
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def snapshot(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "status": self.status.value,
            "reason": self.reason,
            "updated_at": iso(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer decided by the service (status, JSON body, extra headers)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class SessionService:
    def __init__(self, settings: Settings, engine: Engine, store: Store, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.sessions: dict[str, Session] = {}
        self.keyed = KeyedSends(store, settings.idempotency_ttl_seconds, engine.chooses_message_id)
        self._purge_task: asyncio.Task[None] | None = None
        self.messages = MessageLog(store, settings.message_retention_days)  # CONTRACT §5
        self.contacts = ContactChecker(self)
        # Awaited right before every engine send; a cluster installs its lease check here (cluster/leases.py).
        self.fence: Callable[[str], Awaitable[None]] = _unfenced

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.engine.start(self)
        rows = await self.store.list_instances()
        for row in rows:
            self.sessions.setdefault(row.instance_id, Session(row.instance_id))
        await self.store.purge_idempotency(self.settings.idempotency_ttl_seconds)
        self._purge_task = asyncio.create_task(self._purge_loop())
        self.messages.start()
        if self.settings.connect_on_start:
            # CONTRACT §2.2: best-effort resume of the single-admin instance and every paired one.
            wanted = [self.settings.default_instance] + [r.instance_id for r in rows if r.paired]
            stored = {r.instance_id for r in rows}
            for instance_id in dict.fromkeys(wanted):
                try:
                    # Stored rows need no write: 1,000 of them would hold /health back by seconds on PostgreSQL.
                    await self.resume(instance_id, stored=instance_id in stored)
                except Exception:
                    logger.exception("start-up connect failed", extra={"fields": {"instance_id": instance_id}})

    async def stop(self) -> None:
        if self._purge_task:
            self._purge_task.cancel()
        self.messages.stop()
        try:
            await self.engine.stop()
        finally:
            for s in self.sessions.values():
                if s.status is not SessionStatus.DISCONNECTED:
                    self._set(s, SessionStatus.DISCONNECTED, Reason.SHUTDOWN)
            await self.store.aclose()

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(3600)
            try:
                await self.store.purge_idempotency(self.settings.idempotency_ttl_seconds)
            except Exception:
                logger.exception("idempotency purge failed")

    # -- EngineSink ------------------------------------------------------------------------------

    def status_changed(self, instance_id: str, status: SessionStatus, reason: str | None = None) -> None:
        s = self._session(instance_id)
        if status is not SessionStatus.QR_REQUIRED:
            s.qr_payload = s.qr_expires_at = None
        self._set(s, status, reason)

    def qr_changed(self, instance_id: str, payload: str | None, expires_at: datetime | None) -> None:
        s = self._session(instance_id)
        s.qr_payload, s.qr_expires_at = payload, expires_at

    def paired(self, instance_id: str, account: Account) -> None:
        # Queued in order with every other write; the engine's callback must not wait for the database.
        _log_failure(self.store.set_paired(instance_id, account.jid, account.phone, account.push_name), "paired")
        log(logger, logging.INFO, "paired", instance_id=instance_id, phone=account.phone)

    def unpaired(self, instance_id: str) -> None:
        _log_failure(self.store.set_unpaired(instance_id), "unpaired")
        log(logger, logging.INFO, "unpaired", instance_id=instance_id)

    def message_status(self, instance_id: str, message_id: str, status: MessageStatus, at: datetime) -> None:
        self.messages.apply(instance_id, message_id, status, at)

    def _set(self, s: Session, status: SessionStatus, reason: str | None) -> None:
        if status is SessionStatus.READY or status is SessionStatus.INIT:
            reason = None
        if s.status is status and s.reason == reason:
            return
        log(
            logger,
            logging.INFO,
            "status",
            instance_id=s.instance_id,
            status=status.value,
            previous=s.status.value,
            reason=reason,
        )
        s.status, s.reason, s.updated_at = status, reason, now()

    def _session(self, instance_id: str) -> Session:
        s = self.sessions.get(instance_id)
        if s is None:
            s = self.sessions[instance_id] = Session(instance_id)
        return s

    # -- queries ---------------------------------------------------------------------------------

    @staticmethod
    def check_instance_id(instance_id: str) -> str:
        if not is_valid_instance_id(instance_id):
            raise errors.InvalidInstanceIdError(
                f"instance_id {instance_id[:80]!r} is invalid: use 1-64 of A-Z a-z 0-9 _ -.")
        return instance_id

    def status(self, instance_id: str) -> dict[str, Any]:
        s = self.sessions.get(instance_id)
        return s.snapshot() if s else Session(instance_id).snapshot()

    def list(self) -> list[dict[str, Any]]:
        return [self.sessions[k].snapshot() for k in sorted(self.sessions)]

    def qr(self, instance_id: str) -> tuple[str, datetime] | SessionStatus:
        """The live QR payload and its expiry, or the session's status when there is none."""
        s = self.sessions.get(instance_id)
        if s is None:
            return SessionStatus.DISCONNECTED
        if s.status is SessionStatus.QR_REQUIRED and s.qr_payload and s.qr_expires_at:
            return s.qr_payload, s.qr_expires_at
        return s.status

    async def account(self, instance_id: str) -> dict[str, Any]:
        s = self.sessions.get(instance_id)
        if s is None or s.status is not SessionStatus.READY:
            raise self._not_ready(instance_id)
        acc = await self.engine.account(instance_id)
        if acc is None:
            row = await self.store.get_instance(instance_id)
            if row is None or not row.jid:
                raise self._not_ready(instance_id)
            acc = Account(row.jid, row.phone or "", row.push_name)
        return {"jid": acc.jid, "phone": acc.phone, "push_name": acc.push_name}

    def _not_ready(self, instance_id: str) -> errors.SessionNotReadyError:
        status = self.status(instance_id)["status"]
        return errors.SessionNotReadyError(
            f"WhatsApp session {instance_id!r} is {status}, not READY.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
            status=status,
        )

    # -- commands --------------------------------------------------------------------------------

    async def connect(self, instance_id: str) -> dict[str, Any]:
        return await self._connect(instance_id, ensure_stored=True)

    async def resume(self, instance_id: str, stored: bool) -> dict[str, Any]:
        """Connect as start-up does: an instance whose row is `stored` already needs no write first."""
        return await self._connect(instance_id, ensure_stored=not stored)

    async def _connect(self, instance_id: str, ensure_stored: bool) -> dict[str, Any]:
        s = self._session(instance_id)
        if s.status not in _RESTARTABLE:
            return {"success": True, "status": s.status.value, "alreadyConnected": True}
        previous = s.status, s.reason
        # INIT before the first await, so that a second connect meanwhile answers "already connected".
        self._set(s, SessionStatus.INIT, None)
        try:
            if ensure_stored:
                await self.store.ensure_instance(instance_id)
        except Exception:
            self._set(s, *previous)
            raise
        try:
            await self.engine.connect(instance_id)
        except Exception as exc:
            log(logger, logging.WARNING, "connect failed", instance_id=instance_id, error=repr(exc))
            self._set(s, SessionStatus.ERROR, Reason.CONNECT_FAILED)
        return {"success": True, "status": s.status.value, "alreadyConnected": False}

    async def disconnect(self, instance_id: str) -> dict[str, Any]:
        s = self._session(instance_id)
        await self.engine.disconnect(instance_id)
        s.qr_payload = s.qr_expires_at = None
        self._set(s, SessionStatus.DISCONNECTED, Reason.DISCONNECT_REQUESTED)
        return {"success": True, "status": SessionStatus.DISCONNECTED.value}

    async def logout(self, instance_id: str) -> dict[str, Any]:
        s = self._session(instance_id)
        await self.engine.logout(instance_id)
        await self.store.set_unpaired(instance_id)
        s.qr_payload = s.qr_expires_at = None
        self._set(s, SessionStatus.DISCONNECTED, Reason.LOGOUT_REQUESTED)
        return {"success": True, "status": SessionStatus.DISCONNECTED.value}

    async def delete(self, instance_id: str) -> dict[str, Any]:
        await self.logout(instance_id)
        await self.engine.forget(instance_id)
        await self.store.delete_instance(instance_id)
        await asyncio.to_thread(self.messages.forget_instance, instance_id)
        await asyncio.to_thread(self.contacts.forget_instance, instance_id)
        self.sessions.pop(instance_id, None)
        return {"success": True, "status": SessionStatus.DISCONNECTED.value, "deleted": True}

    async def pair_code(self, instance_id: str, body: bytes) -> dict[str, Any]:
        data = json_object(body)
        phone = parse_phone(data.get("phone"))
        if phone is None:
            raise errors.InvalidPhoneError(
                f"phone {str(data.get('phone'))[:40]!r} is not a phone number: 7-15 digits, optional +."
            )
        s = self.sessions.get(instance_id)
        status = s.status if s else SessionStatus.DISCONNECTED
        if status is not SessionStatus.QR_REQUIRED:
            row = await self.store.get_instance(instance_id)
            if row is not None and row.paired:
                raise errors.AlreadyPairedError(f"Instance {instance_id!r} is already paired; log out first.")
            raise self._not_ready(instance_id)
        try:
            code = await self.engine.pair_code(instance_id, phone)
        except EngineNotReady as exc:
            raise self._not_ready(instance_id) from exc
        except EngineError as exc:
            raise errors.PairCodeFailedError(f"WhatsApp refused the pairing code request: {exc}") from exc
        return {"code": code}

    async def send(self, instance_id: str, body: bytes, idempotency_key: str | None) -> Reply:
        started = time.perf_counter()
        outcome = "INTERNAL_ERROR"
        try:
            reply = await self._send(instance_id, body, idempotency_key)
            outcome = "replayed" if reply.headers.get("Idempotent-Replayed") else "sent"
            return reply
        except errors.ServiceError as exc:
            outcome = exc.code
            raise
        finally:
            self.metrics.sends.inc(outcome)
            self.metrics.send_latency.observe(time.perf_counter() - started, outcome)

    async def _send(self, instance_id: str, body: bytes, key: str | None) -> Reply:
        parsed = parse_send(body)
        if key is None:
            return await self._deliver(instance_id, parsed, None)
        if not is_valid_idempotency_key(key):
            raise errors.InvalidIdempotencyKeyError("Idempotency-Key must be 1-255 printable ASCII characters.")
        body_hash = hashlib.sha256(orjson.dumps([parsed.cliente_id, parsed.to, parsed.message])).hexdigest()

        def ready() -> None:
            s = self.sessions.get(instance_id)
            if s is None or s.status is not SessionStatus.READY:
                raise self._not_ready(instance_id)  # Certainly not sent: nothing to record.

        async def deliver(message_id: str | None) -> tuple[int, dict[str, Any]]:
            reply = await self._deliver(instance_id, parsed, message_id)
            return reply.status, reply.body

        try:
            (status, answer), replayed = await self.keyed.send(instance_id, key, body_hash, ready, deliver)
        except FenceRejected:
            raise self._not_ready(instance_id) from None  # This node lost the instance: its mark was not written.
        return Reply(status, answer, {"Idempotent-Replayed": "true"} if replayed else {})

    async def _deliver(self, instance_id: str, body: SendBody, message_id: str | None) -> Reply:
        s = self.sessions.get(instance_id)
        if s is None or s.status is not SessionStatus.READY:
            raise self._not_ready(instance_id)
        async with s.send_lock:
            # The session may have dropped while this send waited for the one before it.
            if s.status is not SessionStatus.READY:
                raise self._not_ready(instance_id)
            await self.fence(instance_id)
            token = current_send.set(SendContext(cliente_id=body.cliente_id, to=body.to))
            try:
                sent = await self.engine.send_text(instance_id, body.jid, body.message, message_id)
            except SendOutcomeUnknown as exc:
                again = "re-sends it as the same message" if self.engine.chooses_message_id else "won't resend it"
                raise errors.SendOutcomeUnknownError(
                    f"The message may or may not have reached WhatsApp: {exc}. Retrying with the same "
                    f"Idempotency-Key {again}."
                ) from exc
            except SendFailed as exc:
                raise errors.SendFailedError(f"WhatsApp did not accept the message: {exc}") from exc
            except EngineNotReady as exc:
                raise self._not_ready(instance_id) from exc
            finally:
                current_send.reset(token)
        await self.messages.record_sent(instance_id, sent.message_id, body.to, sent.timestamp)
        log(
            logger,
            logging.INFO,
            "sent",
            instance_id=instance_id,
            cliente_id=body.cliente_id,
            to=mask_phone(body.jid),
            message_id=sent.message_id,
        )
        data = {
            "message_id": sent.message_id,
            "cliente_id": body.cliente_id,
            "to": body.to,
            "jid": body.jid,
            "timestamp": iso(sent.timestamp),
        }
        return Reply(200, {"success": True, "message": "Message sent", "data": data})


async def _unfenced(_instance_id: str) -> None:
    return None


def _log_failure(future: asyncio.Future[bool], what: str) -> None:
    def done(f: asyncio.Future[bool]) -> None:
        if not f.cancelled() and f.exception() is not None:
            logger.error("store write failed", extra={"fields": {"what": what}})

    future.add_done_callback(done)
