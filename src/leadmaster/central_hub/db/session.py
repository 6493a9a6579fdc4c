"""Engine creation and migrations. DB work runs in worker threads; the hot path never touches the DB."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from leadmaster.common.pgurl import plain_on_loopback
from leadmaster.common.sqlite import use_sqlite_pragmas

T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        # The hub's needs: users and API keys reference clientes (foreign keys enforced); several writers in
        # worker threads (interaction log, admin API, logins), so a writer waits up to 30 s for another.
        use_sqlite_pragmas(engine, busy_timeout_ms=30_000, foreign_keys=True)
        return engine
    return create_engine(plain_on_loopback(url), pool_size=5, max_overflow=5, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (CONTRACT §3.1: migrations run by themselves)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


class Database:
    """A sessionmaker plus `run()`, which executes blocking ORM work off the event loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    async def run(self, fn: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self.call, fn)

    def call(self, fn: Callable[[Session], T]) -> T:
        with self.sessions.begin() as session:
            return fn(session)
