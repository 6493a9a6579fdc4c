"""FastAPI dependencies of the session-manager's routes."""

from typing import Annotated, NamedTuple

from fastapi import Depends, Request

from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.service import SessionService

# Every dependency is `async def` (FastAPI runs plain `def` ones in a thread pool) and a route takes one
# dependency, not a chain: on the send path, dependency solving was a quarter of the server's time.


class Target(NamedTuple):
    """The service and the instance a session route acts on."""

    svc: SessionService
    instance_id: str


async def get_service(request: Request) -> SessionService:
    service: SessionService = request.app.state.service
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def path_target(request: Request, instance_id: str) -> Target:
    """Canonical routes: the instance named in the path (400 INVALID_INSTANCE_ID when malformed)."""
    return Target(request.app.state.service, SessionService.check_instance_id(instance_id))


async def default_target(request: Request) -> Target:
    """Single-admin routes: the configured default instance."""
    return Target(request.app.state.service, request.app.state.settings.default_instance)


Service = Annotated[SessionService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]
