"""Where whatsmeow credentials live, and how to drop them when the worker cannot (no Go needed here).

The Go worker keeps every device of the node in one whatsmeow store: `<data_dir>/whatsmeow/whatsmeow.sqlite3`
by default, or the PostgreSQL database of `SESSION_MANAGER_STORE_URL`, beside its own table
`leadmaster_wa_instance` (instance_id → device JID), so that any node sharing the database finds an
instance's device. The worker deletes credentials itself (logout, forget, unlinked from the phone);
this module does it only when no worker is running.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
from pathlib import Path

from leadmaster.common.files import private_dir
from leadmaster.common.logs import log
from leadmaster.common.pgurl import plain_on_loopback
from leadmaster.common.sqlite import set_pragmas

logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow")

SQLITE_FILE = "whatsmeow.sqlite3"  # engine-worker/store.go SQLiteFile
_FIND = "SELECT jid FROM leadmaster_wa_instance WHERE instance_id = {p}"
_DELETES = (
    # Other whatsmeow tables reference the device row with ON DELETE CASCADE.
    "DELETE FROM whatsmeow_device WHERE jid = {p}",
    "DELETE FROM leadmaster_wa_instance WHERE instance_id = {p}",
    "DELETE FROM leadmaster_wa_sent WHERE instance_id = {p}",
)


def go_postgres_url(url: str) -> str:
    """The store URL as psycopg (and the worker) read it: no SQLAlchemy `+driver`, TLS off on loopback."""
    return plain_on_loopback(re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url))


class Credentials:
    def __init__(self, data_dir: Path, store_url: str | None) -> None:
        self.root = data_dir / "whatsmeow"
        self.store_url = go_postgres_url(store_url) if store_url else None

    @property
    def sqlite_path(self) -> Path:
        return self.root / SQLITE_FILE

    def prepare(self) -> None:
        private_dir(self.root)  # WhatsApp credentials: owner only, whatever neonize's own modes

    def delete(self, instance_id: str) -> None:
        """Delete the instance's device and mapping from the store; best effort, never raises."""
        try:
            if self.store_url:
                self._delete_pg(instance_id)
            elif self.sqlite_path.exists():
                self._delete_sqlite(instance_id)
        except Exception as exc:
            log(logger, logging.WARNING, "could not delete credentials from the store", instance_id=instance_id,
                error=repr(exc)[:300])

    def stored(self, instance_id: str) -> str | None:
        """The device JID the store maps the instance to (None when unpaired or no store yet)."""
        if self.store_url:
            import psycopg

            with psycopg.connect(self.store_url, connect_timeout=5) as conn:
                try:
                    row = conn.execute(_FIND.format(p="%s"), (instance_id,)).fetchone()
                except psycopg.errors.UndefinedTable:
                    return None
        else:
            if not self.sqlite_path.exists():
                return None
            with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=10)) as db:
                try:
                    row = db.execute(_FIND.format(p="?"), (instance_id,)).fetchone()
                except sqlite3.OperationalError:
                    return None
        return str(row[0]) if row else None

    def _delete_sqlite(self, instance_id: str) -> None:
        with contextlib.closing(sqlite3.connect(self.sqlite_path, timeout=10)) as db:
            # As the Go worker opens it (engine-worker/store.go): its deletes cascade through foreign keys.
            set_pragmas(db, busy_timeout_ms=10_000, foreign_keys=True)
            jid = db.execute(_FIND.format(p="?"), (instance_id,)).fetchone()
            with db:
                db.execute(_DELETES[0].format(p="?"), (jid[0] if jid else "",))
                for statement in _DELETES[1:]:
                    db.execute(statement.format(p="?"), (instance_id,))

    def _delete_pg(self, instance_id: str) -> None:
        import psycopg

        assert self.store_url
        with psycopg.connect(self.store_url, connect_timeout=5) as conn:
            try:
                jid = conn.execute(_FIND.format(p="%s"), (instance_id,)).fetchone()
            except psycopg.errors.UndefinedTable:
                return
            conn.execute(_DELETES[0].format(p="%s"), (jid[0] if jid else "",))
            for statement in _DELETES[1:]:
                conn.execute(statement.format(p="%s"), (instance_id,))
