"""cliente → instance_id resolution, cached; kept true to the database by CacheCoherence (auth/coherence.py)."""

from collections.abc import Sequence

from leadmaster.central_hub import errors
from leadmaster.central_hub.auth.coherence import CacheCoherence
from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.models import Cliente
from leadmaster.central_hub.db.session import Database
from leadmaster.contract.ids import CLIENTE_ID_MAX


class ClienteDirectory:
    def __init__(self, db: Database, coherence: CacheCoherence | None = None) -> None:
        self.db = db
        self.coherence = coherence or CacheCoherence()
        self._instances: dict[int, str] = {}
        self.coherence.register(self._instances.clear)

    async def instance_id(self, cliente_id: int) -> str:
        found = self._instances.get(cliente_id)
        if found is not None and self.coherence.trusted:
            return found
        generation = self.coherence.generation
        # An id no database column can hold names no cliente (and would overflow the query).
        rows: Sequence[Cliente] = ()
        if 0 < cliente_id <= CLIENTE_ID_MAX:
            rows = await self.db.run(lambda s: repo.clientes(s, only=cliente_id))
        if not rows:
            raise errors.NotFoundError(
                f"No cliente with id {cliente_id}; an admin creates it with POST /api/admin/clientes."
            )
        if self.coherence.may_store(generation):
            self._instances[cliente_id] = rows[0].instance_id
        return rows[0].instance_id

    def remember(self, cliente_id: int, instance_id: str) -> None:
        if self.coherence.trusted:
            self._instances[cliente_id] = instance_id
