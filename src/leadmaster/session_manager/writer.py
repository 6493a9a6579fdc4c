"""The store's one writer thread: group commit, so a send's durable rows cost a fraction of a commit each.

Every write of the session-manager goes through `GroupCommitWriter`: one thread with one connection
commits whatever has queued up in one transaction, merging consecutive rows of the same statement into one
executemany, and each caller is answered only once its rows are durable. Nothing here blocks the event
loop. A *lazy* write (a row whose loss a crash may cost, see idempotency.py) does not get a commit of its
own: it rides with the next write, or is committed after `LAZY_SECONDS` when nothing else comes.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine

logger = logging.getLogger("leadmaster.session_manager.store")

LAZY_SECONDS = 0.05


@dataclass(frozen=True, eq=False)
class Returning:
    """An INSERT ... ON CONFLICT DO NOTHING RETURNING `keys`: the writer tells each caller if its row went in."""

    stmt: Any
    keys: tuple[str, ...]


Write = tuple[Any, dict[str, Any]]  # (statement or Returning, parameters)


@dataclass(slots=True)
class _Job:
    writes: list[Write]
    future: asyncio.Future[bool]
    lazy: bool = False
    inserted: bool = field(default=True)


class GroupCommitWriter:
    """A writer thread that commits queued statements in batches and resolves each caller's future."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine
        self.queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self.thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.thread.start()

    async def write(self, *writes: Write) -> bool:
        """Commit `writes` together; False when a `Returning` insert found its row already there."""
        return await self.submit(*writes)

    def submit(self, *writes: Write, lazy: bool = False) -> asyncio.Future[bool]:
        """Queue `writes`; the future resolves once they are durable (lazy: with the next batch)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.put(_Job(list(writes), future, lazy))
        return future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(10)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self.queue.get()
            if item is None:
                break
            batch = [item]
            stop = self._drain(batch)
            if not stop and all(job.lazy for job in batch):
                try:
                    more = self.queue.get(timeout=LAZY_SECONDS)
                except queue.Empty:
                    more = None
                else:
                    if more is None:
                        stop = True
                    else:
                        batch.append(more)
                        stop = self._drain(batch)
            self._commit(batch)
        if self._conn is not None:
            self._conn.close()

    def _drain(self, batch: list[_Job]) -> bool:
        while True:
            try:
                more = self.queue.get_nowait()
            except queue.Empty:
                return False
            if more is None:
                return True
            batch.append(more)

    def _connection(self) -> Connection:
        # One connection for the writer's life: no pool checkout (and no pre-ping round trip) per batch.
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self.engine.connect()
        return self._conn

    def _commit(self, batch: list[_Job]) -> None:
        try:
            conn = self._connection()
            with conn.begin():
                self._execute(conn, batch)
            results: list[BaseException | None] = [None] * len(batch)
        except Exception:
            if self._conn is not None:
                self._conn.invalidate()  # a broken connection is replaced on the next batch
            if len(batch) == 1:
                logger.exception("store write failed")
                results = [RuntimeError("store write failed")]
            else:
                # One bad write must not fail its neighbours: retry each on its own.
                for job in batch:
                    self._commit([job])
                return
        for job, error in zip(batch, results, strict=True):
            job.future.get_loop().call_soon_threadsafe(_resolve, job.future, job.inserted, error)

    @staticmethod
    def _execute(conn: Connection, batch: list[_Job]) -> None:
        runs: list[tuple[Any, list[dict[str, Any]]]] = []
        for job in batch:
            job.inserted = True
            for stmt, params in job.writes:
                if runs and runs[-1][0] is stmt:
                    runs[-1][1].append(params)
                else:
                    runs.append((stmt, [params]))
        inserted: dict[Returning, set[tuple[Any, ...]]] = {}
        for stmt, rows in runs:
            # One executemany per run of the same statement: the point of batching.
            if isinstance(stmt, Returning):
                inserted.setdefault(stmt, set()).update(tuple(r) for r in conn.execute(stmt.stmt, rows))
            else:
                conn.execute(stmt, rows)
        for job in batch:
            for stmt, params in job.writes:
                if isinstance(stmt, Returning) and tuple(params[k] for k in stmt.keys) not in inserted[stmt]:
                    job.inserted = False


def _resolve(future: asyncio.Future[bool], inserted: bool, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(inserted)
    else:
        future.set_exception(error)
