"""Edges of every route, against the real processes: no slash redirects, out-of-range dates (issue 11 rows 6, 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fault.stack import SM_KEY, Stack
from tests.hostile.conftest import PAIRED

MINE = PAIRED[0]
INTERACTIONS = (f"/api/whatsapp/{MINE}/interactions", "/api/admin/interactions")


def paths(base: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    spec = httpx.get(base + "/openapi.json", headers=headers, timeout=10).json()
    return [(method.upper(), path.replace("{cliente_id}", str(MINE)).replace("{instance_id}", f"sender_{MINE}")
             .replace("{key_id}", "1").replace("{user_id}", "1").replace("{message_id}", "m1"))
            for path, ops in spec["paths"].items() for method in ops]


def test_no_route_of_either_service_redirects_a_trailing_slash(stack: Stack) -> None:
    assert stack.sm is not None
    for base, headers in ((stack.hub_url, {"Authorization": f"Bearer {stack.token}"}),
                          (stack.sm.base_url, {"Authorization": f"Bearer {SM_KEY}"})):
        found = paths(base, headers)
        assert len(found) > 10
        for method, path in [*found, ("GET", "/docs"), ("GET", "/login"), ("GET", "/admin"), ("GET", "/static")]:
            for variant in (path + "/", path + "//", "/" + path):
                r = httpx.request(method, base + variant, headers={**headers, "Host": "evil.example"}, timeout=10)
                assert "location" not in r.headers, (method, variant, r.status_code, r.headers)
                assert (r.status_code, r.json()["code"]) in ((404, "NOT_FOUND"), (405, "METHOD_NOT_ALLOWED")), (
                    method, variant, r.status_code, r.text)


def get_since(stack: Stack, path: str, since: str) -> httpx.Response:
    return httpx.get(stack.hub_url + path, params={"since": since},
                     headers={"Authorization": f"Bearer {stack.token}"}, timeout=10)


def test_out_of_range_since_is_a_validation_error(stack: Stack) -> None:
    for path in INTERACTIONS:
        for since in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T13:59:59+14:00"):
            r = get_since(stack, path, since)
            assert (r.status_code, r.json()["code"]) == (400, "VALIDATION_ERROR"), (path, since, r.text)
            assert since[:10] in r.json()["message"]
        for since in ("0001-01-01T00:00:00", "0001-01-01T14:00:00+14:00", "9999-12-31T23:59:59Z",
                      "9999-12-31T23:59:59.999999", "9999-12-31T09:59:59-14:00"):
            r = get_since(stack, path, since)
            assert r.status_code == 200, (path, since, r.text)


# Whole minutes, as ISO 8601 writes offsets (a seconds offset is malformed input: a 400 of its own).
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
EDGES = st.one_of(
    st.datetimes(timezones=st.one_of(st.none(), OFFSETS)),
    st.datetimes(max_value=datetime(1, 1, 2), timezones=OFFSETS),
    st.datetimes(min_value=datetime(9999, 12, 30), timezones=OFFSETS),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(value=EDGES)
def test_any_since_is_a_200_or_a_400_never_a_500(stack: Stack, value: datetime) -> None:
    try:
        value.astimezone(UTC) if value.tzinfo else value
        fits = True
    except OverflowError:
        fits = False
    for path in INTERACTIONS:
        r = get_since(stack, path, value.isoformat())
        body: Any = r.json()
        assert r.status_code == (200 if fits else 400), (path, value.isoformat(), r.text)
        assert fits or body["code"] == "VALIDATION_ERROR"
