"""Fixtures of the hostile-input suite: one real stack (session-manager + hub processes) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault.stack import Stack

PAIRED = [11, 12]  # two clientes, each with a READY sandbox session and a user API key of its own


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Modules may set `HUB_ENV` to configure their hub (e.g. a known JWT secret)."""
    s = Stack(tmp_path_factory.mktemp("hostile"), hub_env=dict(getattr(request.module, "HUB_ENV", {})))
    try:
        s.start()
        s.add_clientes(PAIRED)
        yield s
    finally:
        s.close()
