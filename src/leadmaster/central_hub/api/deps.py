"""FastAPI dependencies: the running Hub and the authenticated caller.

All async on purpose: FastAPI runs a sync dependency in a worker thread, a hop the send path cannot afford.
"""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from leadmaster.central_hub.auth.principal import Principal
from leadmaster.central_hub.hub import Hub

OPEN_OPERATIONS = {("/health", "get"), ("/api/auth/login", "post")}


def hub_of(request: Request) -> Hub:
    """The running Hub; the per-cliente routes call this instead of a dependency (one solve less per send)."""
    hub: Hub = request.app.state.hub
    return hub


async def get_hub(request: Request) -> Hub:
    return hub_of(request)


async def current_principal(request: Request) -> Principal:
    hub: Hub = request.app.state.hub
    return await hub.auth.authenticate(request.headers.get("authorization"))


async def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    principal.require_admin()
    return principal


HubDep = Annotated[Hub, Depends(get_hub)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]


def document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer scheme in the OpenAPI document (kept out of the per-request dependency graph)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A JWT from POST /api/auth/login, or an API key (lmk_...)",
            }}
            for path, ops in schema["paths"].items():
                for method, op in ops.items():
                    # FastAPI documents a 422 by default; the hub answers 400 VALIDATION_ERROR instead.
                    op.get("responses", {}).pop("422", None)
                    if (path, method) not in OPEN_OPERATIONS:
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
