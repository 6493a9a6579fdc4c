"""One batch of writes as one transaction: SQLite's every batch, and PostgreSQL's when no single statement can
write it (writer_pg.plan says None): fences first, each distinct one once, in lock order, then each run of one
statement as one statement where it can be."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from leadmaster.session_manager import writer_pg
from leadmaster.session_manager.writes import Checked, Job, Returning, Rows, runs


def execute(conn: Connection, batch: list[Job]) -> None:
    """Write `batch` in the open transaction of `conn`, noting each job's outcome on it."""
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

