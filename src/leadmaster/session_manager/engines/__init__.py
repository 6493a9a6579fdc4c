"""Engines: the adapters behind the port in `base.py`. `build_engine` picks one from the settings."""

from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.engines.base import Engine
from leadmaster.session_manager.store import Store


def build_engine(settings: Settings, store: Store) -> Engine:
    if settings.engine == "sandbox":
        from leadmaster.session_manager.engines.sandbox import SandboxEngine

        return SandboxEngine(settings, store)
    # Imported lazily: the real engine's module spawns the neonize worker; the sandbox never needs it.
    from leadmaster.session_manager.engines.whatsmeow import WhatsmeowEngine

    return WhatsmeowEngine(settings)
