"""Every error the session-manager answers with (CONTRACT §2.5), one class per code.

    ServiceError (500 INTERNAL_ERROR)
    ├── BadRequest (400)
    │   ├── InvalidJson            INVALID_JSON
    │   ├── InvalidClienteId       INVALID_CLIENTE_ID
    │   ├── InvalidTo              INVALID_TO
    │   ├── InvalidMessage         INVALID_MESSAGE
    │   ├── InvalidInstanceId      INVALID_INSTANCE_ID
    │   ├── InvalidPhone           INVALID_PHONE
    │   ├── InvalidIdempotencyKey  INVALID_IDEMPOTENCY_KEY
    │   ├── IdempotencyKeyReused   IDEMPOTENCY_KEY_REUSED
    │   ├── AlreadyPaired          ALREADY_PAIRED
    │   ├── InvalidFault           INVALID_FAULT
    │   ├── InvalidPhones          INVALID_PHONES      (number check: 1-50 phone numbers)
    │   ├── InvalidSince           INVALID_SINCE       (message polling: not an ISO 8601 time)
    │   └── InvalidLimit           INVALID_LIMIT       (message polling: not an integer 1-1000)
    ├── QrNotAvailable (404)       QR_NOT_AVAILABLE
    ├── MessageNotFound (404)      MESSAGE_NOT_FOUND   (no status for that message ID on that instance)
    ├── RateLimited (429)          RATE_LIMITED        (number-check lookups per hour; + Retry-After)
    ├── NoQrToScan (409)           NO_QR_TO_SCAN
    ├── SessionNotReady (503)      SESSION_NOT_READY   (+ status, Retry-After)
    ├── SendFailedError (500)      SEND_FAILED
    ├── SendOutcomeUnknownError (500) SEND_OUTCOME_UNKNOWN (maybe delivered: not sent again under its key)
    ├── PairCodeFailed (500)       PAIR_CODE_FAILED    (WhatsApp refused the pairing-code request)
    └── ContactCheckFailed (500)   CONTACT_CHECK_FAILED (WhatsApp failed the number lookup)

404 NOT_FOUND, 405 METHOD_NOT_ALLOWED, 413 PAYLOAD_TOO_LARGE and 401 UNAUTHORIZED are produced by the
shared ASGI plumbing in `leadmaster.common.asgi`.
"""

from leadmaster.contract.errors import ContractError


class ServiceError(ContractError):
    """Base of the session-manager's errors (500 INTERNAL_ERROR unless a subclass says otherwise)."""


class BadRequest(ServiceError):
    status = 400
    code = "BAD_REQUEST"


class InvalidJson(BadRequest):
    code = "INVALID_JSON"


class InvalidClienteId(BadRequest):
    code = "INVALID_CLIENTE_ID"


class InvalidTo(BadRequest):
    code = "INVALID_TO"


class InvalidMessage(BadRequest):
    code = "INVALID_MESSAGE"


class InvalidInstanceId(BadRequest):
    code = "INVALID_INSTANCE_ID"


class InvalidPhone(BadRequest):
    code = "INVALID_PHONE"


class InvalidIdempotencyKey(BadRequest):
    code = "INVALID_IDEMPOTENCY_KEY"


class IdempotencyKeyReused(BadRequest):
    code = "IDEMPOTENCY_KEY_REUSED"


class AlreadyPaired(BadRequest):
    code = "ALREADY_PAIRED"


class InvalidFault(BadRequest):
    code = "INVALID_FAULT"


class InvalidPhones(BadRequest):
    code = "INVALID_PHONES"


class InvalidSince(BadRequest):
    code = "INVALID_SINCE"


class InvalidLimit(BadRequest):
    code = "INVALID_LIMIT"


class MessageNotFound(ServiceError):
    status = 404
    code = "MESSAGE_NOT_FOUND"


class RateLimited(ServiceError):
    status = 429
    code = "RATE_LIMITED"


class ContactCheckFailed(ServiceError):
    status = 500
    code = "CONTACT_CHECK_FAILED"


class QrNotAvailable(ServiceError):
    status = 404
    code = "QR_NOT_AVAILABLE"


class NoQrToScan(ServiceError):
    status = 409
    code = "NO_QR_TO_SCAN"


class SessionNotReady(ServiceError):
    status = 503
    code = "SESSION_NOT_READY"


class SendFailedError(ServiceError):
    status = 500
    code = "SEND_FAILED"


class SendOutcomeUnknownError(ServiceError):
    status = 500
    code = "SEND_OUTCOME_UNKNOWN"


class PairCodeFailed(ServiceError):
    status = 500
    code = "PAIR_CODE_FAILED"


ALL_ERRORS: tuple[type[ServiceError], ...] = (
    ServiceError,
    InvalidJson,
    InvalidClienteId,
    InvalidTo,
    InvalidMessage,
    InvalidInstanceId,
    InvalidPhone,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    AlreadyPaired,
    InvalidFault,
    QrNotAvailable,
    NoQrToScan,
    SessionNotReady,
    SendFailedError,
    SendOutcomeUnknownError,
    PairCodeFailed,
    InvalidPhones,
    InvalidSince,
    InvalidLimit,
    MessageNotFound,
    RateLimited,
    ContactCheckFailed,
)
