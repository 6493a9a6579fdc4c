"""Durable state of the session-manager: known instances, who is paired, idempotency records, sandbox data.

SQLite in SESSION_MANAGER_DATA_DIR by default, PostgreSQL when SESSION_MANAGER_STORE_URL is set.
Rare calls (pairing, listing) are synchronous single-row statements. The two writes on the send path
(idempotency record, sandbox outbox) go through `GroupCommitWriter`: one thread commits whatever has
queued up in one transaction, and each caller is answered only once its row is durable. That keeps the
send path's cost per message small under load without answering 200 for a row that a crash could lose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine as SqlEngine

metadata = sa.MetaData()

instances = sa.Table(
    "sm_instances",
    metadata,
    sa.Column("instance_id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("paired", sa.Boolean, nullable=False, default=False),
    sa.Column("jid", sa.String(128)),
    sa.Column("phone", sa.String(32)),
    sa.Column("push_name", sa.String(256)),
)

idempotency = sa.Table(
    "sm_idempotency",
    metadata,
    sa.Column("instance_id", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    # "pending" from just before the message is handed to the engine until its outcome is known, so that a
    # crash in between is remembered as "maybe sent" instead of being forgotten (then a retry would double it).
    sa.Column("state", sa.String(8), nullable=False, server_default="done"),
)

sandbox_outbox = sa.Table(
    "sm_sandbox_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(64), nullable=False, index=True),
    sa.Column("message_id", sa.String(64), nullable=False),
    sa.Column("cliente_id", sa.BigInteger, nullable=False),
    sa.Column("to", sa.String(64), nullable=False),
    sa.Column("jid", sa.String(128), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("timestamp", sa.String(40), nullable=False),
    # The cluster node that sent it (null outside a cluster): lets a ledger prove one owner per message.
    sa.Column("node_id", sa.String(64)),
    # Its lease's fencing token: per instance, tokens never go down in outbox order (tests/cluster ledger).
    sa.Column("lease_token", sa.BigInteger),
)


# Built once: the writer merges consecutive writes of the *same* statement object into one executemany.
_INSERT_OUTBOX = sandbox_outbox.insert()
_INSERT_IDEMPOTENCY = idempotency.insert()
_DELETE_IDEMPOTENCY = idempotency.delete().where(
    idempotency.c.instance_id == sa.bindparam("i"), idempotency.c.key == sa.bindparam("k")
)
_FINISH_IDEMPOTENCY = (
    idempotency.update()
    .where(idempotency.c.instance_id == sa.bindparam("i"), idempotency.c.key == sa.bindparam("k"))
    .values(status=sa.bindparam("status"), response=sa.bindparam("response"), state=sa.bindparam("state"))
)


@dataclass(frozen=True, slots=True)
class InstanceRow:
    instance_id: str
    paired: bool
    jid: str | None
    phone: str | None
    push_name: str | None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    body_hash: str
    status: int
    response: dict[str, Any]
    pending: bool = False


def sqlalchemy_url(store_url: str | None, data_dir: Path) -> str:
    """Map SESSION_MANAGER_STORE_URL (libpq style `postgres://` accepted) to a SQLAlchemy URL."""
    if not store_url:
        return f"sqlite:///{data_dir / 'session-manager.sqlite3'}"
    for prefix in ("postgres://", "postgresql://"):
        if store_url.startswith(prefix):
            return "postgresql+psycopg://" + store_url[len(prefix) :]
    return store_url


logger = logging.getLogger("leadmaster.session_manager.store")
_Write = tuple[Any, dict[str, Any]]  # (statement, parameters)


class FenceRejected(Exception):
    """A fenced write found that this node no longer holds the instance's lease (see cluster/fencing.py)."""


Fence = tuple[str, int]  # (instance_id, lease token) a send-path write requires (cluster only)
_Entry = tuple[list[_Write], "asyncio.Future[None]", Fence | None]


class Guard(Protocol):
    """Lease fencing of the send-path writes, installed by the cluster (cluster/schema.py LeaseGuard)."""

    node_id: str

    def fence(self, instance_id: str) -> Fence:
        """The lease this node holds on `instance_id`; FenceRejected when it holds none."""

    def check(self, conn: sa.Connection, fences: list[Fence]) -> set[Fence]:
        """Which fences still hold, locking their lease rows until the caller's transaction ends."""


class GroupCommitWriter:
    """A writer thread that commits queued statements in batches and resolves each caller's future."""

    def __init__(self, engine: SqlEngine) -> None:
        self.engine = engine
        self.guard: Guard | None = None
        self.queue: queue.SimpleQueue[_Entry | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.thread.start()

    async def write(self, *statements: _Write, fence: Fence | None = None) -> None:
        """Commit `statements` durably; with a fence, only while this node still holds that lease."""
        future = asyncio.get_running_loop().create_future()
        self.queue.put((list(statements), future, fence))
        await future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(10)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while True:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Entry]) -> None:
        try:
            with self.engine.begin() as conn:
                fences = [fence for _, _, fence in batch if fence is not None]
                # One query per batch checks every lease and locks those rows until commit, so no takeover
                # can commit between the check and these writes; refused entries are left out.
                held = self.guard.check(conn, fences) if fences and self.guard is not None else set()
                refused = [fence is not None and fence not in held for _, _, fence in batch]
                for stmt, rows in _runs([e for e, no in zip(batch, refused, strict=True) if not no]):
                    # One executemany per run of the same statement: the point of batching.
                    conn.execute(stmt, rows)
            results: list[BaseException | None] = [FenceRejected("lease lost") if no else None for no in refused]
        except Exception:
            if len(batch) == 1:
                logger.exception("store write failed")
                results = [RuntimeError("store write failed")]
            else:
                # One bad write must not fail its neighbours: retry each on its own.
                for entry in batch:
                    self._commit([entry])
                return
        for (_, future, _), error in zip(batch, results, strict=True):
            future.get_loop().call_soon_threadsafe(_resolve, future, error)


def _runs(batch: list[_Entry]) -> list[tuple[Any, list[dict[str, Any]]]]:
    """Consecutive writes of the same statement, merged, in their original order."""
    runs: list[tuple[Any, list[dict[str, Any]]]] = []
    for statements, _, _ in batch:
        for stmt, params in statements:
            if runs and runs[-1][0] is stmt:
                runs[-1][1].append(params)
            else:
                runs.append((stmt, [params]))
    return runs


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: SqlEngine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        create_schema(self.engine, metadata)
        self.writer = GroupCommitWriter(self.engine)

    @property
    def guard(self) -> Guard | None:
        """Set by the cluster (PostgreSQL only): send-path writes then require this node's lease."""
        return self.writer.guard

    @guard.setter
    def guard(self, guard: Guard | None) -> None:
        self.writer.guard = guard

    @classmethod
    def open(cls, store_url: str | None, data_dir: Path) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(sqlalchemy_url(store_url, data_dir))

    def close(self) -> None:
        self.writer.close()
        self.engine.dispose()

    # -- instances -------------------------------------------------------------------------------

    def ensure_instance(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(instances.c.instance_id).where(instances.c.instance_id == instance_id)
            ).first()
            if exists is None:
                conn.execute(instances.insert().values(instance_id=instance_id, created_at=time.time(), paired=False))

    def get_instance(self, instance_id: str) -> InstanceRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(instances).where(instances.c.instance_id == instance_id)).first()
        return _instance(row) if row else None

    def list_instances(self) -> list[InstanceRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(instances).order_by(instances.c.instance_id)).all()
        return [_instance(r) for r in rows]

    def set_paired(self, instance_id: str, jid: str, phone: str, push_name: str | None) -> None:
        self.ensure_instance(instance_id)
        with self.engine.begin() as conn:
            conn.execute(
                instances.update()
                .where(instances.c.instance_id == instance_id)
                .values(paired=True, jid=jid, phone=phone, push_name=push_name)
            )

    def set_unpaired(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                instances.update()
                .where(instances.c.instance_id == instance_id)
                .values(paired=False, jid=None, phone=None, push_name=None)
            )

    def delete_instance(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(instances.delete().where(instances.c.instance_id == instance_id))
            conn.execute(idempotency.delete().where(idempotency.c.instance_id == instance_id))
            conn.execute(sandbox_outbox.delete().where(sandbox_outbox.c.instance_id == instance_id))

    # -- idempotency -----------------------------------------------------------------------------

    def get_idempotency(self, instance_id: str, key: str, ttl: float) -> IdempotencyRecord | None:
        with self.engine.connect() as conn:
            cols = (idempotency.c.body_hash, idempotency.c.status, idempotency.c.response, idempotency.c.state)
            row = conn.execute(
                sa.select(*cols).where(
                    idempotency.c.instance_id == instance_id,
                    idempotency.c.key == key,
                    idempotency.c.created_at > time.time() - ttl,
                )
            ).first()
        if row is None:
            return None
        return IdempotencyRecord(row.body_hash, row.status, json.loads(row.response), row.state == "pending")

    async def begin_idempotency(self, instance_id: str, key: str, body_hash: str) -> None:
        """Durably note that a keyed send is about to be handed to the engine."""
        row = {
            "instance_id": instance_id,
            "key": key,
            "body_hash": body_hash,
            "status": 0,
            "response": "{}",
            "created_at": time.time(),
            "state": "pending",
        }
        # An expired record with the same key may still be there: replace it.
        fence = self.guard.fence(instance_id) if self.guard is not None else None
        delete = (_DELETE_IDEMPOTENCY, {"i": instance_id, "k": key})
        await self.writer.write(delete, (_INSERT_IDEMPOTENCY, row), fence=fence)

    async def finish_idempotency(self, instance_id: str, key: str, status: int, response: dict[str, Any]) -> None:
        """The send went out: replace the pending mark with the answer to replay."""
        values = {"i": instance_id, "k": key, "status": status, "response": json.dumps(response), "state": "done"}
        await self.writer.write((_FINISH_IDEMPOTENCY, values))

    async def drop_idempotency(self, instance_id: str, key: str) -> None:
        """The send certainly did not go out: the key may be used again (CONTRACT §2.5)."""
        await self.writer.write((_DELETE_IDEMPOTENCY, {"i": instance_id, "k": key}))

    def purge_idempotency(self, ttl: float) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(idempotency.delete().where(idempotency.c.created_at <= time.time() - ttl))
        return int(result.rowcount or 0)

    # -- sandbox outbox --------------------------------------------------------------------------

    async def add_outbox(self, instance_id: str, entry: dict[str, Any]) -> None:
        fence = self.guard.fence(instance_id) if self.guard is not None else None
        node_id = self.guard.node_id if self.guard is not None else None
        row = {"instance_id": instance_id, **entry, "node_id": node_id, "lease_token": fence[1] if fence else None}
        await self.writer.write((_INSERT_OUTBOX, row), fence=fence)

    def outbox(self, instance_id: str) -> list[dict[str, Any]]:
        names = ("message_id", "cliente_id", "to", "jid", "message", "timestamp", "node_id", "lease_token")
        cols = [sandbox_outbox.c[name] for name in names]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*cols).where(sandbox_outbox.c.instance_id == instance_id).order_by(sandbox_outbox.c.id)
            ).all()
        # Keys can come back as sqlalchemy's quoted_name ("to" is an SQL keyword): orjson wants plain str.
        # node_id/lease_token only where a cluster node sent it: a single node's outbox keeps the contract's shape.
        return [{str(k): v for k, v in r._mapping.items() if v is not None} for r in rows]


def _instance(row: Any) -> InstanceRow:
    return InstanceRow(row.instance_id, bool(row.paired), row.jid, row.phone, row.push_name)


def create_schema(engine: SqlEngine, tables: sa.MetaData) -> None:
    """Create missing tables; on PostgreSQL under an advisory lock, because nodes of a cluster start at once
    and concurrent CREATE TABLE IF NOT EXISTS of one table can fail in PostgreSQL."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
        tables.create_all(conn)
        if tables is metadata:
            _add_missing_columns(conn)


_SCHEMA_LOCK = 0x4C4D534D  # any constant shared by every session-manager ("LMSM")


def _add_missing_columns(conn: sa.Connection) -> None:
    """Bring a store made by an earlier version up to date (columns are only ever added)."""
    have = {c["name"] for c in sa.inspect(conn).get_columns("sm_idempotency")}
    if "state" not in have:
        conn.exec_driver_sql("ALTER TABLE sm_idempotency ADD COLUMN state VARCHAR(8) NOT NULL DEFAULT 'done'")
    outbox_columns = {c["name"] for c in sa.inspect(conn).get_columns("sm_sandbox_outbox")}
    for name, kind in (("node_id", "VARCHAR(64)"), ("lease_token", "BIGINT")):
        if name not in outbox_columns:
            conn.exec_driver_sql(f"ALTER TABLE sm_sandbox_outbox ADD COLUMN {name} {kind}")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL + NORMAL: durable across process crashes (what SIGKILL tests exercise), fast commits.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
