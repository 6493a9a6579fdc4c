"""SQLite pragmas are set in one place, and each service's databases get what it states it needs."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from leadmaster.central_hub.db.session import make_engine
from leadmaster.session_manager.store import Store

SRC = Path(__file__).resolve().parents[2] / "src" / "leadmaster"


def _pragmas(engine: sa.Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")}


def test_hub_database_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        # synchronous 1 = NORMAL.
        assert _pragmas(engine) == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 30_000,
                                    "foreign_keys": 1}
    finally:
        engine.dispose()


def test_session_manager_store_pragmas(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'sm.sqlite3'}")
    try:
        assert _pragmas(store.engine) == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 5_000,
                                          "foreign_keys": 0}
    finally:
        store.close()


def test_no_other_module_sets_a_pragma() -> None:
    setter = re.compile(r"pragma\s+\w+\s*[=(]", re.IGNORECASE)  # PRAGMA name=value / PRAGMA name(value)
    setters = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if setter.search(p.read_text()))
    assert setters == ["common/sqlite.py"]
