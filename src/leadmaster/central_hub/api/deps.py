"""FastAPI dependencies: the running Hub and the authenticated caller."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leadmaster.central_hub.auth.principal import Principal
from leadmaster.central_hub.hub import Hub

# Only for the OpenAPI document (security scheme); the header is parsed by the Authenticator.
_bearer = HTTPBearer(auto_error=False, description="A JWT from POST /api/auth/login, or an API key (lmk_...)")


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def current_principal(
    request: Request, _doc: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    return await get_hub(request).auth.authenticate(request.headers.get("authorization"))


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    principal.require_admin()
    return principal


HubDep = Annotated[Hub, Depends(get_hub)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
