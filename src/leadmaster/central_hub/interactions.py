"""The interaction log of CONTRACT §3.5: one log line and one DB row per session-manager call.

Rows are buffered in memory and written in batches by a background task, so a send never waits for the
database; readers flush first (read-your-writes) and shutdown flushes everything that is left.
"""

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.models import utcnow
from leadmaster.central_hub.db.session import Database
from leadmaster.common.logs import log

FLUSH_SECONDS = 0.5
BATCH_WAKE = 500
# When the database is down, rows wait in memory up to this many; older ones are dropped with a warning.
MAX_PENDING = 100_000


class InteractionLog:
    def __init__(self, db: Database, logger: logging.Logger) -> None:
        self.db = db
        self.logger = logger
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def record(
        self,
        *,
        request_id: str | None,
        actor: str,
        cliente_id: int | None,
        instance_id: str | None,
        operation: str,
        method: str,
        path: str,
        upstream_status: int | None,
        outcome: str,
        duration_ms: float,
    ) -> None:
        row = {
            "time": utcnow(), "request_id": request_id, "actor": actor, "cliente_id": cliente_id,
            "instance_id": instance_id, "operation": operation, "method": method, "path": path,
            "upstream_status": upstream_status, "outcome": outcome, "duration_ms": round(duration_ms, 3),
        }
        fields = {k: v for k, v in row.items() if k != "time"}
        log(self.logger, logging.INFO, "session-manager call", **fields)
        self._pending.append(row)
        if len(self._pending) >= BATCH_WAKE:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name="interaction-log-writer")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        """Write every buffered row now (the lock makes a reader wait for an in-flight batch too)."""
        async with self._lock:
            rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                await self.db.run(lambda s: repo.insert_interactions(s, rows))
            except Exception:
                self.logger.exception("interaction log write failed; keeping rows in memory")
                self._pending = (rows + self._pending)[-MAX_PENDING:]

    async def _writer(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            await self.flush()

    async def read(self, cliente_id: int | None, since: datetime | None, limit: int) -> list[dict[str, Any]]:
        await self.flush()
        rows = await self.db.run(lambda s: repo.interactions(s, cliente_id, since, limit))
        return [repo.interaction_out(r) for r in rows]
