"""Durable state of the session-manager: known instances, who is paired, idempotency records, sandbox data.

SQLite in SESSION_MANAGER_DATA_DIR by default, PostgreSQL when SESSION_MANAGER_STORE_URL is set.
Nothing here blocks the event loop: every write goes through the group-commit writer (writer.py: a thread on
SQLite, tasks of the event loop with asyncio connections on PostgreSQL), every read runs in a worker thread.
The send path reads nothing in the common case: a keyed send's pending mark is an insert that tells whether
a record was already there.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine as SqlEngine

from leadmaster.common.files import private_dir
from leadmaster.common.pgurl import plain_on_loopback
from leadmaster.common.sqlite import use_sqlite_pragmas
from leadmaster.session_manager.writer import GroupCommitWriter
from leadmaster.session_manager.writes import FenceRejected as FenceRejected  # raised by fenced writes
from leadmaster.session_manager.writes import Returning, Rows, Write

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
    # WhatsApp keeps one message per ID: a re-send under an ID it already has is the same message.
    sa.Index("ux_sm_sandbox_outbox_message", "instance_id", "message_id", unique=True),
    # The cluster node that sent it (null outside a cluster): lets a ledger prove one owner per message.
    sa.Column("node_id", sa.String(64)),
    # Its lease's fencing token: per instance, tokens never go down in outbox order (tests/cluster ledger).
    sa.Column("lease_token", sa.BigInteger),
)


# The sandbox engine's own record of a linked phone, as whatsmeow keeps its device store apart from the
# service's `sm_instances` bookkeeping: the engine learns from it whether `connect` resumes (engines/sandbox.py).
sandbox_devices = sa.Table(
    "sm_sandbox_devices",
    metadata,
    sa.Column("instance_id", sa.String(64), primary_key=True),
    sa.Column("jid", sa.String(128), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),
    sa.Column("push_name", sa.String(256)),
)


_DELETE_IDEMPOTENCY = idempotency.delete().where(
    idempotency.c.instance_id == sa.bindparam("i"), idempotency.c.key == sa.bindparam("k")
)
# Driver SQL (store.driver_sql): a finished answer is the one write that follows every keyed send, and as a
# string it skips SQLAlchemy's per-statement work and can be committed without a transaction (writer_pg.py).
_FINISH_IDEMPOTENCY = (
    "UPDATE sm_idempotency SET status = :status, response = :response, state = :state "
    "WHERE instance_id = :i AND key = :k"
)
_FINISH_MANY_PG = (
    "UPDATE sm_idempotency AS t SET status = v.status, response = v.response, state = v.state "
    "FROM json_to_recordset(%(rows)s::json) AS v(i varchar, k varchar, status int, response text, state varchar) "
    "WHERE t.instance_id = v.i AND t.key = v.k"
)
_INSERT_IDEMPOTENCY = idempotency.insert()
_DELETE_DEVICE = sandbox_devices.delete().where(sandbox_devices.c.instance_id == sa.bindparam("i"))
_UNPAIR = (
    instances.update()
    .where(instances.c.instance_id == sa.bindparam("i"))
    .values(paired=False, jid=None, phone=None, push_name=None)
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
    created_at: float = 0.0


def driver_sql(sql: str, postgres: bool) -> str:
    """Named parameters in the driver's own style: `:name` (sqlite3) or `%(name)s` (psycopg)."""
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql) if postgres else sql


def sqlalchemy_url(store_url: str | None, data_dir: Path) -> str:
    """Map SESSION_MANAGER_STORE_URL (libpq style `postgres://` accepted) to a SQLAlchemy URL; no TLS to a
    server on this host unless the URL asks for it (common/pgurl.py)."""
    if not store_url:
        return f"sqlite:///{data_dir / 'session-manager.sqlite3'}"
    for prefix in ("postgres://", "postgresql://"):
        if store_url.startswith(prefix):
            store_url = "postgresql+psycopg://" + store_url[len(prefix) :]
    # The worker's connections do the same (engines/whatsmeow/credentials.py, engine-worker/store.go).
    return plain_on_loopback(store_url)


class Guard(Protocol):
    """Fences the send path's writes on the instance's lease (installed by the cluster: cluster/schema.py)."""

    node_id: str

    def fence(self, instance_id: str) -> tuple[Write, int]: ...


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.engine: SqlEngine = sa.create_engine(url)
        else:
            # A hard bound on this process's PostgreSQL connections: the node's budget is 20, the whatsmeow
            # worker's pool takes 8 (SESSION_MANAGER_WHATSMEOW_DB_CONNECTIONS), the writer's three lanes hold
            # one each of their own (writer_loop.py), and this pool the other 9: reads, and the writer's rare
            # transactions, beyond it wait for a connection instead of opening one. No overflow: an overflow
            # connection is closed when it comes back to a full pool and the next burst opens another, and the
            # closed one's server process holds its slot until it has exited, so under churn the server
            # counted 13 (a CI run); the 9 are opened as needed and kept, the budget holds them anyway.
            self.engine = sa.create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=0)
            sa.event.listen(self.engine, "connect", _abandon_stalled_transactions)
        if url.startswith("sqlite"):
            # The store's needs: send-path writes go through one group-commit thread and the others are rare
            # (connect, pairing), so a 5 s wait for the lock means trouble, not contention; no foreign keys.
            use_sqlite_pragmas(self.engine, busy_timeout_ms=5_000, foreign_keys=False)
        create_schema(self.engine, metadata)
        self.writer = GroupCommitWriter(self.engine)
        # Built once per dialect: the writer merges consecutive writes of the *same* statement object.
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        self._begin_key = Returning(
            insert(idempotency).on_conflict_do_nothing(index_elements=["instance_id", "key"])
            .returning(idempotency.c.instance_id, idempotency.c.key),
            ("instance_id", "key"),
            idempotency,
        )
        self._add_outbox = Returning(
            insert(sandbox_outbox).on_conflict_do_nothing(index_elements=["instance_id", "message_id"])
            .returning(sandbox_outbox.c.instance_id, sandbox_outbox.c.message_id),
            ("instance_id", "message_id"),
            sandbox_outbox,
        )
        device = insert(sandbox_devices)
        self._save_device = device.on_conflict_do_update(
            index_elements=["instance_id"],
            set_={"jid": device.excluded.jid, "phone": device.excluded.phone, "push_name": device.excluded.push_name},
        )
        self._ensure_instance = insert(instances).on_conflict_do_nothing(index_elements=["instance_id"])
        paired = insert(instances)
        self._set_paired = paired.on_conflict_do_update(
            index_elements=["instance_id"],
            set_={"paired": True, "jid": paired.excluded.jid, "phone": paired.excluded.phone,
                  "push_name": paired.excluded.push_name},
        )
        pg = self.engine.dialect.name == "postgresql"
        self._finish = Rows(driver_sql(_FINISH_IDEMPOTENCY, pg), _FINISH_MANY_PG if pg else None, joined=True)
        # Set by the cluster (PostgreSQL only): send-path inserts then require this node's lease.
        self.guard: Guard | None = None

    @classmethod
    def open(cls, store_url: str | None, data_dir: Path) -> Store:
        private_dir(data_dir)  # 0700, and files an older version left 0644 become 0600
        return cls(sqlalchemy_url(store_url, data_dir))

    def close(self) -> None:
        """Write what is queued and close; from the event loop, `aclose` (PostgreSQL's writer runs on it)."""
        self.writer.close()
        self.engine.dispose()

    async def aclose(self) -> None:
        await self.writer.aclose()
        await asyncio.to_thread(self.close)

    async def _read(self, stmt: Any) -> list[Any]:
        return await asyncio.to_thread(self._read_sync, stmt)

    def _read_sync(self, stmt: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    # -- instances -------------------------------------------------------------------------------

    async def ensure_instance(self, instance_id: str) -> None:
        row = {"instance_id": instance_id, "created_at": time.time(), "paired": False}
        await self.writer.write((self._ensure_instance, row))

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        rows = await self._read(sa.select(instances).where(instances.c.instance_id == instance_id))
        return _instance(rows[0]) if rows else None

    async def list_instances(self) -> list[InstanceRow]:
        return [_instance(r) for r in await self._read(sa.select(instances).order_by(instances.c.instance_id))]

    def set_paired(self, instance_id: str, jid: str, phone: str, push_name: str | None) -> asyncio.Future[bool]:
        """Queue the write (in order with every other write); await the result to know it is durable."""
        row = {"instance_id": instance_id, "created_at": time.time(), "paired": True, "jid": jid, "phone": phone,
               "push_name": push_name}
        return self.writer.submit((self._set_paired, row))

    def set_unpaired(self, instance_id: str) -> asyncio.Future[bool]:
        return self.writer.submit((_UNPAIR, {"i": instance_id}))

    async def delete_instance(self, instance_id: str) -> None:
        await self.writer.write(
            (instances.delete().where(instances.c.instance_id == instance_id), {}),
            (idempotency.delete().where(idempotency.c.instance_id == instance_id), {}),
            (sandbox_outbox.delete().where(sandbox_outbox.c.instance_id == instance_id), {}),
            (sandbox_devices.delete().where(sandbox_devices.c.instance_id == instance_id), {}),
        )

    # -- idempotency -----------------------------------------------------------------------------

    async def get_idempotency(self, instance_id: str, key: str) -> IdempotencyRecord | None:
        """The record of a key, expired or not (the caller judges its age by `created_at`)."""
        cols = (idempotency.c.body_hash, idempotency.c.status, idempotency.c.response, idempotency.c.state,
                idempotency.c.created_at)
        rows = await self._read(
            sa.select(*cols).where(idempotency.c.instance_id == instance_id, idempotency.c.key == key)
        )
        if not rows:
            return None
        row = rows[0]
        return IdempotencyRecord(row.body_hash, row.status, orjson.loads(row.response), row.state == "pending",
                                 row.created_at)

    async def begin_idempotency(self, instance_id: str, key: str, body_hash: str, created_at: float,
                                replace: bool = False) -> bool:
        """Durably note that a keyed send is about to be handed to the engine; False if a record is there.

        `replace` first deletes a record found expired, in the same transaction. In a cluster the mark is
        fenced: FenceRejected when this node no longer holds the instance (nothing is written then).
        """
        row = {"instance_id": instance_id, "key": key, "body_hash": body_hash, "status": 0, "response": "{}",
               "created_at": created_at, "state": "pending"}
        writes: list[Write] = [self.guard.fence(instance_id)[0]] if self.guard is not None else []
        if replace:
            writes.append((_DELETE_IDEMPOTENCY, {"i": instance_id, "k": key}))
        return await self.writer.write(*writes, (self._begin_key, row))

    def finish_idempotency(self, instance_id: str, key: str, status: int, response: dict[str, Any],
                           lazy: bool = False) -> asyncio.Future[bool]:
        """The send went out: replace the pending mark with the answer to replay (lazy: see writer.py)."""
        values = {"i": instance_id, "k": key, "status": status, "response": orjson.dumps(response).decode(),
                  "state": "done"}
        return self.writer.submit((self._finish, values), lazy=lazy)

    async def drop_idempotency(self, instance_id: str, key: str) -> None:
        """The send certainly did not go out: the key may be used again (CONTRACT §2.5)."""
        await self.writer.write((_DELETE_IDEMPOTENCY, {"i": instance_id, "k": key}))

    async def purge_idempotency(self, ttl: float) -> None:
        await self.writer.write((idempotency.delete().where(idempotency.c.created_at <= time.time() - ttl), {}))

    # -- sandbox devices -------------------------------------------------------------------------

    async def sandbox_device(self, instance_id: str) -> tuple[str, str, str | None] | None:
        """(jid, phone, push_name) of the sandbox's linked phone for an instance, or None when unlinked."""
        cols = (sandbox_devices.c.jid, sandbox_devices.c.phone, sandbox_devices.c.push_name)
        rows = await self._read(sa.select(*cols).where(sandbox_devices.c.instance_id == instance_id))
        return (rows[0].jid, rows[0].phone, rows[0].push_name) if rows else None

    def save_sandbox_device(
        self, instance_id: str, jid: str, phone: str, push_name: str | None
    ) -> asyncio.Future[bool]:
        row = {"instance_id": instance_id, "jid": jid, "phone": phone, "push_name": push_name}
        return self.writer.submit((self._save_device, row))

    def delete_sandbox_device(self, instance_id: str) -> asyncio.Future[bool]:
        return self.writer.submit((_DELETE_DEVICE, {"i": instance_id}))

    # -- sandbox outbox --------------------------------------------------------------------------

    async def add_outbox(self, instance_id: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        """Add a sent message; if its message_id is already there, add nothing and return that entry."""
        row = {"instance_id": instance_id, **entry, "node_id": None, "lease_token": None}
        writes: list[Write] = []
        if self.guard is not None:
            fence, token = self.guard.fence(instance_id)
            writes.append(fence)
            row.update(node_id=self.guard.node_id, lease_token=token)
        # Relaxed: the outbox stands for WhatsApp's servers, which keep what they accepted whatever happens to
        # this process; a database crash is no part of that simulation (see writer.py).
        if await self.writer.write(*writes, (self._add_outbox, row), relaxed=True):
            return None
        found = await self.outbox(instance_id, entry["message_id"])
        return found[0] if found else None

    async def outbox(self, instance_id: str, message_id: str | None = None) -> list[dict[str, Any]]:
        names = ("message_id", "cliente_id", "to", "jid", "message", "timestamp", "node_id", "lease_token")
        cols = [sandbox_outbox.c[name] for name in names]
        stmt = sa.select(*cols).where(sandbox_outbox.c.instance_id == instance_id).order_by(sandbox_outbox.c.id)
        if message_id is not None:
            stmt = stmt.where(sandbox_outbox.c.message_id == message_id)
        # Keys can come back as sqlalchemy's quoted_name ("to" is an SQL keyword): orjson wants plain str.
        # node_id/lease_token only where a cluster node sent it: a single node's outbox keeps the contract's shape.
        return [{str(k): v for k, v in r._mapping.items() if v is not None} for r in await self._read(stmt)]


POOL_SIZE = 9  # connections at most: with the writer's 3 and the worker's 8, the node's 20


# Our transactions last milliseconds. One left open by a frozen process (SIGSTOP, a VM pause) would keep
# its row locks, among them the lease rows a fenced write locks FOR SHARE (and a renewal FOR UPDATE), and
# the takeover skips locked rows: that node's instances would stay down until it woke (a CI run saw two
# instances wait 17 s). PostgreSQL ends such a transaction, and its writes are never committed. A healthy
# one is idle only between two statements sent back to back, so 2 s means the process is not running;
# it is also below any sensible lease, so the locks are gone before the lease is up for takeover.
IDLE_IN_TRANSACTION_TIMEOUT_MS = 2000


def _abandon_stalled_transactions(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_TIMEOUT_MS}")
    cur.close()
    dbapi_conn.commit()  # psycopg opened a transaction for the SET; SET (not LOCAL) outlives it


def _instance(row: Any) -> InstanceRow:
    return InstanceRow(row.instance_id, bool(row.paired), row.jid, row.phone, row.push_name)


def create_schema(engine: SqlEngine, tables: sa.MetaData) -> None:
    """Create missing tables; on PostgreSQL under an advisory lock, because nodes of a cluster start at once
    and concurrent CREATE TABLE IF NOT EXISTS of one table can fail in PostgreSQL."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
        had_devices = tables is not metadata or sa.inspect(conn).has_table(sandbox_devices.name)
        tables.create_all(conn)
        if tables is metadata:
            _add_missing_columns(conn, had_devices)


_SCHEMA_LOCK = 0x4C4D534D  # any constant shared by every session-manager ("LMSM")


def _add_missing_columns(conn: sa.Connection, had_devices: bool) -> None:
    """Bring a store made by an earlier version up to date (columns and indexes are only ever added)."""
    if not had_devices:
        # Before sm_sandbox_devices the sandbox read `sm_instances.paired`: its paired sessions stay paired.
        conn.exec_driver_sql(
            "INSERT INTO sm_sandbox_devices (instance_id, jid, phone, push_name) SELECT instance_id, jid, "
            "COALESCE(phone, ''), push_name FROM sm_instances WHERE paired AND jid IS NOT NULL"
        )
    have = {c["name"] for c in sa.inspect(conn).get_columns("sm_idempotency")}
    if "state" not in have:
        conn.exec_driver_sql("ALTER TABLE sm_idempotency ADD COLUMN state VARCHAR(8) NOT NULL DEFAULT 'done'")
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS ux_sm_sandbox_outbox_message ON sm_sandbox_outbox (instance_id, message_id)"
    )
    outbox_columns = {c["name"] for c in sa.inspect(conn).get_columns("sm_sandbox_outbox")}
    for name, kind in (("node_id", "VARCHAR(64)"), ("lease_token", "BIGINT")):
        if name not in outbox_columns:
            conn.exec_driver_sql(f"ALTER TABLE sm_sandbox_outbox ADD COLUMN {name} {kind}")

