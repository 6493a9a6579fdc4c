"""Request bodies of the per-cliente routes, parsed by hand (orjson): the send is the hot path."""

from typing import Any

import orjson
from starlette.requests import Request

from leadmaster.central_hub import errors
from leadmaster.contract.ids import is_valid_idempotency_key


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise errors.ValidationFailedError("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise errors.ValidationFailedError(f"The request body must be a JSON object, not {type(body).__name__}.")
    return body


def require_str(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise errors.ValidationFailedError(f"Field {field!r} must be a string, got {value!r}.", details=[
            {"loc": ["body", field], "msg": "must be a string"}])
    return value


async def parse_send(request: Request, cliente_id: int) -> tuple[dict[str, Any], str | None]:
    """The upstream body and Idempotency-Key of a send, or ValidationFailed."""
    body = await json_object(request)
    to, message = require_str(body, "to"), require_str(body, "message")
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not is_valid_idempotency_key(idempotency_key):
        raise errors.ValidationFailedError(
            f"Idempotency-Key {idempotency_key!r} must be 1-255 printable ASCII characters."
        )
    return {"cliente_id": cliente_id, "to": to, "message": message}, idempotency_key
