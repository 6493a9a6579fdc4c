"""Every error the session-manager answers with (CONTRACT §2.5), one class per code.

    ServiceError (500 INTERNAL_ERROR)
    ├── BadRequestError (400)          BAD_REQUEST
    │   ├── InvalidJsonError           INVALID_JSON
    │   ├── InvalidClienteIdError      INVALID_CLIENTE_ID
    │   ├── InvalidToError             INVALID_TO
    │   ├── InvalidMessageError        INVALID_MESSAGE
    │   ├── InvalidInstanceIdError     INVALID_INSTANCE_ID
    │   ├── InvalidPhoneError          INVALID_PHONE
    │   ├── InvalidIdempotencyKeyError INVALID_IDEMPOTENCY_KEY
    │   ├── IdempotencyKeyReusedError  IDEMPOTENCY_KEY_REUSED
    │   ├── AlreadyPairedError         ALREADY_PAIRED
    │   ├── InvalidFaultError          INVALID_FAULT
    │   ├── InvalidPhonesError         INVALID_PHONES       (number check: 1-50 phone numbers)
    │   ├── InvalidSinceError          INVALID_SINCE        (message polling: not an ISO 8601 time)
    │   └── InvalidLimitError          INVALID_LIMIT        (message polling: not an integer 1-1000)
    ├── QrNotAvailableError (404)      QR_NOT_AVAILABLE
    ├── MessageNotFoundError (404)     MESSAGE_NOT_FOUND    (no status for that message ID on that instance)
    ├── RateLimitedError (429)         RATE_LIMITED         (number-check lookups per hour; + Retry-After)
    ├── NoQrToScanError (409)          NO_QR_TO_SCAN
    ├── SessionNotReadyError (503)     SESSION_NOT_READY    (+ status, Retry-After)
    ├── SendFailedError (500)          SEND_FAILED
    ├── SendOutcomeUnknownError (500)  SEND_OUTCOME_UNKNOWN (maybe delivered: not sent again under its key)
    ├── PairCodeFailedError (500)      PAIR_CODE_FAILED     (WhatsApp refused the pairing-code request)
    └── ContactCheckFailedError (500)  CONTACT_CHECK_FAILED (WhatsApp failed the number lookup)

404 NOT_FOUND, 405 METHOD_NOT_ALLOWED, 413 PAYLOAD_TOO_LARGE and 401 UNAUTHORIZED are produced by the
shared ASGI plumbing in `leadmaster.common.asgi`.

Naming: these service errors end in `Error` and are answered over HTTP; the engine exceptions they are
translated from (engines/base.py: SendFailed, SendOutcomeUnknown, EngineNotReady; the sandbox's NoQrToScan)
end in nothing.
"""

from leadmaster.contract.codes import ErrorCode
from leadmaster.contract.errors import ContractError


class ServiceError(ContractError):
    """Base of the session-manager's errors (500 INTERNAL_ERROR unless a subclass says otherwise)."""


class BadRequestError(ServiceError):
    status = 400
    code = ErrorCode.BAD_REQUEST


class InvalidJsonError(BadRequestError):
    code = ErrorCode.INVALID_JSON


class InvalidClienteIdError(BadRequestError):
    code = ErrorCode.INVALID_CLIENTE_ID


class InvalidToError(BadRequestError):
    code = ErrorCode.INVALID_TO


class InvalidMessageError(BadRequestError):
    code = ErrorCode.INVALID_MESSAGE


class InvalidInstanceIdError(BadRequestError):
    code = ErrorCode.INVALID_INSTANCE_ID


class InvalidPhoneError(BadRequestError):
    code = ErrorCode.INVALID_PHONE


class InvalidIdempotencyKeyError(BadRequestError):
    code = ErrorCode.INVALID_IDEMPOTENCY_KEY


class IdempotencyKeyReusedError(BadRequestError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED


class AlreadyPairedError(BadRequestError):
    code = ErrorCode.ALREADY_PAIRED


class InvalidFaultError(BadRequestError):
    code = ErrorCode.INVALID_FAULT


class InvalidPhonesError(BadRequestError):
    code = ErrorCode.INVALID_PHONES


class InvalidSinceError(BadRequestError):
    code = ErrorCode.INVALID_SINCE


class InvalidLimitError(BadRequestError):
    code = ErrorCode.INVALID_LIMIT


class ContactCheckFailedError(ServiceError):
    status = 500
    code = ErrorCode.CONTACT_CHECK_FAILED


class MessageNotFoundError(ServiceError):
    status = 404
    code = ErrorCode.MESSAGE_NOT_FOUND


class RateLimitedError(ServiceError):
    status = 429
    code = ErrorCode.RATE_LIMITED


class QrNotAvailableError(ServiceError):
    status = 404
    code = ErrorCode.QR_NOT_AVAILABLE


class NoQrToScanError(ServiceError):
    status = 409
    code = ErrorCode.NO_QR_TO_SCAN


class SessionNotReadyError(ServiceError):
    status = 503
    code = ErrorCode.SESSION_NOT_READY


class SendFailedError(ServiceError):
    status = 500
    code = ErrorCode.SEND_FAILED


class SendOutcomeUnknownError(ServiceError):
    status = 500
    code = ErrorCode.SEND_OUTCOME_UNKNOWN


class PairCodeFailedError(ServiceError):
    status = 500
    code = ErrorCode.PAIR_CODE_FAILED


ALL_ERRORS: tuple[type[ServiceError], ...] = (
    ServiceError,
    InvalidJsonError,
    InvalidClienteIdError,
    InvalidToError,
    InvalidMessageError,
    InvalidInstanceIdError,
    InvalidPhoneError,
    InvalidIdempotencyKeyError,
    IdempotencyKeyReusedError,
    AlreadyPairedError,
    InvalidFaultError,
    QrNotAvailableError,
    NoQrToScanError,
    SessionNotReadyError,
    SendFailedError,
    SendOutcomeUnknownError,
    PairCodeFailedError,
    InvalidPhonesError,
    MessageNotFoundError,
    RateLimitedError,
    InvalidSinceError,
    InvalidLimitError,
    ContactCheckFailedError,
)
