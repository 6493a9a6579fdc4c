"""PostgreSQL: the writer's lanes on the event loop, so that a send's writes cost no thread hand-offs.

A lane thread costs each write two wake-ups (the thread's, then the event loop's through
`call_soon_threadsafe`) and holds the GIL beside the loop while it converts parameters: measured in the
service at one client, a keyed send's three writes spent 0.12-0.18 ms each outside their statement. Here a
lane is a task on the service's own loop with an asyncio psycopg connection (autocommit): it sends the
batch's statements (writer_pg.py), the loop waits on the socket with everything else, and the callers'
futures are resolved in place. Group commit is unchanged: whatever queued while a statement was out is the
next batch.

A batch that needs a transaction (the rare writes of connect, pairing, delete: writer_pg.plan says None)
runs in a thread on a connection of the store's pool, while its lane waits, so that a lane still commits in
queue order. Failures are handled as on SQLite's lane thread (writer.py): a broken connection is replaced,
status writes are written again once, others fail and say so, and one bad write never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine as SqlEngine

from leadmaster.session_manager import writer_pg
from leadmaster.session_manager.writer_conn import LaneConnection
from leadmaster.session_manager.writer_tx import execute
from leadmaster.session_manager.writes import Checked, FenceRejected, Job, resolve, resolve_threadsafe

logger = logging.getLogger("leadmaster.session_manager.store")

CLOSE_SECONDS = 10.0  # as long as SQLite's lane thread is given to finish at shutdown (writer.py)


class LoopLane:
    """One PostgreSQL connection written by a task of the event loop that first queues a write."""

    def __init__(self, engine: SqlEngine, name: str, relaxed: bool, idempotent: bool, lazy_seconds: float) -> None:
        self.engine = engine
        self.name = name
        self.relaxed = relaxed
        self.idempotent = idempotent  # every job's statements may run twice: a failed one is tried once more
        self.lazy_seconds = lazy_seconds
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._pending: list[Job] = []
        self._lazy: list[Job] = []  # lazy jobs held until `_release_lazy`, `lazy_seconds` after the first
        self._lazy_timer: asyncio.TimerHandle | None = None
        self._kick: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: LaneConnection | None = None
        self._closing = False

    def put(self, job: Job) -> None:
        loop = job.future.get_loop()
        if self._loop is not loop:
            # A store outliving its loop (tests run one loop each): what the old one queued is written, and
            # the lane starts afresh on this one.
            self.close()
            self._loop = loop
        if self._task is None or self._task.done():
            # First write, or one after `aclose` (a write after shutdown is still written, never left waiting).
            self._closing = False
            self._task = loop.create_task(self._run(), name=self.name)
        if job.lazy and not self._closing:
            # Held, and written with the others of the next `lazy_seconds` as one statement, rather than one
            # statement per batch right after the next write.
            self._lazy.append(job)
            if self._lazy_timer is None:
                self._lazy_timer = loop.call_later(self.lazy_seconds, self._release_lazy)
            return
        self._pending.append(job)
        self._wake()

    def _release_lazy(self) -> None:
        self._lazy_timer = None
        self._pending += self._lazy
        self._lazy = []
        self._wake()

    def _wake(self) -> None:
        if self._kick is not None and not self._kick.done():
            self._kick.set_result(None)

    async def _wait(self) -> None:
        """Until the next job is queued."""
        assert self._loop is not None
        self._kick = self._loop.create_future()
        try:
            await self._kick
        finally:
            self._kick = None

    async def _run(self) -> None:
        while self._pending or not self._closing:
            if not self._pending:
                await self._wait()
                continue
            batch, self._pending = self._pending, []
            try:
                await self._commit(batch)
            except Exception:
                # A bug, not a database error (those are handled in `_commit`): the lane must live on, and no
                # caller may wait forever.
                logger.exception("store writer lane failed")
                for job in batch:
                    resolve(job, RuntimeError("store write failed"))

    async def aclose(self) -> None:
        """Commit what is queued, then close the connection (from the lane's loop)."""
        self._closing = True
        if self._lazy_timer is not None:
            self._lazy_timer.cancel()
        self._release_lazy()
        task = self._task
        if task is not None:
            try:
                # It ends once nothing is queued (writes queued meanwhile included); a database that stopped
                # answering must not hold up shutdown.
                await asyncio.wait_for(asyncio.shield(task), CLOSE_SECONDS)
            except TimeoutError:
                logger.error("store writer lane did not finish its writes before shutdown")
                task.cancel()
        if self._task is task:
            self._task = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Synchronous close (no loop to run on): what is queued is written in a transaction of its own."""
        pending, self._pending, self._lazy = self._pending + self._lazy, [], []
        timer, self._lazy_timer = self._lazy_timer, None
        if timer is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(timer.cancel)
        if pending:
            try:
                self._transaction(pending)
                error = None
            except Exception as exc:
                logger.exception("store write failed")
                error = exc
            for job in pending:
                resolve_threadsafe(job, error)
        self._abandon()

    def _abandon(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and not task.get_loop().is_closed():
            task.get_loop().call_soon_threadsafe(task.cancel)
        if self._conn is not None:
            self._conn.abandon()  # the coroutine's close needs the lane's loop
            self._conn = None

    async def _connection(self) -> LaneConnection:
        if self._conn is None or self._conn.closed:
            conn = await LaneConnection.connect(self.conninfo, autocommit=True)
            # For the connection's life, not per batch. Every lane statement finds its rows by key, a batch's
            # as a join with its JSON rows; without statistics (a table younger than autovacuum's first
            # ANALYZE, or grown since) the planner hashes that join over a full scan of the table, a cost that
            # grows with the table (2 ms for 60 receipts at 13,000 messages, measured): no seq scan unless
            # there is no other way.
            settings = ["SET enable_seqscan TO off"] + (["SET synchronous_commit TO OFF"] if self.relaxed else [])
            await conn.execute("; ".join(settings))
            self._conn = conn
        return self._conn

    def _transaction(self, batch: list[Job]) -> None:
        with self.engine.connect() as conn, conn.begin():
            execute(conn, batch)

    async def _commit(self, batch: list[Job], again: bool = False) -> None:
        plan = writer_pg.plan(batch, self.relaxed)
        if plan is not None and len(plan.jobs) < len(batch):
            # The eager jobs first, then the lazy ones (finished answers: no order with the others).
            eager = {id(job) for job in plan.jobs}
            await self._commit(plan.jobs, again)
            await self._commit([job for job in batch if id(job) not in eager], again)
            return
        try:
            if plan is None:
                await asyncio.to_thread(self._transaction, batch)
            else:
                await writer_pg.run_async((await self._connection()).lane_cursor, plan)
        except Exception:
            if plan is not None and self._conn is not None:
                conn, self._conn = self._conn, None
                await conn.close()  # a broken connection is replaced on the next batch
            if len(batch) == 1 and self.idempotent and not again:
                # Its statements may run twice (inserts that skip a row already there, forward-only updates):
                # once more on a new connection, so that a dropped connection loses no status row.
                logger.warning("store write failed; writing it again on a new connection", exc_info=True)
                await self._commit(batch, again=True)
                return
            if len(batch) == 1:
                logger.exception("store write failed")
                fenced = any(isinstance(stmt, Checked) for stmt, _ in batch[0].writes)
                resolve(batch[0], FenceRejected("the fenced write did not commit") if fenced
                        else RuntimeError("store write failed"))
                return
            for job in batch:  # one bad write must not fail its neighbours: each on its own
                await self._commit([job])
            return
        for job in batch:
            resolve(job, FenceRejected("this node no longer holds the instance's lease") if job.fenced_out else None)

