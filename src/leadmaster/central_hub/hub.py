"""The hub's composition root at run time: everything a request needs, started and stopped together."""

import asyncio
import contextlib
import logging
import secrets
import sys
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from leadmaster.central_hub.auth.authenticator import Authenticator
from leadmaster.central_hub.auth.coherence import CacheCoherence, ChangeListener
from leadmaster.central_hub.auth.secrets import hash_password, load_or_create_secret, write_private
from leadmaster.central_hub.clientes import ClienteDirectory
from leadmaster.central_hub.config import Settings
from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.models import User
from leadmaster.central_hub.db.session import Database, make_engine, migrate
from leadmaster.central_hub.interactions import InteractionLog
from leadmaster.central_hub.session_manager_client import SessionManagerClient
from leadmaster.common.files import private_dir
from leadmaster.common.logs import log
from leadmaster.common.metrics import Counter, Histogram, Registry


class Hub:
    db: Database
    auth: Authenticator
    coherence: CacheCoherence
    listener: ChangeListener | None
    clientes: ClienteDirectory
    interactions: InteractionLog

    def __init__(self, settings: Settings, logger: logging.Logger) -> None:
        self.settings = settings
        self.logger = logger
        self.client = SessionManagerClient(
            settings.session_manager_base_url,
            api_key=settings.sm_api_key,
            connect_timeout=settings.sm_connect_timeout,
            read_timeout=settings.sm_read_timeout,
            api=settings.sm_api,
        )
        self.sm_reachable: bool | None = None
        self.sm_checked_at: datetime | None = None
        self._health_task: asyncio.Task[None] | None = None
        self.listener = None
        self.registry = Registry()
        self.http_requests = self.registry.add(Counter(
            "central_hub_http_requests_total", "Requests served by the hub", ("method", "route", "status")
        ))
        self.http_latency = self.registry.add(Histogram(
            "central_hub_http_request_duration_seconds", "Hub request latency", ("route",)
        ))
        self.registry.add(self.client.calls)
        self.registry.add(self.client.latency)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.inc(method, route, str(status))
        self.http_latency.observe(seconds, route)

    async def start(self) -> None:
        s = self.settings
        private_dir(s.data_dir)  # 0700, and files an older version left 0644 become 0600
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # import-time noise
        engine = make_engine(s.resolved_database_url)
        await asyncio.to_thread(migrate, engine)
        self.db = Database(engine)
        secret = load_or_create_secret(s.data_dir, s.secret_key)
        # One process on SQLite: local invalidation is enough. On PostgreSQL other hub processes may change
        # credentials too: caches are trusted only while the listener is connected (see auth/coherence.py).
        shared = engine.dialect.name == "postgresql"
        self.coherence = CacheCoherence(trusted=not shared)
        self.listener = ChangeListener(s.resolved_database_url, self.coherence, self.logger) if shared else None
        if self.listener is not None:
            self.listener.start()
        self.auth = Authenticator(self.db, secret, s.token_lifetime_seconds, self.coherence)
        self.clientes = ClienteDirectory(self.db, self.coherence)
        self.interactions = InteractionLog(self.db, self.logger)
        await self.db.run(self._first_run_admin)
        await self.client.start()
        self.interactions.start()
        # Never block start-up on the session-manager (CONTRACT §3.1): probe in the background.
        self._health_task = asyncio.create_task(self._health_loop(), name="session-manager-health")

    async def stop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self.listener is not None:
            await self.listener.stop()
        await self.interactions.stop()
        await self.client.close()
        self.auth.close()
        await asyncio.to_thread(self.db.engine.dispose)  # closing pooled connections may wait on the server

    def _first_run_admin(self, session: Session) -> None:
        if repo.count_users(session) > 0:
            return
        s = self.settings
        if s.admin_username and s.admin_password:
            username, password, generated = s.admin_username, s.admin_password, False
        else:
            username, password, generated = "admin", secrets.token_urlsafe(18), True
        session.add(User(username=username, password_hash=hash_password(password), role="admin"))
        if generated:
            path = s.data_dir / "initial-admin-password"
            write_private(path, password + "\n")
            # Printed once, on purpose and outside the structured log (which never holds a password).
            print(f"central-hub: created user 'admin' with password {password} (also in {path})",
                  file=sys.stdout, flush=True)
        log(self.logger, logging.WARNING, "first run: created the initial admin user", username=username)

    def note_reachability(self, reachable: bool) -> None:
        if reachable != self.sm_reachable:
            level = logging.INFO if reachable else logging.WARNING
            log(self.logger, level, "session-manager reachability changed", reachable=reachable,
                base_url=self.settings.session_manager_base_url)
        self.sm_reachable = reachable
        self.sm_checked_at = datetime.now(UTC)

    async def _health_loop(self) -> None:
        while True:
            self.note_reachability(await self.client.health())
            if self.settings.sm_health_interval <= 0:
                return
            await asyncio.sleep(self.settings.sm_health_interval)
