"""Fixtures of the fault suite: one real stack (session-manager + hub processes) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault.stack import Stack


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Modules set `HUB_ENV` / `SM_ENV` dicts to configure their stack (e.g. a small read timeout)."""
    s = Stack(tmp_path_factory.mktemp("fault"), sm_env=dict(getattr(request.module, "SM_ENV", {})),
              hub_env=dict(getattr(request.module, "HUB_ENV", {})))
    try:
        yield s.start()
    finally:
        s.close()
