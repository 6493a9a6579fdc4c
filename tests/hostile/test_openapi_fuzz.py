"""Property-based fuzzing of both OpenAPI documents (schemathesis) against the real processes.

Whatever the input: never a 5xx, always a JSON body (but the QR image formats), and the body matches the
documented schema of its status. The hub is driven with the admin token so that routes run past 401.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import response_schema_conformance

from tests.fault.stack import SM_KEY, Stack

EXAMPLES = 20
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
NOT_JSON = ("image/png", "image/svg+xml", "text/plain; version=0.0.4")
STATE_ERRORS = {(503, "SESSION_NOT_READY"), (503, "SERVICE_UNAVAILABLE")}


@pytest.fixture(scope="module")
def sm_schema(stack: Stack) -> Any:
    assert stack.sm is not None
    return schemathesis.openapi.from_url(stack.sm.base_url + "/openapi.json",
                                         headers={"Authorization": f"Bearer {SM_KEY}"})


@pytest.fixture(scope="module")
def hub_schema(stack: Stack) -> Any:
    return schemathesis.openapi.from_url(stack.hub_url + "/openapi.json")


def check(case: Any, base_url: str, token: str) -> None:
    response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    # Not JSON by design: the QR images, Prometheus' text format, and a 204's empty body.
    if not content_type.startswith(NOT_JSON) and response.status_code != 204:
        assert content_type.startswith("application/json"), (response.status_code, content_type, response.text)
        body = response.json()
        # A 503 "session not ready" is the state of the sandbox session, not the input's fault; any other
        # 5xx (INTERNAL_ERROR, or the hub's mapping of one) is a bug the input found.
        if response.status_code >= 500:
            code = body.get("code") if isinstance(body, dict) else None
            assert (response.status_code, code) in STATE_ERRORS, (case.as_curl_command(), response.text)
    case.validate_response(response, checks=[response_schema_conformance])


def fuzz(schema: Any, base_url: str, token: str) -> None:
    """Every operation of `schema`, EXAMPLES generated cases each; all failures reported together."""
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations
    for operation in operations:
        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            check(case, base_url, token)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # keep going: one report with every broken operation
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_session_manager_survives_any_input(sm_schema: Any, stack: Stack) -> None:
    assert stack.sm is not None
    fuzz(sm_schema, stack.sm.base_url, SM_KEY)


@pytest.mark.slow
def test_hub_survives_any_input(hub_schema: Any, stack: Stack) -> None:
    fuzz(hub_schema, stack.hub_url, stack.token)
