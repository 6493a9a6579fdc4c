"""Throwaway PostgreSQL databases for the PostgreSQL pass of the suite (LEADMASTER_TEST_DB=postgres)."""

from __future__ import annotations

import os
import uuid

import psycopg

ADMIN_DSN = os.environ.get("LEADMASTER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def use_postgres() -> bool:
    return os.environ.get("LEADMASTER_TEST_DB", "sqlite").lower() == "postgres"


def create_database(prefix: str = "leadmaster_test") -> str:
    """Create an empty database; return its libpq URL (postgresql://...)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def service_databases(
    prefix: str, sm_env: dict[str, str] | None = None, hub_env: dict[str, str] | None = None
) -> list[str]:
    """On the PostgreSQL pass, a throwaway database for each service env given, set in it; their libpq URLs."""
    if not use_postgres():
        return []
    urls: list[str] = []
    for env, var, driver in ((sm_env, "SESSION_MANAGER_STORE_URL", "postgresql://"),
                             (hub_env, "CENTRAL_HUB_DATABASE_URL", "postgresql+psycopg://")):
        if env is not None:
            url = create_database(prefix)
            urls.append(url)
            env[var] = url.replace("postgresql://", driver, 1)
    return urls
