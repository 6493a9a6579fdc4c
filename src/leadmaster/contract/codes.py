"""Every error `code` either service answers with (CONTRACT §2, §3.4, §4, §5), as one enum.

Members are strings (StrEnum), so a code compares equal to its wire text and serializes as it. A code is added
here first; tests/contract/test_codes.py fails when a member has no error class or plumbing that produces it.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    # Both services' plumbing (common/asgi.py; CONTRACT §1, §2.5).
    UNAUTHORIZED = "UNAUTHORIZED"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    HTTP_ERROR = "HTTP_ERROR"  # any other HTTP error a route or the framework raises

    # Session-manager (§2.1, §2.3, §2.4, §2.5, §4, §5).
    BAD_REQUEST = "BAD_REQUEST"  # a malformed request to a route without a more specific code
    INVALID_JSON = "INVALID_JSON"
    INVALID_CLIENTE_ID = "INVALID_CLIENTE_ID"
    INVALID_TO = "INVALID_TO"
    INVALID_MESSAGE = "INVALID_MESSAGE"
    INVALID_INSTANCE_ID = "INVALID_INSTANCE_ID"
    INVALID_PHONE = "INVALID_PHONE"  # pair-code: not a phone number
    INVALID_PHONES = "INVALID_PHONES"
    INVALID_SINCE = "INVALID_SINCE"  # message polling: `since` is not an ISO 8601 time
    INVALID_LIMIT = "INVALID_LIMIT"  # message polling: `limit` is not an integer 1-1000
    INVALID_IDEMPOTENCY_KEY = "INVALID_IDEMPOTENCY_KEY"
    INVALID_FAULT = "INVALID_FAULT"  # sandbox faults body
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    ALREADY_PAIRED = "ALREADY_PAIRED"
    QR_NOT_AVAILABLE = "QR_NOT_AVAILABLE"
    NO_QR_TO_SCAN = "NO_QR_TO_SCAN"
    MESSAGE_NOT_FOUND = "MESSAGE_NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"
    SESSION_NOT_READY = "SESSION_NOT_READY"
    SEND_FAILED = "SEND_FAILED"
    SEND_OUTCOME_UNKNOWN = "SEND_OUTCOME_UNKNOWN"
    PAIR_CODE_FAILED = "PAIR_CODE_FAILED"
    CONTACT_CHECK_FAILED = "CONTACT_CHECK_FAILED"  # WhatsApp failed a number lookup

    # Central hub (§3.3, §3.4, §4).
    VALIDATION_ERROR = "VALIDATION_ERROR"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    NOT_SUPPORTED = "NOT_SUPPORTED"  # an operation SESSION_MANAGER_API=single-admin has no route for
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    WHATSAPP_ERROR = "WHATSAPP_ERROR"
    SESSION_MANAGER_AUTH_FAILED = "SESSION_MANAGER_AUTH_FAILED"
    SESSION_MANAGER_BAD_RESPONSE = "SESSION_MANAGER_BAD_RESPONSE"
    SESSION_MANAGER_TIMEOUT = "SESSION_MANAGER_TIMEOUT"
    SESSION_MANAGER_UNREACHABLE = "SESSION_MANAGER_UNREACHABLE"
