"""The SQLite settings of both services' databases, in one place (each caller states what it needs)."""

from typing import Any

from sqlalchemy import Engine, event


def use_sqlite_pragmas(engine: Engine, *, busy_timeout_ms: int, foreign_keys: bool) -> None:
    """Set the pragmas on every new connection of `engine` (a SQLite engine).

    Always: WAL, so readers never block the writer nor it them; synchronous=NORMAL, durable across a process
    crash (what the SIGKILL tests exercise) with fast commits, only an OS crash can lose the last commits.
    Per service: how long a writer waits for another one before "database is locked", and whether the
    schema's foreign keys are enforced (SQLite leaves them off unless asked).
    """

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        set_pragmas(dbapi_conn, busy_timeout_ms=busy_timeout_ms, foreign_keys=foreign_keys)

    event.listen(engine, "connect", on_connect)


def set_pragmas(dbapi_conn: Any, *, busy_timeout_ms: int, foreign_keys: bool) -> None:
    """The same pragmas on one DB-API connection (for a file shared with another program, e.g. the Go worker's)."""
    cur = dbapi_conn.cursor()
    # First, so that switching to WAL below waits for a concurrent opener instead of failing.
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
    cur.close()
