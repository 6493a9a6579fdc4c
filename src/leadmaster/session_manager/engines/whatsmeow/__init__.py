"""The real WhatsApp engine: whatsmeow through neonize, run in a supervised worker process.

Only `worker`, `manager`, `sessions` and `testhooks` import neonize, and only inside the worker process.
The engine is imported lazily so that the worker process, which imports this package, stays lean.
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
