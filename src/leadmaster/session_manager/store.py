"""Durable state of the session-manager: known instances, who is paired, idempotency records, sandbox data.

SQLite in SESSION_MANAGER_DATA_DIR by default, PostgreSQL when SESSION_MANAGER_STORE_URL is set.
Calls are synchronous and short (single-row statements); SQLite runs in WAL mode so they stay sub-ms.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def sqlalchemy_url(store_url: str | None, data_dir: Path) -> str:
    """Map SESSION_MANAGER_STORE_URL (libpq style `postgres://` accepted) to a SQLAlchemy URL."""
    if not store_url:
        return f"sqlite:///{data_dir / 'session-manager.sqlite3'}"
    for prefix in ("postgres://", "postgresql://"):
        if store_url.startswith(prefix):
            return "postgresql+psycopg://" + store_url[len(prefix) :]
    return store_url


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: SqlEngine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    @classmethod
    def open(cls, store_url: str | None, data_dir: Path) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls(sqlalchemy_url(store_url, data_dir))

    def close(self) -> None:
        self.engine.dispose()

    # -- instances -------------------------------------------------------------------------------

    def ensure_instance(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(instances.c.instance_id).where(instances.c.instance_id == instance_id)
            ).first()
            if exists is None:
                conn.execute(
                    instances.insert().values(instance_id=instance_id, created_at=time.time(), paired=False)
                )

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
            row = conn.execute(
                sa.select(idempotency.c.body_hash, idempotency.c.status, idempotency.c.response).where(
                    idempotency.c.instance_id == instance_id,
                    idempotency.c.key == key,
                    idempotency.c.created_at > time.time() - ttl,
                )
            ).first()
        if row is None:
            return None
        return IdempotencyRecord(row.body_hash, row.status, json.loads(row.response))

    def put_idempotency(
        self, instance_id: str, key: str, body_hash: str, status: int, response: dict[str, Any]
    ) -> None:
        values = {
            "body_hash": body_hash,
            "status": status,
            "response": json.dumps(response),
            "created_at": time.time(),
        }
        with self.engine.begin() as conn:
            # An expired record with the same key may still be there: replace it.
            conn.execute(
                idempotency.delete().where(idempotency.c.instance_id == instance_id, idempotency.c.key == key)
            )
            conn.execute(idempotency.insert().values(instance_id=instance_id, key=key, **values))

    def purge_idempotency(self, ttl: float) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(idempotency.delete().where(idempotency.c.created_at <= time.time() - ttl))
        return int(result.rowcount or 0)

    # -- sandbox outbox --------------------------------------------------------------------------

    def add_outbox(self, instance_id: str, entry: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(sandbox_outbox.insert().values(instance_id=instance_id, **entry))

    def outbox(self, instance_id: str) -> list[dict[str, Any]]:
        cols = [
            sandbox_outbox.c[name]
            for name in ("message_id", "cliente_id", "to", "jid", "message", "timestamp")
        ]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*cols)
                .where(sandbox_outbox.c.instance_id == instance_id)
                .order_by(sandbox_outbox.c.id)
            ).all()
        # Keys can come back as sqlalchemy's quoted_name ("to" is an SQL keyword): orjson wants plain str.
        return [{str(k): v for k, v in r._mapping.items()} for r in rows]


def _instance(row: Any) -> InstanceRow:
    return InstanceRow(row.instance_id, bool(row.paired), row.jid, row.phone, row.push_name)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL + NORMAL: durable across process crashes (what SIGKILL tests exercise), fast commits.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
