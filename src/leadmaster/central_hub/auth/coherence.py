"""Keeps every hub process's caches (API keys, users, cliente → instance) true to the database.

Several hub processes may share one PostgreSQL database (CONTRACT §4). A trigger on `users`, `api_keys` and
`clientes` (migration 0002) sends a NOTIFY at every commit that changes them, by any process or by hand;
each process LISTENs on its own connection and drops its caches when one arrives (milliseconds, well under
the 1 s the contract allows). While that connection is down the caches are not trusted at all: every
request reads the database until the listener is back. On SQLite there is one process: the routes that
change credentials invalidate locally, which is all it takes.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

from leadmaster.common.logs import log

CHANNEL = "leadmaster_hub_changed"  # the migration's trigger notifies on this channel
APPLICATION_NAME = "leadmaster-hub-listener"  # names the connection in pg_stat_activity
HEARTBEAT_SECONDS = 2.0  # a dead listener connection is noticed within about this (+ the query timeout)
RECONNECT_MAX_SECONDS = 5.0


class CacheCoherence:
    """Cache owners register a `clear`; readers store only what they read within one generation."""

    def __init__(self, trusted: bool = True) -> None:
        self.trusted = trusted
        self.generation = 0
        self._clears: list[Callable[[], None]] = []

    def register(self, clear: Callable[[], None]) -> None:
        self._clears.append(clear)

    def invalidate(self) -> None:
        self.generation += 1
        for clear in self._clears:
            clear()

    def may_store(self, generation: int) -> bool:
        """True when a value read from the database at `generation` may be cached: nothing changed since."""
        return self.trusted and generation == self.generation


class ChangeListener:
    """LISTENs for the trigger's notices on a dedicated PostgreSQL connection; reconnects when it drops."""

    def __init__(self, database_url: str, coherence: CacheCoherence, logger: logging.Logger) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self.coherence = coherence
        self.logger = logger
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._was_up = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hub-cache-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        delay = 0.1
        while True:
            self._was_up = False
            try:
                await self._listen()
            except Exception as exc:  # whatever broke it: listen again, caches bypassed meanwhile
                log(self.logger, logging.WARNING, "cache listener lost its connection; caches are bypassed",
                    error=type(exc).__name__)
            finally:
                self._untrust()
            # After a connection that was up, the back-off starts again from the shortest wait.
            delay = 0.1 if self._was_up else min(delay * 2, RECONNECT_MAX_SECONDS)
            await asyncio.sleep(delay)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME)
        async with conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            # Whatever changed while nobody listened: start from empty caches, then trust them again.
            self.coherence.invalidate()
            self.coherence.trusted = True
            self.connected.set()
            self._was_up = True
            log(self.logger, logging.INFO, "cache listener connected", channel=CHANNEL)
            while True:
                async for _notice in conn.notifies(timeout=HEARTBEAT_SECONDS):
                    self.coherence.invalidate()
                # Silence is normal; a connection that cannot answer a query is not.
                await asyncio.wait_for(conn.execute("SELECT 1"), HEARTBEAT_SECONDS)

    def _untrust(self) -> None:
        self.connected.clear()
        self.coherence.trusted = False
        self.coherence.invalidate()
