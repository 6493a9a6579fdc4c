"""FastAPI dependencies of the session-manager's routes."""

from typing import Annotated

from fastapi import Depends, Request

from leadmaster.session_manager.config import Settings
from leadmaster.session_manager.service import SessionService


def get_service(request: Request) -> SessionService:
    service: SessionService = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def path_instance(instance_id: str) -> str:
    return SessionService.check_instance_id(instance_id)


def default_instance(request: Request) -> str:
    return get_settings(request).default_instance


Service = Annotated[SessionService, Depends(get_service)]
AppSettings = Annotated[Settings, Depends(get_settings)]
