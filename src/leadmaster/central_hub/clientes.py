"""cliente → instance_id resolution, cached (a cliente's instance never changes once created)."""

from leadmaster.central_hub import errors
from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.session import Database


class ClienteDirectory:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._instances: dict[int, str] = {}

    async def instance_id(self, cliente_id: int) -> str:
        found = self._instances.get(cliente_id)
        if found is not None:
            return found
        rows = await self.db.run(lambda s: repo.clientes(s, only=cliente_id))
        if not rows:
            raise errors.NotFound(
                f"No cliente with id {cliente_id}; an admin creates it with POST /api/admin/clientes."
            )
        self._instances[cliente_id] = rows[0].instance_id
        return rows[0].instance_id

    def remember(self, cliente_id: int, instance_id: str) -> None:
        self._instances[cliente_id] = instance_id
