"""The behaviour both engines share, written once: state machine, send serialization, idempotency.

Engines report events through the `EngineSink` methods below; HTTP routes call the public coroutines.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from leadmaster.common.logs import log, mask_phone
from leadmaster.contract.ids import is_valid_idempotency_key, is_valid_instance_id
from leadmaster.contract.status import MessageStatus, Reason, SessionStatus
from leadmaster.session_manager import errors
from leadmaster.session_manager.config import Settings
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
from leadmaster.session_manager.metrics import Metrics
from leadmaster.session_manager.phone import parse_phone, parse_to
from leadmaster.session_manager.store import Store

logger = logging.getLogger("leadmaster.session_manager.service")

MAX_MESSAGE_CHARS = 65_536
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
        self._inflight: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._purge_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.engine.start(self)
        rows = self.store.list_instances()
        for row in rows:
            self.sessions.setdefault(row.instance_id, Session(row.instance_id))
        self.store.purge_idempotency(self.settings.idempotency_ttl_seconds)
        self._purge_task = asyncio.create_task(self._purge_loop())
        if self.settings.connect_on_start:
            # CONTRACT §2.2: best-effort resume of the single-admin instance and every paired one.
            wanted = [self.settings.default_instance] + [r.instance_id for r in rows if r.paired]
            for instance_id in dict.fromkeys(wanted):
                try:
                    await self.connect(instance_id)
                except Exception:
                    logger.exception("start-up connect failed", extra={"fields": {"instance_id": instance_id}})

    async def stop(self) -> None:
        if self._purge_task:
            self._purge_task.cancel()
        try:
            await self.engine.stop()
        finally:
            for s in self.sessions.values():
                if s.status is not SessionStatus.DISCONNECTED:
                    self._set(s, SessionStatus.DISCONNECTED, Reason.SHUTDOWN)
            self.store.close()

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(3600)
            try:
                self.store.purge_idempotency(self.settings.idempotency_ttl_seconds)
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
        self.store.set_paired(instance_id, account.jid, account.phone, account.push_name)
        log(logger, logging.INFO, "paired", instance_id=instance_id, phone=account.phone)

    def unpaired(self, instance_id: str) -> None:
        self.store.set_unpaired(instance_id)
        log(logger, logging.INFO, "unpaired", instance_id=instance_id)

    def message_status(self, instance_id: str, message_id: str, status: MessageStatus, at: datetime) -> None:
        # Stored by the message-status store (CONTRACT §5); until then only counted in the log.
        log(logger, logging.DEBUG, "receipt", instance_id=instance_id, message_id=message_id, status=status)

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
            row = self.store.get_instance(instance_id)
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
        s = self._session(instance_id)
        if s.status not in _RESTARTABLE:
            return {"success": True, "status": s.status.value, "alreadyConnected": True}
        self.store.ensure_instance(instance_id)
        self._set(s, SessionStatus.INIT, None)
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
        self.store.set_unpaired(instance_id)
        s.qr_payload = s.qr_expires_at = None
        self._set(s, SessionStatus.DISCONNECTED, Reason.LOGOUT_REQUESTED)
        return {"success": True, "status": SessionStatus.DISCONNECTED.value}

    async def delete(self, instance_id: str) -> dict[str, Any]:
        await self.logout(instance_id)
        await self.engine.forget(instance_id)
        self.store.delete_instance(instance_id)
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
            row = self.store.get_instance(instance_id)
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
        cliente_id, to, jid, text = _parse_send(body)
        if key is None:
            return await self._deliver(instance_id, cliente_id, to, jid, text)
        if not is_valid_idempotency_key(key):
            raise errors.InvalidIdempotencyKeyError("Idempotency-Key must be 1-255 printable ASCII characters.")
        body_hash = hashlib.sha256(orjson.dumps([cliente_id, to, text])).hexdigest()
        slot = (instance_id, key)
        while (pending := self._inflight.get(slot)) is not None:
            # CONTRACT §2.5: a repeat during the first send waits for it, then replays its result.
            await asyncio.shield(pending)
        record = self.store.get_idempotency(instance_id, key, self.settings.idempotency_ttl_seconds)
        if record is not None:
            if record.body_hash != body_hash:
                raise errors.IdempotencyKeyReusedError(
                    f"Idempotency-Key {key[:64]!r} was used for a different message on {instance_id!r}."
                )
            if record.pending:
                # Not in flight here, so an earlier run handed it to WhatsApp and stopped before the answer.
                raise errors.SendOutcomeUnknownError(
                    f"A send with Idempotency-Key {key[:64]!r} was handed to WhatsApp but its outcome was never "
                    "recorded (the service stopped mid-send): it may have been delivered, so it is not sent "
                    "again under this key. Check with the recipient, then send with a new key if needed."
                )
            return Reply(record.status, record.response, {"Idempotent-Replayed": "true"})
        s = self.sessions.get(instance_id)
        if s is None or s.status is not SessionStatus.READY:
            raise self._not_ready(instance_id)  # Certainly not sent: nothing to record.
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = done
        try:
            await self.store.begin_idempotency(instance_id, key, body_hash)
            try:
                reply = await self._deliver(instance_id, cliente_id, to, jid, text)
            except (errors.SessionNotReadyError, errors.SendFailedError):
                # Certainly not sent: the key may be used again (CONTRACT §2.5). Any other failure
                # (outcome unknown, unexpected error, cancellation) keeps the pending mark.
                await self.store.drop_idempotency(instance_id, key)
                raise
            try:
                await self.store.finish_idempotency(instance_id, key, reply.status, reply.body)
            except Exception:
                # The message is out and the pending mark stays: a retry gets SEND_OUTCOME_UNKNOWN, never a double.
                logger.exception("idempotency record not finished", extra={"fields": {"instance_id": instance_id}})
            return reply
        finally:
            del self._inflight[slot]
            done.set_result(None)

    async def _deliver(self, instance_id: str, cliente_id: int, to: str, jid: str, text: str) -> Reply:
        s = self.sessions.get(instance_id)
        if s is None or s.status is not SessionStatus.READY:
            raise self._not_ready(instance_id)
        async with s.send_lock:
            # The session may have dropped while this send waited for the one before it.
            if s.status is not SessionStatus.READY:
                raise self._not_ready(instance_id)
            token = current_send.set(SendContext(cliente_id=cliente_id, to=to))
            try:
                sent = await self.engine.send_text(instance_id, jid, text)
            except SendOutcomeUnknown as exc:
                raise errors.SendOutcomeUnknownError(
                    f"The message may or may not have reached WhatsApp: {exc}. Retrying with the same "
                    "Idempotency-Key will not send it again."
                ) from exc
            except SendFailed as exc:
                raise errors.SendFailedError(f"WhatsApp did not accept the message: {exc}") from exc
            except EngineNotReady as exc:
                raise self._not_ready(instance_id) from exc
            finally:
                current_send.reset(token)
        log(
            logger,
            logging.INFO,
            "sent",
            instance_id=instance_id,
            cliente_id=cliente_id,
            to=mask_phone(jid),
            message_id=sent.message_id,
        )
        data = {
            "message_id": sent.message_id,
            "cliente_id": cliente_id,
            "to": to,
            "jid": jid,
            "timestamp": iso(sent.timestamp),
        }
        return Reply(200, {"success": True, "message": "Message sent", "data": data})


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400 INVALID_JSON."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.InvalidJsonError("Request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise errors.InvalidJsonError(f"Request body must be a JSON object, not {type(data).__name__}.")
    return data


def _parse_send(body: bytes) -> tuple[int, str, str, str]:
    """Validate a send body in the order of CONTRACT §2.5; return (cliente_id, to, jid, message)."""
    data = json_object(body)
    cliente_id = data.get("cliente_id")
    if type(cliente_id) is not int or cliente_id <= 0:
        raise errors.InvalidClienteIdError(f"cliente_id must be a positive integer, got {cliente_id!r:.40}.")
    to = data.get("to")
    jid = parse_to(to)
    if jid is None:
        raise errors.InvalidToError(
            f"to {str(to)[:40]!r} is not a phone number (7-15 digits, optional +) or a user JID.")
    assert isinstance(to, str)
    message = data.get("message")
    if not isinstance(message, str) or not message.strip() or len(message) > MAX_MESSAGE_CHARS:
        raise errors.InvalidMessageError(
            f"message must be a non-blank string of at most {MAX_MESSAGE_CHARS} characters.")
    return cliente_id, to, jid, message
