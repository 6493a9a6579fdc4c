"""The real WhatsApp engine: whatsmeow in a supervised Go worker process (engine-worker/).

Nothing here imports a WhatsApp library. The engine is imported lazily, keeping this package's import cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadmaster.session_manager.engines.whatsmeow.engine import WhatsmeowEngine

__all__ = ["WhatsmeowEngine"]


def __getattr__(name: str) -> Any:
    if name == "WhatsmeowEngine":
        from leadmaster.session_manager.engines.whatsmeow.engine import WhatsmeowEngine

        return WhatsmeowEngine
    raise AttributeError(name)
