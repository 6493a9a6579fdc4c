"""The session status enum of CONTRACT §1, consumed as-is by the hub."""

from enum import StrEnum


class SessionStatus(StrEnum):
    INIT = "INIT"
    QR_REQUIRED = "QR_REQUIRED"
    AUTHENTICATED = "AUTHENTICATED"
    READY = "READY"
    DISCONNECTED = "DISCONNECTED"
    ERROR = "ERROR"


class Reason(StrEnum):
    """Why a session is in ERROR or DISCONNECTED (reported as `reason`)."""

    QR_TIMEOUT = "QR_TIMEOUT"
    LOGGED_OUT = "LOGGED_OUT"
    TEMPORARY_BAN = "TEMPORARY_BAN"
    STREAM_REPLACED = "STREAM_REPLACED"
    CONNECT_FAILED = "CONNECT_FAILED"
    ENGINE_CRASHED = "ENGINE_CRASHED"
    CONNECTION_LOST = "CONNECTION_LOST"
    DISCONNECT_REQUESTED = "DISCONNECT_REQUESTED"
    LOGOUT_REQUESTED = "LOGOUT_REQUESTED"
    SHUTDOWN = "SHUTDOWN"


class MessageStatus(StrEnum):
    """CONTRACT §5: the delivery status of a message the session-manager sent; only moves forward (FAILED aside)."""

    SENT = "SENT"
    DELIVERED = "DELIVERED"
    READ = "READ"
    FAILED = "FAILED"
