"""Input the databases cannot store is refused up front (4xx), never a driver error (found by fuzzing)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.central_hub.conftest import HubClient


async def test_revoking_an_api_key_id_beyond_the_integer_column_is_404(hub: HubClient) -> None:
    r = await hub.http.delete("/api/admin/api-keys/2147483648", headers=hub.auth())
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/login", {"username": "ad\x00min", "password": "whatever-123"}),
        ("/api/admin/users", {"username": "bo\x00b", "password": "long-enough-1", "role": "admin"}),
        ("/api/admin/clientes", {"id": 77, "name": "Ac\x00me"}),
        ("/api/admin/api-keys", {"name": "k\x00", "role": "admin"}),
    ],
)
async def test_nul_characters_in_stored_text_are_400(hub: HubClient, path: str, body: dict[str, Any]) -> None:
    r = await hub.http.post(path, json=body, headers=hub.auth())
    assert r.status_code == 400 and r.json()["code"] == "VALIDATION_ERROR"
