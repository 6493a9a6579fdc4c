"""Idempotency-Key sends (CONTRACT §2.5, §5 "Exactly-once"): in-flight map, pending mark, finish or drop.

A keyed send writes a durable *pending* mark before the engine is called; once the engine answers, the mark
becomes the answer to replay, or is dropped when the send certainly failed. The mark is the insert that
also tells whether the key was used before, so a fresh key costs no read. When the engine chooses WhatsApp's
message ID, the send goes out under an ID derived from the key (`message_id_for`): a retry that finds a
pending mark left by a run that died re-sends under the same ID, which WhatsApp keeps as one message. Then
the finished answer need not be durable before the 200 either (a crash that loses it only causes such a
re-send), so it is written lazily (writer.py) instead of costing a commit of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from leadmaster.session_manager import errors
from leadmaster.session_manager.store import IdempotencyRecord, Store

logger = logging.getLogger("leadmaster.session_manager.idempotency")

Reply = tuple[int, dict[str, Any]]  # (status, body) of a send that went out
Deliver = Callable[[str | None], Awaitable[Reply]]


def message_id_for(instance_id: str, key: str, created_at: float) -> str:
    """The WhatsApp message ID of a keyed send: "3EB0" + 18 uppercase hex digits, as whatsmeow makes them.

    Derived from the instance, the key and the creation time of its record, so that a key used again after
    its record expired (a new message by the contract) never collides with the old message's ID.
    """
    seed = f"{instance_id}\n{key}\n{int(created_at * 1_000_000)}".encode()
    return "3EB0" + hashlib.sha256(seed).hexdigest()[:18].upper()


class KeyedSends:
    def __init__(self, store: Store, ttl_seconds: float, chooses_message_id: bool) -> None:
        self.store = store
        self.ttl = ttl_seconds
        self.chooses_message_id = chooses_message_id
        self._inflight: dict[tuple[str, str], asyncio.Future[None]] = {}
        # Answers whose finish is queued but not yet committed (lazy): served from here until it is.
        self._finishing: dict[tuple[str, str], IdempotencyRecord] = {}

    async def send(
        self, instance_id: str, key: str, body_hash: str, ready: Callable[[], None], deliver: Deliver
    ) -> tuple[Reply, bool]:
        """Send once under `key`: ((status, body), replayed). `ready()` raises when the session is not READY."""
        slot = (instance_id, key)
        while (pending := self._inflight.get(slot)) is not None:
            # CONTRACT §2.5: a repeat during the first send waits for it, then replays its result.
            await asyncio.shield(pending)
        if (finishing := self._finishing.get(slot)) is not None:
            return self._replay(finishing, instance_id, key, body_hash), True
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = done
        try:
            return await self._send(instance_id, key, body_hash, ready, deliver)
        finally:
            del self._inflight[slot]
            done.set_result(None)

    async def _send(
        self, instance_id: str, key: str, body_hash: str, ready: Callable[[], None], deliver: Deliver
    ) -> tuple[Reply, bool]:
        created_at = time.time()
        try:
            ready()
        except errors.SessionNotReadyError:
            # A recorded answer is replayed whatever the session's state; anything else must wait for READY.
            record = await self.store.get_idempotency(instance_id, key)
            if record is None or self._expired(record):
                raise
            if not record.pending:
                return self._replay(record, instance_id, key, body_hash), True
            self._check_body(record, instance_id, key, body_hash)
            self._refuse_unless_resendable(key)
            raise
        resend = False
        if not await self.store.begin_idempotency(instance_id, key, body_hash, created_at):
            record = await self.store.get_idempotency(instance_id, key)
            if record is None or self._expired(record):
                # Expired (or purged meanwhile): the key is free again, for a new message.
                if not await self.store.begin_idempotency(instance_id, key, body_hash, created_at, replace=True):
                    raise RuntimeError(f"idempotency record {key[:64]!r} reappeared")
            elif not record.pending:
                return self._replay(record, instance_id, key, body_hash), True
            else:
                # Not in flight here, so an earlier run handed it to the engine and stopped before the answer.
                self._check_body(record, instance_id, key, body_hash)
                self._refuse_unless_resendable(key)
                resend, created_at = True, record.created_at
        message_id = message_id_for(instance_id, key, created_at) if self.chooses_message_id else None
        try:
            status, body = await deliver(message_id)
        except (errors.SessionNotReadyError, errors.SendFailedError):
            # Certainly not sent this time: the key may be used again (CONTRACT §2.5). A re-send keeps its mark:
            # the first attempt may have gone out, and only a re-send under the same ID is safe.
            if not resend:
                await self.store.drop_idempotency(instance_id, key)
            raise
        # Any other failure (outcome unknown, unexpected error, cancellation) keeps the pending mark.
        finish = self._finish(instance_id, key, IdempotencyRecord(body_hash, status, body, False, created_at))
        if not self.chooses_message_id:
            # Without a derived ID a lost answer could only be refused later: make it durable before the 200.
            with contextlib.suppress(Exception):  # logged by `_finish`; the message is out all the same
                await finish
        return (status, body), False

    def _finish(self, instance_id: str, key: str, record: IdempotencyRecord) -> asyncio.Future[bool]:
        slot = (instance_id, key)
        self._finishing[slot] = record
        future = self.store.finish_idempotency(
            instance_id, key, record.status, record.response, lazy=self.chooses_message_id
        )

        def finished(f: asyncio.Future[bool]) -> None:
            if self._finishing.get(slot) is record:
                del self._finishing[slot]
            if not f.cancelled() and f.exception() is not None:
                # The message is out and the pending mark stays: a retry re-sends under the same ID (or gets
                # SEND_OUTCOME_UNKNOWN), never a double.
                logger.error("idempotency record not finished", extra={"fields": {"instance_id": instance_id}})

        future.add_done_callback(finished)
        return future

    def _expired(self, record: IdempotencyRecord) -> bool:
        return record.created_at <= time.time() - self.ttl

    def _replay(self, record: IdempotencyRecord, instance_id: str, key: str, body_hash: str) -> Reply:
        self._check_body(record, instance_id, key, body_hash)
        return record.status, record.response

    @staticmethod
    def _check_body(record: IdempotencyRecord, instance_id: str, key: str, body_hash: str) -> None:
        if record.body_hash != body_hash:
            raise errors.IdempotencyKeyReusedError(
                f"Idempotency-Key {key[:64]!r} was used for a different message on {instance_id!r}."
            )

    def _refuse_unless_resendable(self, key: str) -> None:
        if not self.chooses_message_id:
            raise errors.SendOutcomeUnknownError(
                f"A send with Idempotency-Key {key[:64]!r} was handed to WhatsApp but its outcome was never "
                "recorded (the service stopped mid-send): it may have been delivered, so it is not sent "
                "again under this key. Check with the recipient, then send with a new key if needed."
            )
