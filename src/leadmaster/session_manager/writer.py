"""The store's one writer thread: group commit, so a send's durable rows cost a fraction of a commit each.

Every write of the session-manager goes through `GroupCommitWriter`: one thread with one connection
commits whatever has queued up in one transaction, merging consecutive rows of the same statement into one
executemany, and each caller is answered only once its rows are durable. Nothing here blocks the event
loop.

Two weaker kinds of write, for rows whose loss in a database crash costs nothing but a redundant re-send:
* *relaxed*: on PostgreSQL these commit with `synchronous_commit off`: the row survives our process dying
  (what the fault suite exercises), not the database server crashing, which is what SQLite's WAL +
  `synchronous=NORMAL` gives every write;
* *lazy* (also relaxed): no commit of its own: it rides with the next write, or is committed after
  `LAZY_SECONDS` when nothing else comes (on PostgreSQL right after the next batch's own statement).

On PostgreSQL the send path's usual batches are not a transaction but one autocommitted statement each
(writer_pg.py), and nothing is written with an executemany (writes.Rows says why).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as SqlEngine

from leadmaster.session_manager import writer_pg
from leadmaster.session_manager.writes import Checked, FenceRejected, Job, Returning, Rows, Write, runs

__all__ = ["Checked", "FenceRejected", "GroupCommitWriter", "Job", "Returning", "Rows", "Write"]

logger = logging.getLogger("leadmaster.session_manager.store")

LAZY_SECONDS = 0.05


class GroupCommitWriter:
    """Writer threads that commit queued statements in batches and resolve each caller's future.

    On PostgreSQL relaxed writes have a lane (thread and connection) of their own, so that they never wait
    behind a durable batch's WAL flush, and message-status writes (`status`: relaxed, one ordered stream, see
    messages.py) another, so that two receipts per message do not queue the sandbox outbox behind them;
    SQLite has one lane (one writer at a time, and every commit is alike).
    """

    def __init__(self, engine: SqlEngine) -> None:
        postgres = engine.dialect.name == "postgresql"
        self.durable = _Lane(engine, "store-writer", relaxed=False)
        self.relaxed = _Lane(engine, "store-writer-relaxed", relaxed=True) if postgres else self.durable
        self.status = _Lane(engine, "store-writer-status", relaxed=True, idempotent=True) if postgres \
            else self.durable

    async def write(self, *writes: Write, relaxed: bool = False, status: bool = False) -> bool:
        """Commit `writes` together; False when a `Returning` insert found its row already there."""
        return await self.submit(*writes, relaxed=relaxed, status=status)

    def submit(self, *writes: Write, lazy: bool = False, relaxed: bool = False,
               status: bool = False) -> asyncio.Future[bool]:
        """Queue `writes`; the future resolves once they are committed (lazy: with the next batch)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        lane = self.status if status else self.relaxed if relaxed or lazy else self.durable
        lane.queue.put(Job(list(writes), future, lazy))
        return future

    def close(self) -> None:
        for lane in {id(lane): lane for lane in (self.durable, self.relaxed, self.status)}.values():
            lane.close()


class _Lane:
    def __init__(self, engine: SqlEngine, name: str, relaxed: bool, idempotent: bool = False) -> None:
        self.engine = engine
        self.relaxed = relaxed
        self.postgres = engine.dialect.name == "postgresql"
        self.idempotent = idempotent  # every job's statements may run twice: a failed one is tried once more
        self.queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._conn: Connection | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

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
        # One connection for the writer's life: no pool checkout (and no pre-ping round trip) per batch.
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            self._conn = self.engine.connect()
            if self.relaxed:
                # For the connection's life: no extra statement per batch.
                self._conn.exec_driver_sql("SET synchronous_commit TO OFF")
                self._conn.commit()
        return self._conn

    def _commit(self, batch: list[Job], again: bool = False) -> None:
        plan = writer_pg.plan(batch, self.relaxed) if self.postgres else None
        if plan is not None and len(plan.jobs) < len(batch):
            # The eager jobs first, then the lazy ones (finished answers: no order with the others).
            eager = {id(job) for job in plan.jobs}
            self._commit(plan.jobs, again)
            self._commit([job for job in batch if id(job) not in eager], again)
            return
        try:
            if plan is not None:
                writer_pg.run(self._connection().connection.driver_connection, plan)
            else:
                conn = self._connection()
                with conn.begin():
                    self._execute(conn, batch)
            results: list[BaseException | None] = [
                FenceRejected("this node no longer holds the instance's lease") if job.fenced_out else None
                for job in batch
            ]
        except Exception:
            if self._conn is not None:
                self._conn.invalidate()  # a broken connection is replaced on the next batch
            if len(batch) == 1 and self.idempotent and not again:
                # Its statements may run twice (inserts that skip a row already there, forward-only updates):
                # once more on a new connection, so that a transaction the database ended (a node frozen past
                # the idle-in-transaction limit, store.py) or a dropped connection loses no status row.
                logger.warning("store write failed; writing it again on a new connection", exc_info=True)
                self._commit(batch, again=True)
                return
            if len(batch) == 1:
                logger.exception("store write failed")
                fenced = any(isinstance(stmt, Checked) for stmt, _ in batch[0].writes)
                # A fenced write whose transaction the database ended (the node froze past the store's
                # idle-in-transaction limit, store.py) was not written: the lease may be another node's by now.
                results = [FenceRejected("the fenced write did not commit") if fenced
                           else RuntimeError("store write failed")]
            else:
                # One bad write must not fail its neighbours: retry each on its own.
                for job in batch:
                    self._commit([job])
                return
        for job, error in zip(batch, results, strict=True):
            job.future.get_loop().call_soon_threadsafe(_resolve, job.future, job.inserted, error)

    @staticmethod
    def _execute(conn: Connection, batch: list[Job]) -> None:
        distinct: dict[Checked, dict[tuple[tuple[str, Any], ...], dict[str, Any]]] = {}
        for job in batch:
            job.inserted = True
            for stmt, params in job.writes:
                if isinstance(stmt, Checked):
                    distinct.setdefault(stmt, {})[tuple(sorted(params.items()))] = params
        # Fences first, each distinct one once, in lock order: a job that fails one writes nothing at all.
        checks: dict[tuple[Checked, tuple[tuple[str, Any], ...]], bool] = {}
        for check, found in distinct.items():
            keys = sorted(found, key=lambda k: str(found[k][check.lock_key]))
            for k, passed in zip(keys, check.check_all(conn, [found[k] for k in keys]), strict=True):
                checks[check, k] = passed
        for job in batch:
            job.fenced_out = any(
                isinstance(stmt, Checked) and not checks[stmt, tuple(sorted(params.items()))]
                for stmt, params in job.writes
            )
        written = runs((stmt, params) for job in batch if not job.fenced_out for stmt, params in job.writes
                       if not isinstance(stmt, Checked))
        inserted: dict[Returning, set[tuple[Any, ...]]] = {}
        postgres = conn.dialect.name == "postgresql"
        for stmt, rows in written:
            # One statement per run of the same statement where possible: the point of batching. On PostgreSQL
            # never an executemany (writes.Rows says why): one statement per row where there is no `many` form.
            if isinstance(stmt, Returning):
                # One INSERT … VALUES (…), (…) RETURNING (SQLAlchemy's "insertmanyvalues"), not an executemany.
                inserted.setdefault(stmt, set()).update(tuple(r) for r in conn.execute(stmt.stmt, rows))
            elif isinstance(stmt, str | Rows):
                # Driver SQL (message statuses, two receipts per message): no per-row SQLAlchemy compile work,
                # which would hold the GIL the event loop needs.
                if postgres:
                    for sql, params in writer_pg.statements(stmt, rows):
                        conn.exec_driver_sql(sql, params)
                else:
                    conn.exec_driver_sql(stmt.one if isinstance(stmt, Rows) else stmt, rows)
            elif postgres:
                for params in rows:
                    conn.execute(stmt, params)
            else:
                conn.execute(stmt, rows)
        for job in batch:
            if job.fenced_out:
                continue
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
