"""FastAPI dependencies of the session-manager's routes."""

from typing import Annotated

from fastapi import Depends, Request

from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.service import SessionService

# Every dependency is `async def`: FastAPI runs plain `def` dependencies in a thread pool, which
# costs more than the whole send path (see bench/bench_sm_send.py).


async def get_service(request: Request) -> SessionService:
    service: SessionService = request.app.state.service
    return service


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def path_instance(instance_id: str) -> str:
    return SessionService.check_instance_id(instance_id)


async def default_instance(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.default_instance


Service = Annotated[SessionService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]
