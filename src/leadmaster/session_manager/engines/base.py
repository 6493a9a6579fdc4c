"""The engine port: the only thing the session-manager knows about talking to WhatsApp.

An engine owns the WhatsApp side of every session (sockets, protocol, credentials) and nothing else.
Everything the two engines must agree on lives above this port, once, in `service.SessionService`:
the state bookkeeping of CONTRACT §2.2, one send at a time per instance, idempotency keys, QR rendering,
persistence of which instances are paired, and HTTP. An engine therefore implements only narrow hooks.

Contract for implementations
----------------------------
* Every method is a coroutine called on the service's event loop, and must return promptly:
  `connect` starts dialing and returns at once (it never waits for the phone); `stop` finishes within a
  few seconds whatever the library is doing. Blocking work goes to threads or a worker process.
* An engine reports what happens to a session only through the `EngineSink` given to `start`, and only
  from the event loop thread (use `loop.call_soon_threadsafe` from other threads):
    - `status_changed(id, status, reason)` for every transition of CONTRACT §2.2 the engine observes:
      QR_REQUIRED (with a live QR), AUTHENTICATED (paired, not yet usable), READY, DISCONNECTED (network
      drop, engine reconnecting by itself; reason CONNECTION_LOST), ERROR with a `Reason` (QR_TIMEOUT,
      LOGGED_OUT, TEMPORARY_BAN, STREAM_REPLACED, CONNECT_FAILED, ENGINE_CRASHED).
      The service itself sets INIT when it calls `connect`, and DISCONNECTED after `disconnect`/`logout`.
    - `qr_changed(id, payload, expires_at)` each time a QR code rotates; `payload=None` when no QR is live.
    - `paired(id, account)` once credentials are stored (after a scan, pairing code, or a resumed login);
      `unpaired(id)` when credentials are gone (unlinked from the phone).
    - `message_status(id, message_id, status, at)` for each WhatsApp receipt about a message this engine sent
      (server ack → SENT, delivered → DELIVERED, read / read-self → READ, server error → FAILED). Engines
      report what they see, in any order and possibly repeated; the service keeps statuses moving forward only.
      Receipts about anyone else's messages are never reported (CONTRACT §5: no incoming-message processing).
* `send_text(..., message_id=...)`: an engine whose `chooses_message_id` is True sends under exactly that
  WhatsApp message ID (whatsmeow's `SendRequestExtra.ID`), so that a retry of a keyed send whose outcome was
  lost re-sends the same message, which WhatsApp treats as one (CONTRACT §5 "Exactly-once"). An engine that
  cannot choose IDs ignores it and leaves `chooses_message_id` False; the service then refuses such retries.
* `check_numbers` asks WhatsApp which of some phone numbers (digits only) have an account; only while READY.
* `lease(seconds)` (clusters only): past that deadline the engine holds no connection and dials nothing
  until a later `lease` moves it, so that a node whose own process stalls past its lease cannot keep a
  device connected while another node takes it over (docs/deploy.md).
* After `disconnect`, `logout` or `stop` return, the engine emits nothing more for that instance until
  the next `connect`.
* Failures of a send raise `SendFailed` (WhatsApp rejected or failed it), `SendOutcomeUnknown` (it may have
  gone out: the service then refuses to send it again under the same idempotency key) or `EngineNotReady`
  (the session is not usable right now); anything else is reported by the service as INTERNAL_ERROR.
"""

from __future__ import annotations

import abc
import contextvars
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from leadmaster.contract.status import MessageStatus, SessionStatus


@dataclass(frozen=True, slots=True)
class Account:
    jid: str
    phone: str
    push_name: str | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    message_id: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class SendContext:
    """What the service knows about the send in progress, for engines that record it (sandbox outbox)."""

    cliente_id: int
    to: str


# Set by the service around `send_text`; kept out of the port's signature because WhatsApp needs none of it.
current_send: contextvars.ContextVar[SendContext | None] = contextvars.ContextVar("current_send", default=None)


class EngineError(Exception):
    """Base of what an engine may raise on purpose."""


class SendFailed(EngineError):
    """WhatsApp rejected or failed the send (CONTRACT §2.5 SEND_FAILED)."""


class SendOutcomeUnknown(SendFailed):
    """The send may or may not have reached WhatsApp (e.g. the engine died with it in flight)."""


class EngineNotReady(EngineError):
    """The session cannot do this right now (not connected, no QR to pair with, ...)."""


class EngineSink(Protocol):
    def status_changed(self, instance_id: str, status: SessionStatus, reason: str | None = None) -> None: ...

    def qr_changed(self, instance_id: str, payload: str | None, expires_at: datetime | None) -> None: ...

    def paired(self, instance_id: str, account: Account) -> None: ...

    def unpaired(self, instance_id: str) -> None: ...

    def message_status(self, instance_id: str, message_id: str, status: MessageStatus, at: datetime) -> None: ...


class Engine(abc.ABC):
    name: ClassVar[str]
    # True when `send_text` honours `message_id` (see the module docstring, "Exactly-once").
    chooses_message_id: ClassVar[bool] = False

    @abc.abstractmethod
    async def start(self, sink: EngineSink) -> None:
        """Prepare the engine (threads, worker process); called once before any other method."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close every session, keeping credentials; bounded in time."""

    @abc.abstractmethod
    async def connect(self, instance_id: str) -> None:
        """Start dialing: resume with stored credentials, or begin the QR flow. Returns at once."""

    @abc.abstractmethod
    async def disconnect(self, instance_id: str) -> None:
        """Close the session and stop reconnecting; credentials are kept."""

    @abc.abstractmethod
    async def logout(self, instance_id: str) -> None:
        """Unlink the device from the phone (best effort when offline) and delete its credentials."""

    @abc.abstractmethod
    async def pair_code(self, instance_id: str, phone: str) -> str:
        """Ask for an 8-character pairing code for `phone` (digits); only while a QR is live."""

    @abc.abstractmethod
    async def send_text(self, instance_id: str, jid: str, text: str, message_id: str | None = None) -> SentMessage:
        """Send a plain text message to a user JID (under `message_id` if given); the session is READY."""

    async def check_numbers(self, instance_id: str, phones: list[str]) -> dict[str, str | None]:
        """For each phone (digits), its user JID when the number is on WhatsApp, else None; READY only."""
        raise EngineNotReady(f"the {self.name} engine cannot check numbers")

    @abc.abstractmethod
    async def account(self, instance_id: str) -> Account | None:
        """The linked account of a READY session, or None when unknown."""

    async def forget(self, instance_id: str) -> None:
        """Drop every local trace of an instance (after logout). Default: nothing more to drop."""
        return None

    async def lease(self, seconds: float) -> None:
        """Cluster only: hold no connection and start no dial once `seconds` from now have passed, until the
        next call moves that deadline (the coordinator calls it after every renewal, with what is left of its
        own local deadline). Never called on a single node. Must not wait on anything: it runs inside the
        heartbeat. Default: nothing, for an engine whose connections live in this process and stop with it
        (the sandbox)."""
        return None
