"""The whatsmeow engine with the Go worker's test-only operations (tests and benches only, never production)."""

from __future__ import annotations

from typing import Any

from leadmaster.session_manager.engines.whatsmeow import WhatsmeowEngine
from leadmaster.session_manager.engines.whatsmeow.engine import CALL_TIMEOUT


class TestableEngine(WhatsmeowEngine):
    """Adds calls to the worker's `test_*` operations, which it refuses unless started with test_hooks=True."""

    __test__ = False  # not a pytest test class despite its name

    async def test_attach(self, instance_id: str) -> None:
        """Give `instance_id` a fake connected client under a new generation, as `connect` would."""
        gen = self._wanted[instance_id] = next(self._gens)
        await self._call("test_attach", {"instance": instance_id, "gen": gen}, CALL_TIMEOUT)

    async def test_drive(self, instance_id: str, steps: list[dict[str, Any]]) -> None:
        """Feed real whatsmeow events (built in the worker) to an attached instance."""
        await self._call("test_drive", {"instance": instance_id, "steps": steps}, CALL_TIMEOUT)

    async def call_worker(self, op: str, args: dict[str, Any] | None = None, within: float = CALL_TIMEOUT) -> Any:
        """Any worker operation by name (ping, test_seed, test_hang, ...)."""
        return await self._call(op, args or {}, within)
