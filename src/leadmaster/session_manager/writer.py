"""The store's writer: group commit, so a send's durable rows cost a fraction of a commit each.

Every write of the session-manager goes through `GroupCommitWriter`: a lane commits whatever has queued up
while it was writing the batch before, and each caller is answered only once its rows are durable. Nothing
here blocks the event loop.

* SQLite: one lane, a thread with one connection, each batch one transaction (writer_tx.py) that merges
  consecutive rows of the same statement into one executemany.
* PostgreSQL: three lanes, each a task of the event loop with an asyncio connection (writer_loop.py); the
  send path's usual batches are one autocommitted statement each (writer_pg.py), anything else a
  transaction in a thread. Nothing is written with an executemany (writes.Rows says why).

Two weaker kinds of write, for rows whose loss in a database crash costs nothing but a redundant re-send:
* *relaxed*: on PostgreSQL these commit with `synchronous_commit off`: the row survives our process dying
  (what the fault suite exercises), not the database server crashing, which is what SQLite's WAL +
  `synchronous=NORMAL` gives every write;
* *lazy* (also relaxed): no commit of its own: on SQLite it rides with the next write, or is committed
  after `LAZY_SECONDS` when nothing else comes; on PostgreSQL it is held and written with the other lazy
  writes of the next `LAZY_SECONDS`, one statement for them all.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading

from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine

from leadmaster.session_manager.writer_loop import LoopLane
from leadmaster.session_manager.writer_tx import execute
from leadmaster.session_manager.writes import Checked, FenceRejected, Job, Returning, Rows, Write, resolve_threadsafe

__all__ = ["Checked", "FenceRejected", "GroupCommitWriter", "Job", "Returning", "Rows", "Write"]

logger = logging.getLogger("leadmaster.session_manager.store")

LAZY_SECONDS = 0.05


class GroupCommitWriter:
    """Lanes that commit queued writes in batches and resolve each caller's future.

    On PostgreSQL relaxed writes have a lane of their own, so that they never wait behind a durable batch's
    WAL flush, and message-status writes (`status`: relaxed, one ordered stream, see messages.py) another,
    so that two receipts per message do not queue the sandbox outbox behind them; SQLite has one lane (one
    writer at a time, and every commit is alike).
    """

    def __init__(self, engine: SqlEngine) -> None:
        self.durable: LoopLane | _Lane
        self.relaxed: LoopLane | _Lane
        self.status: LoopLane | _Lane
        if engine.dialect.name == "postgresql":
            self.durable = LoopLane(engine, "store-writer", relaxed=False, idempotent=False,
                                    lazy_seconds=LAZY_SECONDS)
            self.relaxed = LoopLane(engine, "store-writer-relaxed", relaxed=True, idempotent=False,
                                    lazy_seconds=LAZY_SECONDS)
            self.status = LoopLane(engine, "store-writer-status", relaxed=True, idempotent=True,
                                   lazy_seconds=LAZY_SECONDS)
        else:
            self.durable = self.relaxed = self.status = _Lane(engine, "store-writer")

    async def write(self, *writes: Write, relaxed: bool = False, status: bool = False) -> bool:
        """Commit `writes` together; False when a `Returning` insert found its row already there."""
        return await self.submit(*writes, relaxed=relaxed, status=status)

    def submit(self, *writes: Write, lazy: bool = False, relaxed: bool = False,
               status: bool = False) -> asyncio.Future[bool]:
        """Queue `writes`; the future resolves once they are committed (lazy: with the next batch)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        lane = self.status if status else self.relaxed if relaxed or lazy else self.durable
        lane.put(Job(list(writes), future, lazy))
        return future

    async def aclose(self) -> None:
        """Commit what is queued and close (from the event loop: PostgreSQL's lanes run on it)."""
        for lane in self._lanes():
            if isinstance(lane, LoopLane):
                await lane.aclose()

    def close(self) -> None:
        for lane in self._lanes():
            lane.close()

    def _lanes(self) -> list[LoopLane | _Lane]:
        return list({id(lane): lane for lane in (self.durable, self.relaxed, self.status)}.values())


class _Lane:
    """SQLite's lane: a thread with one connection, each batch one transaction."""

    def __init__(self, engine: SqlEngine, name: str) -> None:
        self.engine = engine
        self.queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def put(self, job: Job) -> None:
        self.queue.put(job)

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

    def _drain(self, batch: list[Job]) -> bool:
        while True:
            try:
                more = self.queue.get_nowait()
            except queue.Empty:
                return False
            if more is None:
                return True
            batch.append(more)

    def _connection(self) -> Connection:
        # One connection for the writer's life: no pool checkout per batch.
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self.engine.connect()
        return self._conn

    def _commit(self, batch: list[Job]) -> None:
        try:
            conn = self._connection()
            with conn.begin():
                execute(conn, batch)
        except Exception:
            if self._conn is not None:
                self._conn.invalidate()  # a broken connection is replaced on the next batch
            if len(batch) == 1:
                logger.exception("store write failed")
                resolve_threadsafe(batch[0], RuntimeError("store write failed"))
            else:
                # One bad write must not fail its neighbours: retry each on its own.
                for job in batch:
                    self._commit([job])
            return
        for job in batch:
            resolve_threadsafe(job, FenceRejected("this node no longer holds the instance's lease")
                                if job.fenced_out else None)
