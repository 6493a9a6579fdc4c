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
    │   └── InvalidPhones          INVALID_PHONES      (number check: 1-50 phone numbers)
    ├── QrNotAvailable (404)       QR_NOT_AVAILABLE
    ├── MessageNotFound (404)      MESSAGE_NOT_FOUND   (no status for that message ID on that instance)
    ├── RateLimited (429)          RATE_LIMITED        (number-check lookups per hour; + Retry-After)
    ├── NoQrToScan (409)           NO_QR_TO_SCAN
    ├── SessionNotReady (503)      SESSION_NOT_READY   (+ status, Retry-After)
    ├── SendFailedError (500)      SEND_FAILED
    ├── SendOutcomeUnknownError (500) SEND_OUTCOME_UNKNOWN (maybe delivered: not sent again under its key)
    └── PairCodeFailed (500)       PAIR_CODE_FAILED    (WhatsApp refused the pairing-code request)

404 NOT_FOUND, 405 METHOD_NOT_ALLOWED, 413 PAYLOAD_TOO_LARGE and 401 UNAUTHORIZED are produced by the
shared ASGI plumbing in `leadmaster.common.asgi`.
"""

from leadmaster.contract.codes import ErrorCode
from leadmaster.contract.errors import ContractError


class ServiceError(ContractError):
    """Base of the session-manager's errors (500 INTERNAL_ERROR unless a subclass says otherwise)."""


class BadRequest(ServiceError):
    status = 400
    code = ErrorCode.BAD_REQUEST


class InvalidJson(BadRequest):
    code = ErrorCode.INVALID_JSON


class InvalidClienteId(BadRequest):
    code = ErrorCode.INVALID_CLIENTE_ID


class InvalidTo(BadRequest):
    code = ErrorCode.INVALID_TO


class InvalidMessage(BadRequest):
    code = ErrorCode.INVALID_MESSAGE


class InvalidInstanceId(BadRequest):
    code = ErrorCode.INVALID_INSTANCE_ID


class InvalidPhone(BadRequest):
    code = ErrorCode.INVALID_PHONE


class InvalidIdempotencyKey(BadRequest):
    code = ErrorCode.INVALID_IDEMPOTENCY_KEY


class IdempotencyKeyReused(BadRequest):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class AlreadyPaired(BadRequest):
    code = ErrorCode.ALREADY_PAIRED


class InvalidFault(BadRequest):
    code = ErrorCode.INVALID_FAULT


class InvalidPhones(BadRequest):
    code = ErrorCode.INVALID_PHONES


class MessageNotFound(ServiceError):
    status = 404
    code = ErrorCode.MESSAGE_NOT_FOUND


class RateLimited(ServiceError):
    status = 429
    code = ErrorCode.RATE_LIMITED


class QrNotAvailable(ServiceError):
    status = 404
    code = ErrorCode.QR_NOT_AVAILABLE


class NoQrToScan(ServiceError):
    status = 409
    code = ErrorCode.NO_QR_TO_SCAN


class SessionNotReady(ServiceError):
    status = 503
    code = ErrorCode.SESSION_NOT_READY


class SendFailedError(ServiceError):
    status = 500
    code = ErrorCode.SEND_FAILED


class SendOutcomeUnknownError(ServiceError):
    status = 500
    code = ErrorCode.SEND_OUTCOME_UNKNOWN


class PairCodeFailed(ServiceError):
    status = 500
    code = ErrorCode.PAIR_CODE_FAILED


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
    MessageNotFound,
    RateLimited,
)
