"""The store behind the engines' narrow storage ports, so that no engine imports the store (see pyproject)."""

from __future__ import annotations

import asyncio
from typing import Any

from leadmaster.session_manager.engines.base import Account, EngineNotReady
from leadmaster.session_manager.store import FenceRejected, Store


class StoreSandboxStorage:
    """`engines.sandbox.SandboxStorage` on the session-manager's store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def device(self, instance_id: str) -> Account | None:
        found = await self.store.sandbox_device(instance_id)
        return Account(*found) if found is not None else None

    def save_device(self, instance_id: str, account: Account) -> asyncio.Future[bool]:
        return self.store.save_sandbox_device(instance_id, account.jid, account.phone, account.push_name)

    def delete_device(self, instance_id: str) -> asyncio.Future[bool]:
        return self.store.delete_sandbox_device(instance_id)

    async def add_outbox(self, instance_id: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        try:
            return await self.store.add_outbox(instance_id, entry)
        except FenceRejected:
            # Cluster fencing is the store's business; to the engine it is a session it may not use here.
            raise EngineNotReady("this node lost the instance's lease") from None

    async def outbox(self, instance_id: str) -> list[dict[str, Any]]:
        return await self.store.outbox(instance_id)
