"""PostgreSQL: the batches the writer commits without BEGIN and COMMIT (autocommit), in as few statements as it can.

On PostgreSQL a statement costs about what its round trip does, whatever it does (measured here with psycopg
at one client: a fenced insert as BEGIN, SELECT … FOR SHARE, INSERT, COMMIT takes 0.55 ms, as one statement
0.29 ms; 0.38 against 0.16 ms relaxed), so the send path's hot batches skip the transaction:

* eager jobs that are each the same fenced (or unfenced) `Returning` insert — pending marks, outbox entries:
  one `INSERT … SELECT FROM json_to_recordset(…)` (the rows as one JSON parameter, writes.Rows says why)
  joined to the leases it locks FOR SHARE (until the statement commits, as the transaction's SELECT held
  them), answering which fences passed and which rows went in. A lone job (every send at low load) has a
  form with one parameter per column and two booleans for an answer: 0.22 ms against 0.28 durable, 0.11
  against 0.17 relaxed. Lazy jobs beside them commit after (writer_loop.py);
* driver-SQL writes only (status rows, receipts, finished answers) on a relaxed lane: each run of one
  statement as one statement (its `Rows.many` form) or one per row, each committing on its own: they are
  written again after a failure anyway (inserts that skip a row already there, forward-only updates), and a
  relaxed commit flushes nothing;
* a batch that is one driver-SQL statement, on any lane.

Never psycopg's executemany: writes.Rows says why.

Anything else is a transaction (writer_tx.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from sqlalchemy.dialects import postgresql

from leadmaster.session_manager.writes import Checked, Job, Returning, Rows, runs


@dataclass(frozen=True)
class Shape:
    """A batch of `[check, returning]` (or `[returning]`) jobs whose rows have these columns."""

    check: Checked | None
    returning: Returning
    columns: tuple[str, ...]


@dataclass(slots=True)
class Plan:
    jobs: list[Job]  # the jobs it commits: the batch, or its eager jobs
    # Statements in order, each with its parameters and whether it runs unprepared (`_unprepared`).
    runs: list[tuple[str, dict[str, Any], bool]]
    shape: Shape | None = None  # set when `runs` is one fused insert whose answer says each job's outcome
    lone: bool = False  # the fused insert's one-job form: its answer is (fence passed, row inserted)


_fused: dict[tuple[Shape, bool], str] = {}


def _unprepared(stmt: str | Rows, sql: str) -> bool:
    """Whether `sql`, written for `stmt`, runs unprepared: the `many` form of a `Rows.joined`, planned for each
    batch. psycopg prepares a statement run often, and PostgreSQL then keeps one generic plan for it until the
    table is next analyzed. Chosen while the table was small and had no statistics (a fresh deployment's first
    minutes, every benchmark), that plan read the table through a whole index and filtered: receipt batches went
    from 1.4 to 7.7 ms within 40,000 messages (auto_explain) while the planner, asked afresh, finds the rows by
    key. Planning costs a fraction of a millisecond, once per batch of many rows."""
    return isinstance(stmt, Rows) and stmt.joined and sql == stmt.many


def plan(batch: list[Job], relaxed: bool) -> Plan | None:
    """How to commit `batch` (or its eager jobs) in autocommit, or None when it needs a transaction."""
    if all(isinstance(stmt, str | Rows) for job in batch for stmt, _ in job.writes):
        sql = [(one, params, _unprepared(stmt, one)) for stmt, rows in runs(w for job in batch for w in job.writes)
               for one, params in statements(stmt, rows)]
        if relaxed or len(sql) == 1:
            return Plan(batch, sql)
        return None
    return _fused_plan([job for job in batch if not job.lazy])


async def run_async(cursor: psycopg.AsyncCursor[Any], plan: Plan) -> None:
    """Execute `plan` with a cursor of an asyncio connection in autocommit (writer_loop.py), noting each outcome."""
    for sql, params, unprepared in plan.runs:
        await cursor.execute(sql, params, prepare=False if unprepared else None)
    answer = await cursor.fetchone() if plan.shape is not None else None
    note(plan, answer)


def note(plan: Plan, answer: Any) -> None:
    """Note on each job of `plan` what the fused insert's `answer` says became of it."""
    shape = plan.shape
    if shape is None or answer is None:
        return
    if plan.lone:
        (job,) = plan.jobs
        job.fenced_out = shape.check is not None and not answer[0]
        job.inserted = bool(answer[1])
        return
    passing = {tuple(p) for p in answer[0]}
    inserted = {tuple(k) for k in answer[1]}
    for job in plan.jobs:
        fence, values = (job.writes[0][1], job.writes[1][1]) if shape.check else ({}, job.writes[0][1])
        job.fenced_out = shape.check is not None and (fence["fence_i"], fence["fence_t"]) not in passing
        job.inserted = tuple(values[k] for k in shape.returning.keys) in inserted


def statements(stmt: str | Rows, rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The statements that write `rows` of driver SQL `stmt`: one for all when it has a `many` form, else one
    per row (never an executemany: writes.Rows)."""
    if isinstance(stmt, Rows):
        if stmt.many is not None and len(rows) > 1:
            return [(stmt.many, {"rows": _json(rows)})]
        return [(stmt.one, row) for row in rows]
    return [(stmt, row) for row in rows]


def _fused_plan(eager: list[Job]) -> Plan | None:
    if not eager:
        return None
    first = eager[0].writes
    check = first[0][0] if len(first) == 2 and isinstance(first[0][0], Checked) else None
    returning = first[-1][0]
    if not isinstance(returning, Returning) or returning.table is None or len(first) != (2 if check else 1):
        return None
    if check is not None and check.passing is None:
        return None
    columns = tuple(first[-1][1])
    for job in eager:
        w = job.writes
        if len(w) != len(first) or w[-1][0] is not returning or tuple(w[-1][1]) != columns:
            return None
        if check is not None and (w[0][0] is not check or w[0][1]["fence_n"] != first[0][1]["fence_n"]):
            return None
    shape = Shape(check, returning, columns)
    lone = len(eager) == 1
    if (sql := _fused.get((shape, lone))) is None:
        sql = _fused[shape, lone] = _fused_sql(shape, lone)
    params: dict[str, Any]
    if lone:
        params = dict(first[-1][1])
        if check is not None:
            fence = first[0][1]
            params.update(fence_t=fence["fence_t"], fence_n=fence["fence_n"], fence_ids=[fence["fence_i"]])
        return Plan(eager, [(sql, params, False)], shape, lone=True)
    if check is None:
        params = {"rows": _json([job.writes[-1][1] for job in eager])}
    else:
        fences = [job.writes[0][1] for job in eager]
        rows = [{**job.writes[-1][1], "fence_i": f["fence_i"], "fence_t": f["fence_t"]}
                for job, f in zip(eager, fences, strict=True)]
        params = {"rows": _json(rows), "fence_n": fences[0]["fence_n"],
                  "fence_ids": sorted({f["fence_i"] for f in fences})}
    return Plan(eager, [(sql, params, False)], shape)


def _json(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows).decode()


def _fused_sql(shape: Shape, lone: bool) -> str:
    """The fused insert (`lone`: its one-job form). Every name in it comes from the table's definition and
    every value is a bound parameter (hence the noqa)."""
    table, keys = shape.returning.table, shape.returning.keys
    assert table is not None
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def q(name: str) -> str:
        return f'"{name}"'

    names = ", ".join(q(c) for c in shape.columns)
    conflict = ", ".join(q(k) for k in keys)
    if lone:
        values = ", ".join(f"%({c})s::{table.c[c].type.compile(dialect=dialect)}" for c in shape.columns)
        if shape.check is None:
            return (
                f"WITH ins AS (INSERT INTO {q(table.name)} ({names}) VALUES ({values}) "  # noqa: S608
                f"ON CONFLICT ({conflict}) DO NOTHING RETURNING 1) SELECT true, EXISTS (SELECT FROM ins)"
            )
        # `f` has the lease's row when it passes for any token; the insert needs this job's token.
        return (
            f"WITH f AS ({shape.check.passing}), "  # noqa: S608
            f"ins AS (INSERT INTO {q(table.name)} ({names}) SELECT {values} FROM f WHERE fence_t = %(fence_t)s "
            f"ON CONFLICT ({conflict}) DO NOTHING RETURNING 1) "
            "SELECT EXISTS (SELECT FROM f WHERE fence_t = %(fence_t)s), EXISTS (SELECT FROM ins)"
        )
    typed = ", ".join(f"{q(c)} {table.c[c].type.compile(dialect=dialect)}" for c in shape.columns)
    answer = f"(SELECT coalesce(json_agg(json_build_array({conflict})), '[]') FROM ins)"  # noqa: S608
    if shape.check is None:
        return (
            f"WITH ins AS (INSERT INTO {q(table.name)} ({names}) "  # noqa: S608
            f"SELECT * FROM json_to_recordset(%(rows)s::json) AS v({typed}) "
            f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {conflict}) SELECT '[]'::json, {answer}"
        )
    return (
        f"WITH f AS ({shape.check.passing}), "  # noqa: S608
        f"v AS (SELECT * FROM json_to_recordset(%(rows)s::json) AS v(fence_i text, fence_t bigint, {typed})), "
        f"ins AS (INSERT INTO {q(table.name)} ({names}) SELECT {names} FROM v JOIN f USING (fence_i, fence_t) "
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {conflict}) "
        f"SELECT (SELECT coalesce(json_agg(json_build_array(fence_i, fence_t)), '[]') FROM f), {answer}"
    )
