"""Engines: the adapters behind the port in `base.py`. `build_engine` picks one from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Type-only: importing this package must not pay for
    # pydantic-settings and SQLAlchemy at start-up.
    from leadmaster.session_manager.config import Settings
    from leadmaster.session_manager.engines.base import Engine
    from leadmaster.session_manager.engines.sandbox import SandboxStorage


def build_engine(settings: Settings, sandbox_storage: SandboxStorage) -> Engine:
    if settings.engine == "sandbox":
        from leadmaster.session_manager.engines.sandbox import SandboxEngine

        return SandboxEngine(settings, sandbox_storage)
    # Imported lazily: only the real engine needs its worker-process machinery.
    from leadmaster.session_manager.engines.whatsmeow import WhatsmeowEngine

    return WhatsmeowEngine(settings)
