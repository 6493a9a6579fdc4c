"""What the dashboard needs about the caller (hub extensions, see docs/central-hub.md)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.deps import CurrentPrincipal, HubDep
from leadmaster.central_hub.api.forward import authorize
from leadmaster.central_hub.api.routes.admin import naive_utc
from leadmaster.central_hub.db import repo

router = APIRouter(prefix="/api", tags=["me"], responses=errors.AUTH_RESPONSES)


@router.get("/me")
async def me(principal: CurrentPrincipal) -> dict[str, Any]:
    """Who the bearer is: username (or API-key label), role, cliente."""
    return {"username": principal.name, "role": principal.role, "cliente_id": principal.cliente_id}


@router.get("/clientes")
async def my_clientes(principal: CurrentPrincipal, hub: HubDep) -> list[dict[str, Any]]:
    """Clientes the caller may act on: all for an admin, its own for a user."""
    if principal.is_admin:
        rows = await hub.db.run(repo.clientes)
    elif principal.cliente_id is None:
        rows = []
    else:
        only = principal.cliente_id
        rows = await hub.db.run(lambda s: repo.clientes(s, only=only))
    return [repo.cliente_out(c) for c in rows]


@router.get("/whatsapp/{cliente_id}/interactions", tags=["whatsapp"])
async def cliente_interactions(
    cliente_id: int, principal: CurrentPrincipal, hub: HubDep,
    since: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The interaction log of one cliente, newest first (users may read their own)."""
    await authorize(hub, principal, cliente_id)
    return {"items": await hub.interactions.read(cliente_id, naive_utc(since), limit)}
