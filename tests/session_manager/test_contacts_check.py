"""CONTRACT §5 number check: READY only, request order, cached per instance, uncached lookups limited per hour."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from leadmaster.session_manager.contacts import ContactChecker
from leadmaster.session_manager.engines.sandbox import SandboxEngine
from leadmaster.session_manager.service import SessionService
from tests.session_manager.conftest import Harness, pair

S = "/api/session-manager/sessions"


def svc_of(harness: Harness) -> SessionService:
    svc: SessionService = harness.app.state.service
    return svc


def lookups(harness: Harness, instance: str = "admin") -> int:
    engine = svc_of(harness).engine
    assert isinstance(engine, SandboxEngine)
    return engine.sims[instance].lookups


async def check(client: httpx.AsyncClient, phones: Any, instance: str = "admin") -> httpx.Response:
    return await client.post(f"{S}/{instance}/contacts/check", json={"phones": phones})


async def test_only_when_ready(harness: Harness) -> None:
    client = await harness.start()
    r = await check(client, ["5491123456789"])
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY"
    assert r.json()["status"] == "DISCONNECTED" and r.headers["Retry-After"]


async def test_answers_in_request_order_with_jids(harness: Harness) -> None:
    client = await harness.start()
    await pair(client)
    r = await client.post(
        "/api/session-manager/sandbox/admin/faults", json={"not_on_whatsapp": ["+5491100000002"]}
    )
    assert r.status_code == 200, r.text
    phones = ["5491100000003", "+5491100000002", "5491100000001@c.us", "5491100000003"]
    r = await check(client, phones)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "results": [
            {"phone": "5491100000003", "on_whatsapp": True, "jid": "5491100000003@s.whatsapp.net"},
            {"phone": "+5491100000002", "on_whatsapp": False, "jid": None},
            {"phone": "5491100000001@c.us", "on_whatsapp": True, "jid": "5491100000001@s.whatsapp.net"},
            {"phone": "5491100000003", "on_whatsapp": True, "jid": "5491100000003@s.whatsapp.net"},
        ]
    }
    assert lookups(harness) == 3  # a repeated number is asked about once


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"phones": []},
        {"phones": "5491123456789"},
        {"phones": ["5491123456789"] * 51},
        {"phones": ["12345"]},
        {"phones": [5491123456789]},
        {"phones": ["5491123456789", "group@g.us"]},
        {"phones": [None]},
    ],
)
async def test_malformed_lists_are_invalid_phones(harness: Harness, body: dict[str, Any]) -> None:
    client = await harness.start()
    await pair(client)
    r = await client.post(f"{S}/admin/contacts/check", json=body)
    assert r.status_code == 400 and r.json()["code"] == "INVALID_PHONES", r.text


async def test_non_object_body_is_invalid_json(harness: Harness) -> None:
    client = await harness.start()
    r = await client.post(f"{S}/admin/contacts/check", content=b"[1]")
    assert r.status_code == 400 and r.json()["code"] == "INVALID_JSON"


async def test_answers_are_cached_per_instance(harness: Harness) -> None:
    client = await harness.start()
    await pair(client)
    await pair(client, "other")
    first = (await check(client, ["5491100000001", "5491100000002"])).json()
    assert lookups(harness) == 2
    # The answer changes on WhatsApp's side, but the cached one is served without asking again.
    await client.post("/api/session-manager/sandbox/admin/faults", json={"not_on_whatsapp": ["5491100000001"]})
    assert (await check(client, ["5491100000002", "5491100000001"])).json()["results"] == first["results"][::-1]
    assert lookups(harness) == 2
    await check(client, ["5491100000001"], "other")  # another instance has its own cache
    assert lookups(harness, "other") == 1


async def test_cache_expires_after_the_configured_hours(harness: Harness) -> None:
    client = await harness.start(contact_cache_hours=0)
    await pair(client)
    await check(client, ["5491100000001"])
    await check(client, ["5491100000001"])
    assert lookups(harness) == 2


async def test_uncached_lookups_are_limited_per_hour_with_retry_after(harness: Harness) -> None:
    client = await harness.start(contact_checks_per_hour=5)
    await pair(client)
    checker = svc_of(harness).contacts
    now = [1_000_000.0]
    checker.clock = lambda: now[0]
    assert (await check(client, ["5491100000001", "5491100000002", "5491100000003"])).status_code == 200
    now[0] += 600
    r = await check(client, ["5491100000004", "5491100000005", "5491100000006"])
    assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED"
    assert r.headers["Retry-After"] == "3000"  # when the first three lookups leave the hour
    assert "5" in r.json()["message"] and lookups(harness) == 3
    # Cached numbers never count, and what still fits passes.
    assert (await check(client, ["5491100000001", "5491100000004", "5491100000005"])).status_code == 200
    assert lookups(harness) == 5
    r = await check(client, ["5491100000006"])
    assert r.status_code == 429 and r.headers["Retry-After"] == "3000"
    now[0] += 3000
    assert (await check(client, ["5491100000006"])).status_code == 200


async def test_a_request_bigger_than_the_hourly_limit_waits_a_whole_hour(harness: Harness) -> None:
    client = await harness.start(contact_checks_per_hour=2)
    await pair(client)
    r = await check(client, ["5491100000001", "5491100000002", "5491100000003"])
    assert r.status_code == 429 and r.headers["Retry-After"] == "3600"


async def test_the_limit_lives_in_the_store_not_in_memory(harness: Harness) -> None:
    client = await harness.start(contact_checks_per_hour=2)
    await pair(client)
    assert (await check(client, ["5491100000001", "5491100000002"])).status_code == 200
    svc = svc_of(harness)
    # A fresh checker, as after a restart or on the node an instance moved to, reads the same hour.
    svc.contacts = ContactChecker(svc)
    r = await check(client, ["5491100000003"])
    assert r.status_code == 429 and 3500 < int(r.headers["Retry-After"]) <= 3600
    assert (await check(client, ["5491100000002"])).status_code == 200  # and the same cache


async def test_engine_that_cannot_check_answers_503_and_gives_the_lookups_back(harness: Harness) -> None:
    client = await harness.start(contact_checks_per_hour=1)
    await pair(client)
    engine = svc_of(harness).engine
    assert isinstance(engine, SandboxEngine)
    engine.sims["admin"].status = engine.sims["admin"].status.DISCONNECTED  # the socket dropped under us
    r = await check(client, ["5491100000001"])
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY"
    engine.sims["admin"].status = engine.sims["admin"].status.READY
    assert (await check(client, ["5491100000001"])).status_code == 200


async def test_faults_validate_the_new_fields(harness: Harness) -> None:
    client = await harness.start()
    for body in (
        {"undelivered": 1},
        {"undelivered": None},
        {"not_on_whatsapp": "5491100000001"},
        {"not_on_whatsapp": ["abc"]},
        {"not_on_whatsapp": [5491100000001]},
    ):
        r = await client.post("/api/session-manager/sandbox/admin/faults", json=body)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_FAULT", body
    schema = harness.app.openapi()["paths"]["/api/session-manager/sandbox/{instance_id}/faults"]["post"]
    props = schema["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"undelivered", "not_on_whatsapp", "send_error"} <= set(props)
