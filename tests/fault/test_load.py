"""10,000 sends through the hub, 64 concurrent callers over 8 clientes: none lost, doubled or mixed up."""

from __future__ import annotations

import asyncio

import pytest

from tests.fault.load import HANG_SECONDS, check_ledger, run_load
from tests.fault.stack import Stack

CLIENTES = list(range(101, 109))
HUB_ENV = {"SESSION_MANAGER_CONNECT_TIMEOUT": "2", "SESSION_MANAGER_READ_TIMEOUT": "5",
           "CENTRAL_HUB_LOG_LEVEL": "WARNING"}
SM_ENV = {"SESSION_MANAGER_LOG_LEVEL": "WARNING"}


@pytest.mark.slow
def test_ten_thousand_sends_each_delivered_exactly_once(stack: Stack) -> None:
    stack.add_clientes(CLIENTES)
    results = asyncio.run(run_load(stack.hub_url, {c: stack.keys[c] for c in CLIENTES}, total=10_000,
                                   concurrency=64, tag="load", limit=HANG_SECONDS, stop_after=150))
    assert len(results) == 10_000, "the load did not finish within its time bound"
    outcomes = check_ledger(results, {c: stack.outbox(c) for c in CLIENTES}, "load")
    # No fault was injected: every send must have gone through.
    assert outcomes == {"OK": 10_000}, outcomes
