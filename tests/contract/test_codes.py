"""Every error code of the contract is an ErrorCode, and every ErrorCode has an error class or plumbing behind it.

The contract's codes are listed here verbatim, section by section: a code added to CONTRACT.md goes here, then
into `leadmaster.contract.codes`, then into an error class of the service that answers it.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from leadmaster.central_hub import errors as hub_errors
from leadmaster.common.asgi import RequestContextMiddleware, install_json_errors
from leadmaster.contract.codes import ErrorCode
from leadmaster.contract.errors import ContractError
from leadmaster.session_manager import errors as sm_errors
from leadmaster.session_manager.engines import base as engine_base
from leadmaster.session_manager.engines import sandbox as sandbox_engine

CONTRACT = {
    "§2.1 sandbox": ["NO_QR_TO_SCAN"],
    "§2.3 single-admin routes": ["QR_NOT_AVAILABLE"],
    "§2.4 canonical routes": ["ALREADY_PAIRED", "SESSION_NOT_READY", "INVALID_INSTANCE_ID"],
    "§2.5 send and errors": [
        "INVALID_JSON", "INVALID_CLIENTE_ID", "INVALID_TO", "INVALID_MESSAGE", "IDEMPOTENCY_KEY_REUSED",
        "SESSION_NOT_READY", "SEND_FAILED", "INTERNAL_ERROR", "NOT_FOUND", "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE",
        "UNAUTHORIZED"],
    "§3.3 public API": ["INVALID_CREDENTIALS", "NOT_FOUND", "FORBIDDEN", "UNAUTHORIZED", "CONFLICT"],
    "§3.4 error mapping": [
        "VALIDATION_ERROR", "SERVICE_UNAVAILABLE", "WHATSAPP_ERROR", "SESSION_MANAGER_AUTH_FAILED", "RATE_LIMITED",
        "NOT_FOUND", "SESSION_MANAGER_BAD_RESPONSE", "SESSION_MANAGER_TIMEOUT", "SESSION_MANAGER_UNREACHABLE"],
    "§4 cluster": ["SESSION_NOT_READY", "SEND_OUTCOME_UNKNOWN", "TOO_MANY_ATTEMPTS"],
    "§5 delivery truth": ["MESSAGE_NOT_FOUND", "SESSION_NOT_READY", "INVALID_PHONES", "RATE_LIMITED"],
}
# Codes the project documents beyond the contract (docs/, the errors.py docstrings).
DOCUMENTED = ["BAD_REQUEST", "INVALID_PHONE", "INVALID_IDEMPOTENCY_KEY", "INVALID_FAULT", "PAIR_CODE_FAILED",
              "INVALID_SINCE", "INVALID_LIMIT", "CONTACT_CHECK_FAILED",
              "NOT_SUPPORTED", "HTTP_ERROR"]


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


SERVICE_ERRORS = [c for c in _subclasses(ContractError)
                  if c.__module__ in (sm_errors.__name__, hub_errors.__name__)]


async def _plumbing_codes() -> set[str]:
    """The codes the shared ASGI plumbing answers with, observed on a real app behind it."""
    app = FastAPI()

    @app.get("/teapot")
    def teapot() -> None:
        raise HTTPException(418)

    @app.get("/typed")
    def typed(n: int) -> int:
        return n

    install_json_errors(app, ErrorCode.BAD_REQUEST)
    wrapped = RequestContextMiddleware(app, logger=logging.getLogger("test"), api_key="k", max_body=8)
    seen = set()
    key = {"Authorization": "Bearer k"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapped), base_url="http://t") as http:
        for method, path, headers, body in [
            ("GET", "/teapot", {}, None),  # no API key
            ("GET", "/nowhere", key, None),
            ("DELETE", "/teapot", key, None),
            ("POST", "/teapot", key, b"x" * 9),  # over max_body
            ("GET", "/teapot", key, None),
            ("GET", "/typed?n=x", key, None),
        ]:
            r = await http.request(method, path, headers=headers, content=body)
            seen.add(r.json()["code"])
    assert seen == {"UNAUTHORIZED", "NOT_FOUND", "METHOD_NOT_ALLOWED", "PAYLOAD_TOO_LARGE", "HTTP_ERROR",
                    "BAD_REQUEST"}, seen
    return seen


@pytest.mark.parametrize("section", list(CONTRACT))
def test_every_contract_code_is_an_error_code(section: str) -> None:
    missing = [code for code in CONTRACT[section] if code not in ErrorCode.__members__]
    assert not missing, f"{section}: not in leadmaster.contract.codes.ErrorCode: {missing}"


def test_every_error_code_is_in_the_contract_or_documented() -> None:
    known = {code for codes in CONTRACT.values() for code in codes} | set(DOCUMENTED)
    assert sorted(set(ErrorCode.__members__) - known) == []


async def test_every_error_code_has_an_error_class_or_plumbing() -> None:
    produced = {c.code for c in SERVICE_ERRORS} | {ContractError.code} | await _plumbing_codes()
    assert sorted(set(ErrorCode) - produced) == [], "codes nothing answers with"
    assert sorted(produced - set(ErrorCode)) == [], "codes answered with that are not ErrorCode members"


@pytest.mark.parametrize("cls", SERVICE_ERRORS, ids=lambda c: f"{c.__module__.split('.')[1]}.{c.__name__}")
def test_error_classes_take_their_code_from_the_enum(cls: type[ContractError]) -> None:
    own = cls.__dict__.get("code", ErrorCode.INTERNAL_ERROR)
    assert type(own) is ErrorCode, f"{cls.__name__}.code = {own!r}: use ErrorCode.{own}, not a string literal"


def test_service_errors_end_in_error_and_engine_exceptions_do_not() -> None:
    """One naming rule across the layers: `SendFailed` is the engine's, `SendFailedError` the HTTP answer."""
    assert [c.__name__ for c in SERVICE_ERRORS if not c.__name__.endswith("Error")] == []
    engine = _subclasses(engine_base.EngineError) + [
        c for c in vars(sandbox_engine).values()
        if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == sandbox_engine.__name__]
    assert engine, "no engine exceptions found"
    assert [c.__name__ for c in engine if c.__name__.endswith("Error")] == []
