"""Delivery status of the messages this session-manager sent (CONTRACT §5), kept in the store.

Writes go through the store's `GroupCommitWriter`, the queue the idempotency records and the sandbox outbox
use, so a send's SENT row shares their group commits. Each row change is stamped `updated_at` from a strictly
increasing microsecond clock when it is queued, and all of them go to the writer's status lane, which commits
in queue order, one transaction after the other: rows become visible in `updated_at` order. A poller that
has read a change stamped U has therefore already been able to read every change stamped below U, so asking
`since=U` next never misses one.

Receipts are conditional UPDATEs that only move a status forward (SENT < DELIVERED < READ; FAILED only from
SENT), so repeats and out-of-order receipts change nothing. A receipt for a message ID with no row changes
nothing either: that is how receipts about anyone else's messages are dropped. A receipt can also arrive
before the send that produced it has queued its SENT row (the engine answers the send and reports the
receipt at nearly the same moment); such receipts are held in memory for `LATE_RECEIPT_SECONDS` and applied
right after the SENT row when it comes, otherwise forgotten. Nothing about them is ever written.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from leadmaster.common.logs import log
from leadmaster.contract.status import MessageStatus
from leadmaster.session_manager.store import Store, create_schema, driver_sql
from leadmaster.session_manager.writes import Rows

logger = logging.getLogger("leadmaster.session_manager.messages")

LATE_RECEIPT_SECONDS = 60.0
# Receipts are written in batches this often: a handful of statements per batch instead of one per receipt
# keeps the writer (and the sends it also commits) fast; a status is at most this much later to read.
RECEIPT_FLUSH_SECONDS = 0.02
_LATE_MAX = 100_000  # receipts held for rows not yet queued; beyond this the oldest are dropped
_RECENT_MAX = 100_000  # message IDs this process queued a SENT row for (their receipts need no holding)
PURGE_INTERVAL_SECONDS = 3600.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

metadata = sa.MetaData()
messages = sa.Table(
    "sm_messages",
    metadata,
    sa.Column("instance_id", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(128), primary_key=True),
    sa.Column("to", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # Times in microseconds since the epoch (UTC): exact, and `updated_at` is the polling cursor.
    sa.Column("sent_at", sa.BigInteger, nullable=False),
    sa.Column("delivered_at", sa.BigInteger),
    sa.Column("read_at", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # The only secondary index (each one costs every write of the send path): polling and the purge use it.
    sa.Index("ix_sm_messages_poll", "instance_id", "updated_at"),
)
_COLUMNS = ("message_id", "to", "status", "sent_at", "delivered_at", "read_at", "updated_at")
_TIMES = ("sent_at", "delivered_at", "read_at", "updated_at")
_Key = tuple[str, str]


def to_us(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - EPOCH) // _US


def iso_us(us: int | None) -> str | None:
    """Microsecond ISO 8601 (UTC, `Z`): the exact cursor value, so `since=<updated_at>` repeats nothing."""
    if us is None:
        return None
    seconds, micros = divmod(us, 1_000_000)
    if 0 <= seconds < _YEAR_10000:
        # The seconds' text is cached: a poll's 100 rows x 4 times fall in a few seconds, and formatting each
        # through datetime was half of the poll's cost.
        return f"{_iso_seconds(seconds)}.{micros:06d}Z"
    return (EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


_YEAR_10000 = 253_402_300_800  # seconds from the epoch to 10000-01-01: datetime's range ends before it


@functools.lru_cache(maxsize=4096)
def _iso_seconds(seconds: int) -> str:
    return (EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


def parse_since(value: str) -> int:
    """An ISO 8601 time (a time without an offset is UTC) as microseconds; ValueError when it is not one."""
    return to_us(datetime.fromisoformat(value.strip()))


# DO NOTHING on a second SENT for one ID: a keyed retry may re-send under the same WhatsApp ID.
_INSERT_SQL = (
    'INSERT INTO sm_messages (instance_id, message_id, "to", status, sent_at, delivered_at, read_at, updated_at) '
    "VALUES (:instance_id, :message_id, :to, :status, :sent_at, :delivered_at, :read_at, :updated_at) "
    "ON CONFLICT (instance_id, message_id) DO NOTHING"
)
_UPDATE_SQL = {
    MessageStatus.DELIVERED: (
        "UPDATE sm_messages SET status = 'DELIVERED', delivered_at = :at_, updated_at = :u "
        "WHERE instance_id = :i AND message_id = :m AND status = 'SENT'"
    ),
    # A read message was delivered, at the latest when it was read (the delivery receipt may be lost).
    MessageStatus.READ: (
        "UPDATE sm_messages SET status = 'READ', read_at = :at_, delivered_at = COALESCE(delivered_at, :at_), "
        "updated_at = :u WHERE instance_id = :i AND message_id = :m AND status IN ('SENT', 'DELIVERED')"
    ),
    MessageStatus.FAILED: (
        "UPDATE sm_messages SET status = 'FAILED', updated_at = :u "
        "WHERE instance_id = :i AND message_id = :m AND status = 'SENT'"
    ),
}


# PostgreSQL: the same writes for many rows in one statement (writes.Rows: the rows as one JSON parameter). A
# receipt batch may name a message twice: DISTINCT ON keeps its first (lowest `u`), as one statement per row would.
_PG_MANY = {
    "insert": (
        'INSERT INTO sm_messages (instance_id, message_id, "to", status, sent_at, delivered_at, read_at, updated_at) '
        'SELECT * FROM json_to_recordset(%(rows)s::json) AS v(instance_id varchar, message_id varchar, "to" varchar, '
        "status varchar, sent_at bigint, delivered_at bigint, read_at bigint, updated_at bigint) "
        "ON CONFLICT (instance_id, message_id) DO NOTHING"
    ),
    MessageStatus.DELIVERED: "status = 'DELIVERED', delivered_at = v.at_, updated_at = v.u {where} "
                             "AND t.status = 'SENT'",
    MessageStatus.READ: "status = 'READ', read_at = v.at_, delivered_at = COALESCE(t.delivered_at, v.at_), "
                        "updated_at = v.u {where} AND t.status IN ('SENT', 'DELIVERED')",
    MessageStatus.FAILED: "status = 'FAILED', updated_at = v.u {where} AND t.status = 'SENT'",
}
_PG_UPDATE_FROM = (
    "FROM (SELECT DISTINCT ON (i, m) * FROM json_to_recordset(%(rows)s::json) AS v(i varchar, m varchar, at_ bigint, "
    "u bigint) ORDER BY i, m, u) AS v WHERE t.instance_id = v.i AND t.message_id = v.m"
)


def _rows(one: str, many: str | None, postgres: bool, joined: bool = False) -> Rows:
    return Rows(driver_sql(one, postgres), many if postgres else None, joined)


_SELECT_SQL = 'SELECT message_id, "to", status, sent_at, delivered_at, read_at, updated_at FROM sm_messages '


class MessageLog:
    """The sm_messages table: SENT rows from sends, forward-only receipts, polling reads, purge."""

    def __init__(self, store: Store, retention_days: float = 30.0) -> None:
        self.store = store
        self.retention_us = int(retention_days * 86400 * 1_000_000)
        create_schema(store.engine, metadata)  # under the cluster's schema lock on PostgreSQL
        # Driver SQL, built once: the writer merges consecutive writes of the same statement object into one
        # statement (executemany on SQLite, the `Rows.many` form on PostgreSQL) and runs them without
        # SQLAlchemy's per-row work (there are two receipts per message).
        pg = store.engine.dialect.name == "postgresql"
        self._insert = _rows(_INSERT_SQL, _PG_MANY["insert"], pg)
        self._updates: dict[MessageStatus, Rows] = {
            s: _rows(sql, "UPDATE sm_messages AS t SET $set".replace("$set", _PG_MANY[s]).replace(
                "{where}", _PG_UPDATE_FROM), pg, joined=True)
            for s, sql in _UPDATE_SQL.items()
        }
        # Reads too: a third of SQLAlchemy's Core select for the status route's one-row lookup.
        self._get_sql = driver_sql(_SELECT_SQL + "WHERE instance_id = :i AND message_id = :m", pg)
        self._changes_sql = driver_sql(
            _SELECT_SQL + "WHERE instance_id = :i AND updated_at > :s ORDER BY updated_at, message_id LIMIT :n", pg
        )
        self._tie_sql = driver_sql(
            _SELECT_SQL + "WHERE instance_id = :i AND updated_at = :u AND message_id > :m ORDER BY message_id", pg
        )
        self._last_us = 0
        self._late: OrderedDict[_Key, tuple[float, list[tuple[MessageStatus, int]]]] = OrderedDict()
        self._recent: OrderedDict[_Key, None] = OrderedDict()
        self._purge_task: asyncio.Task[None] | None = None
        self._receipts: list[tuple[MessageStatus, str, str, int]] = []
        self._sent: list[dict[str, Any]] = []
        self._sent_done: asyncio.Future[None] | None = None
        self._flush_handle: asyncio.TimerHandle | None = None

    def _tick(self) -> int:
        """Strictly increasing microseconds: each queued change gets a distinct, ordered `updated_at`."""
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return self._last_us

    # -- writes (event loop thread) ---------------------------------------------------------------

    async def record_sent(self, instance_id: str, message_id: str, to: str, sent_at: datetime) -> None:
        """Durably note a message WhatsApp accepted (SENT), then any receipt that came in ahead of it."""
        row = {
            "instance_id": instance_id,
            "message_id": message_id,
            "to": to,
            "status": MessageStatus.SENT.value,
            "sent_at": to_us(sent_at),
            "delivered_at": None,
            "read_at": None,
        }
        # The sends that finish in one turn of the event loop share one queue item (one executemany).
        self._sent.append(row)
        if self._sent_done is None:
            self._sent_done = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_soon(self._flush_sent)
        try:
            await asyncio.shield(self._sent_done)
        except Exception:
            # The message is out: its sender gets its 200 even if the status row could not be written.
            logger.exception("message status row not written", extra={"fields": {"instance_id": instance_id}})

    def _flush_sent(self) -> None:
        rows, self._sent = self._sent, []
        done, self._sent_done = self._sent_done, None
        writes: list[tuple[Any, dict[str, Any]]] = []
        late: list[tuple[Any, dict[str, Any]]] = []
        for row in rows:
            # Stamped when queued, not when the send returned: queue order must be `updated_at` order.
            row["updated_at"] = self._tick()
            writes.append((self._insert, row))
            key = (row["instance_id"], row["message_id"])
            held = self._late.pop(key, None)
            for status, at_us in held[1] if held else ():
                late.append((self._updates[status], {"i": key[0], "m": key[1], "at_": at_us}))
            self._recent[key] = None
            if len(self._recent) > _RECENT_MAX:
                self._recent.popitem(last=False)
        for stmt, params in late:
            writes.append((stmt, {**params, "u": self._tick()}))
        # The status lane (relaxed; one lane keeps every status write in queue order): a status row is WhatsApp's
        # word about a message that is out, not something a re-send could repair, and it survives our process
        # dying; only a PostgreSQL server crash in the next instant could lose it, as SQLite's default would.
        future = self.store.writer.submit(*writes, status=True)
        assert done is not None
        future.add_done_callback(lambda f: _settle(done, f))

    def apply(self, instance_id: str, message_id: str, status: MessageStatus, at: datetime) -> None:
        """A receipt from the engine: queued, then written with the others of the next few milliseconds."""
        if status is MessageStatus.SENT or status not in self._updates:
            return  # the SENT row comes from the send itself; a server ack adds nothing
        self._receipts.append((status, instance_id, message_id, to_us(at)))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(RECEIPT_FLUSH_SECONDS, self.flush)

    def flush(self) -> asyncio.Future[bool] | None:
        """Queue the receipts collected so far, in the order they came, as one write."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        receipts, self._receipts = self._receipts, []
        if not receipts:
            return None
        if len({(r[1], r[2]) for r in receipts}) == len(receipts):
            # No message twice: order does not matter, and grouping by status makes one executemany each.
            receipts.sort(key=lambda r: r[0] is not MessageStatus.DELIVERED)
        writes = []
        for status, instance_id, message_id, at_us in receipts:
            params = {"i": instance_id, "m": message_id, "at_": at_us, "u": self._tick()}
            writes.append((self._updates[status], params))
            key = (instance_id, message_id)
            if key not in self._recent:  # else its SENT row is queued ahead of this update: nothing is early
                self._hold(key, (status, at_us))
        future = self.store.writer.submit(*writes, status=True)
        future.add_done_callback(_log_failure)
        return future

    def _hold(self, key: _Key, receipt: tuple[MessageStatus, int]) -> None:
        now = time.monotonic()
        while self._late:
            oldest_key, (deadline, _) = next(iter(self._late.items()))
            if deadline > now and len(self._late) < _LATE_MAX:
                break
            del self._late[oldest_key]
        entry = self._late.get(key)
        if entry is None:
            self._late[key] = (now + LATE_RECEIPT_SECONDS, [receipt])
        else:
            entry[1].append(receipt)

    # -- reads and purge (blocking: call from a thread) -------------------------------------------

    def get(self, instance_id: str, message_id: str) -> dict[str, Any] | None:
        with self.store.engine.connect() as conn:
            row = conn.exec_driver_sql(self._get_sql, {"i": instance_id, "m": message_id}).first()
        return _body(row) if row is not None else None

    def changes(self, instance_id: str, since_us: int | None, limit: int) -> list[dict[str, Any]]:
        """Rows changed after `since_us`, oldest change first; a tie at the page's end is never split."""
        params = {"i": instance_id, "s": since_us if since_us is not None else -(2**62), "n": limit}
        with self.store.engine.connect() as conn:
            rows = list(conn.exec_driver_sql(self._changes_sql, params).all())
            if rows and len(rows) == limit:
                # One node stamps distinct times, but two nodes (after a takeover) might not: never cut a tie,
                # or the next `since` would skip the rest of it.
                tie = {"i": instance_id, "u": rows[-1][-1], "m": rows[-1][0]}
                rows += conn.exec_driver_sql(self._tie_sql, tie).all()
        return [_body(r) for r in rows]

    def purge(self, now_us: int | None = None) -> int:
        """Forget messages unchanged for longer than the retention (at least 30 days, CONTRACT §5)."""
        cutoff = (now_us if now_us is not None else time.time_ns() // 1000) - self.retention_us
        m = messages.c
        purged = 0
        with self.store.engine.begin() as conn:
            # Instance by instance, so that the delete walks the (instance_id, updated_at) index.
            for (instance_id,) in conn.execute(sa.select(m.instance_id).distinct()).all():
                result = conn.execute(messages.delete().where(m.instance_id == instance_id, m.updated_at < cutoff))
                purged += int(result.rowcount or 0)
        return purged

    def forget_instance(self, instance_id: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(messages.delete().where(messages.c.instance_id == instance_id))

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._purge_task = asyncio.get_running_loop().create_task(self._purge_loop())

    def stop(self) -> None:
        if self._purge_task is not None:
            self._purge_task.cancel()
        self.flush()  # receipts already received are written before the store closes

    async def _purge_loop(self) -> None:
        while True:
            try:
                purged = await asyncio.to_thread(self.purge)
                if purged:
                    log(logger, logging.INFO, "message statuses purged", rows=purged)
            except Exception:
                logger.exception("message status purge failed")
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)


def _body(row: Any) -> dict[str, Any]:
    values = dict(zip(_COLUMNS, row, strict=True))
    for name in _TIMES:
        values[name] = iso_us(values[name])
    return values


def _settle(done: asyncio.Future[None], written: asyncio.Future[bool]) -> None:
    if done.done():
        return
    error = None if written.cancelled() else written.exception()
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def _log_failure(future: asyncio.Future[bool]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log(logger, logging.WARNING, "receipt not stored", error=repr(future.exception()))
