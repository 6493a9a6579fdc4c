"""What the store hands the group-commit writer (writer.py): statements, fences, and the job around them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass(frozen=True, eq=False)
class Returning:
    """An INSERT ... ON CONFLICT DO NOTHING RETURNING `keys`: the writer tells each caller if its row went in."""

    stmt: Any
    keys: tuple[str, ...]
    # PostgreSQL: the table, for the one-statement form of a batch of these inserts (writer_pg.py); `keys`
    # are its conflict target.
    table: sa.Table | None = None


@dataclass(frozen=True, eq=False)
class Checked:
    """A query that must return a row, or none of its job's writes happen and the job fails with FenceRejected.

    The cluster's lease fence (cluster/schema.py): it locks the lease row it reads until the commit, so a
    takeover cannot slip between the check and the writes it guards. A batch runs each distinct check once,
    in the order of its `lock_key` parameter: every transaction that locks several of these rows must take
    them in one order (code-point order, PostgreSQL's `COLLATE "C"`), or it deadlocks with the heartbeat's
    renewal, which locks them all (cluster/leases.py).
    """

    stmt: Any
    lock_key: str
    # Optional: one statement that checks many parameter sets at once, locking in `lock_key` order, and says
    # per set (in the order given) whether it passed: a batch fencing 16 instances then costs one round trip.
    many: Callable[[Connection, list[dict[str, Any]]], list[bool]] | None = None
    # PostgreSQL, for the one-statement form (writer_pg.py): a SELECT of the `fence_i, fence_t` pairs that
    # pass for the node `%(fence_n)s` among the instances `%(fence_ids)s`, locking in `lock_key` order.
    passing: str | None = None

    def check_all(self, conn: Connection, params: list[dict[str, Any]]) -> list[bool]:
        """Each parameter set's check; `params` come sorted by `lock_key`."""
        if self.many is not None and len(params) > 1:
            return self.many(conn, params)
        return [conn.execute(self.stmt, p).first() is not None for p in params]


class FenceRejected(Exception):
    """A fenced write found that this node no longer holds the instance's lease."""


@dataclass(frozen=True, eq=False)
class Rows:
    """Driver SQL whose parameter sets may be written many at a time.

    `one` takes one parameter set; `many` (PostgreSQL) takes them all in one statement, as one JSON array of
    objects, `%(rows)s` (`json_to_recordset`): one string that orjson makes, where array parameters cost
    psycopg a Python-level dump per element (a fifth of the service's CPU at 16 clients). The writer never
    uses psycopg's executemany on PostgreSQL: it pipelines its statements, and a client frozen before the
    pipeline's Sync (SIGSTOP, a stalled VM) keeps every lock they took, because PostgreSQL arms its
    idle-in-transaction limit only once it has answered a Sync (tests/cluster/test_no_pipeline.py).
    """

    one: str
    many: str | None = None
    # The `many` form joins its rows to the table (UPDATE … FROM): planned for each batch, never prepared
    # (writer_pg.py says why).
    joined: bool = False


Write = tuple[Any, dict[str, Any]]  # (statement, driver SQL string, Returning or Checked; parameters)


@dataclass(slots=True)
class Job:
    """A caller's writes, committed together, and what became of them."""

    writes: list[Write]
    future: asyncio.Future[bool]
    lazy: bool = False
    inserted: bool = field(default=True)
    fenced_out: bool = False


def resolve(job: Job, error: BaseException | None) -> None:
    """Answer the caller of `job` (on its loop's thread): what it inserted, or `error`."""
    future = job.future
    if future.done() or future.get_loop().is_closed():
        return
    if error is None:
        future.set_result(job.inserted)
    else:
        future.set_exception(error)


def resolve_threadsafe(job: Job, error: BaseException | None) -> None:
    """`resolve` from any thread."""
    loop = job.future.get_loop()
    if not loop.is_closed():
        loop.call_soon_threadsafe(resolve, job, error)


def runs(writes: Iterable[Write]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Consecutive writes of the same statement object as one run (statement, parameter sets): the writer
    writes each run as one statement where it can, the point of batching."""
    merged: list[tuple[Any, list[dict[str, Any]]]] = []
    for stmt, params in writes:
        if merged and merged[-1][0] is stmt:
            merged[-1][1].append(params)
        else:
            merged.append((stmt, [params]))
    return merged
