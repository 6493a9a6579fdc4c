"""Where each instance's whatsmeow credentials live, and how to drop them (no neonize needed here).

SQLite (default): one store file per instance, `<data_dir>/whatsmeow/<instance_id>.sqlite3`, so neonize's
"first device of the store" is always that instance's device.
Postgres (`SESSION_MANAGER_STORE_URL`): every device shares one database, and neonize tells them apart only
by JID, so the instance → device JID map is kept in `<data_dir>/whatsmeow/devices.json`; an instance with
no known JID pairs as a brand-new device.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from leadmaster.common.files import private_dir
from leadmaster.common.logs import log

logger = logging.getLogger("leadmaster.session_manager.engines.whatsmeow")

_SQLITE_SUFFIXES = ("", "-journal", "-wal", "-shm")


@dataclass(frozen=True, slots=True)
class DeviceJid:
    user: str
    server: str
    device: int = 0

    def __str__(self) -> str:
        # whatsmeow's JID.String() form, the key of its whatsmeow_device table.
        return f"{self.user}:{self.device}@{self.server}" if self.device else f"{self.user}@{self.server}"


def go_postgres_url(url: str) -> str:
    """The store URL as Go's lib/pq (and psycopg) read it: no SQLAlchemy `+driver`, TLS off on loopback."""
    parts = urlsplit(re.sub(r"^postgres(?:ql)?\+\w+://", "postgresql://", url))
    query = parse_qs(parts.query)
    # lib/pq defaults to sslmode=require (libpq: prefer), which a local server without TLS refuses.
    if "sslmode" not in query and (parts.hostname or "localhost") in ("localhost", "127.0.0.1", "::1"):
        query["sslmode"] = ["disable"]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


class Credentials:
    def __init__(self, data_dir: Path, store_url: str | None) -> None:
        self.root = data_dir / "whatsmeow"
        self.store_url = go_postgres_url(store_url) if store_url else None
        self._map_path = self.root / "devices.json"
        self._lock = threading.Lock()

    def prepare(self) -> None:
        private_dir(self.root)  # WhatsApp credentials: owner only, whatever neonize's own modes

    def database(self, instance_id: str) -> str:
        """What neonize takes as its store: a SQLite path or the Postgres URL."""
        return self.store_url or str(self.sqlite_path(instance_id))

    def sqlite_path(self, instance_id: str) -> Path:
        return self.root / f"{instance_id}.sqlite3"

    def device(self, instance_id: str) -> DeviceJid | None:
        raw = self._load().get(instance_id)
        if not isinstance(raw, dict):
            return None
        try:
            return DeviceJid(str(raw["user"]), str(raw["server"]), int(raw.get("device", 0)))
        except (KeyError, TypeError, ValueError):
            return None

    def remember(self, instance_id: str, jid: DeviceJid) -> None:
        if not self.store_url:
            return
        with self._lock:
            data = self._load()
            data[instance_id] = {"user": jid.user, "server": jid.server, "device": jid.device}
            self._save(data)

    def delete(self, instance_id: str) -> None:
        """Delete the instance's credentials from the store; best effort, never raises."""
        if self.store_url:
            jid = self.device(instance_id)
            with self._lock:
                data = self._load()
                data.pop(instance_id, None)
                self._save(data)
            if jid is not None:
                self._delete_pg_device(str(jid))
            return
        for suffix in _SQLITE_SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.sqlite_path(instance_id)}{suffix}")

    def pg_device_exists(self, jid: DeviceJid) -> bool:
        """Whether the Postgres store still holds this device (neonize crashes on a missing one)."""
        import psycopg

        assert self.store_url
        try:
            with psycopg.connect(self.store_url, connect_timeout=5) as conn:
                row = conn.execute("SELECT 1 FROM whatsmeow_device WHERE jid = %s", (str(jid),)).fetchone()
                return row is not None
        except psycopg.errors.UndefinedTable:
            return False

    def _delete_pg_device(self, jid: str) -> None:
        import psycopg

        assert self.store_url
        try:
            with psycopg.connect(self.store_url, connect_timeout=5) as conn:
                # Other whatsmeow tables reference the device row with ON DELETE CASCADE.
                conn.execute("DELETE FROM whatsmeow_device WHERE jid = %s", (jid,))
        except Exception as exc:
            log(logger, logging.WARNING, "could not delete device from the store", jid=jid, error=repr(exc))

    def _load(self) -> dict[str, object]:
        try:
            data = json.loads(self._map_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, object]) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)  # prepare() already tightened what exists
        tmp = self._map_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self._map_path)
