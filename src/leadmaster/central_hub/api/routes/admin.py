"""Admin API (role admin): clientes, users, API keys, the interaction log."""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictInt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.deps import AdminPrincipal, HubDep
from leadmaster.central_hub.auth.secrets import new_api_key
from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.models import DB_INT_MAX, NO_NUL, ApiKey, Cliente, User
from leadmaster.contract.ids import CLIENTE_ID_MAX, INSTANCE_ID_RE, default_instance_id

router = APIRouter(prefix="/api/admin", tags=["admin"], responses={
    **errors.AUTH_RESPONSES, 409: errors.doc_response("CONFLICT: already exists", "CONFLICT"),
})


class ClienteIn(BaseModel):
    id: StrictInt = Field(gt=0, le=CLIENTE_ID_MAX, examples=[51])
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL, examples=["Acme"])
    instance_id: str | None = Field(None, pattern=f"^{INSTANCE_ID_RE.pattern}$", examples=["sender_51"])


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=150, pattern=NO_NUL)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["admin", "user"]
    cliente_id: StrictInt | None = Field(None, gt=0, le=CLIENTE_ID_MAX)


class ApiKeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    role: Literal["admin", "user"]
    cliente_id: StrictInt | None = Field(None, gt=0, le=CLIENTE_ID_MAX)


def check_binding(s: Session, role: str, cliente_id: int | None) -> None:
    # A user is bound to exactly one existing cliente; an admin to none.
    if role == "admin" and cliente_id is not None:
        raise errors.ValidationFailedError("An admin is not bound to a cliente: leave cliente_id out.")
    if role == "user":
        if cliente_id is None:
            raise errors.ValidationFailedError("A user needs a cliente_id (the one cliente it may act on).")
        if s.get(Cliente, cliente_id) is None:
            raise errors.ValidationFailedError(
                f"cliente_id {cliente_id} does not exist; create the cliente first."
            )


@router.post("/clientes", status_code=201)
async def create_cliente(body: ClienteIn, _: AdminPrincipal, hub: HubDep) -> dict[str, Any]:
    """Create a cliente and bind it to a session-manager instance (default sender_<id>)."""
    instance_id = body.instance_id or default_instance_id(body.id)

    def create(s: Session) -> dict[str, Any]:
        if s.get(Cliente, body.id) is not None:
            raise errors.ConflictError(f"Cliente {body.id} already exists.")
        row = Cliente(id=body.id, name=body.name, instance_id=instance_id)
        s.add(row)
        s.flush()
        return repo.cliente_out(row)

    try:
        out = await hub.db.run(create)
    except IntegrityError:
        raise errors.ConflictError(f"Instance {instance_id!r} already belongs to another cliente.") from None
    hub.clientes.remember(body.id, instance_id)
    return out


@router.get("/clientes")
async def list_clientes(_: AdminPrincipal, hub: HubDep) -> list[dict[str, Any]]:
    """Every cliente."""
    rows = await hub.db.run(repo.clientes)
    return [repo.cliente_out(c) for c in rows]


@router.post("/users", status_code=201)
async def create_user(body: UserIn, _: AdminPrincipal, hub: HubDep) -> dict[str, Any]:
    """Create a user (admin, or user bound to one cliente)."""
    password_hash = await hub.auth.hasher.hash(body.password)  # argon2: on its own pool

    def create(s: Session) -> dict[str, Any]:
        check_binding(s, body.role, body.cliente_id)
        if repo.user_by_name(s, body.username) is not None:
            raise errors.ConflictError(f"User {body.username!r} already exists.")
        row = User(username=body.username, password_hash=password_hash, role=body.role,
                   cliente_id=body.cliente_id)
        s.add(row)
        s.flush()
        return repo.user_out(row)

    try:
        return await hub.db.run(create)
    except IntegrityError:
        raise errors.ConflictError(f"User {body.username!r} already exists.") from None


@router.get("/users")
async def list_users(_: AdminPrincipal, hub: HubDep) -> list[dict[str, Any]]:
    """Every user (hub extension)."""
    rows = await hub.db.run(repo.users)
    return [repo.user_out(u) for u in rows]


@router.post("/api-keys", status_code=201)
async def create_api_key(body: ApiKeyIn, _: AdminPrincipal, hub: HubDep) -> dict[str, Any]:
    """Mint an API key for a system; the key is in this answer only (stored hashed)."""
    key, prefix, key_hash = new_api_key()

    def create(s: Session) -> dict[str, Any]:
        check_binding(s, body.role, body.cliente_id)
        row = ApiKey(
            name=body.name, prefix=prefix, key_hash=key_hash, role=body.role, cliente_id=body.cliente_id
        )
        s.add(row)
        s.flush()
        return {"id": row.id, "key": key, "prefix": prefix}

    return await hub.db.run(create)


@router.get("/api-keys")
async def list_api_keys(_: AdminPrincipal, hub: HubDep) -> list[dict[str, Any]]:
    """Every API key, without the keys themselves (hub extension)."""
    rows = await hub.db.run(repo.api_keys)
    return [repo.api_key_out(k) for k in rows]


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: int, _: AdminPrincipal, hub: HubDep) -> Response:
    """Revoke an API key; it is refused from the next request on."""
    if not 0 < key_id <= DB_INT_MAX:  # beyond the INTEGER column: PostgreSQL would fail the query (500)
        raise errors.NotFoundError(f"No API key with id {key_id}.")
    key_hash = await hub.db.run(lambda s: repo.revoke_api_key(s, key_id))
    if key_hash is None:
        raise errors.NotFoundError(f"No API key with id {key_id}.")
    hub.auth.forget_key(key_hash)  # this process at once; the others by the database's NOTIFY
    return Response(status_code=204)


def naive_utc(value: datetime | None) -> datetime | None:
    """`since` as naive UTC; a time whose UTC equivalent falls outside years 1-9999 is a 400."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise errors.ValidationFailedError(
            f"since={value.isoformat()} is out of range: in UTC it falls outside years 1 to 9999.",
            details=[{"loc": ["query", "since"], "msg": "out of range"}],
        ) from None


@router.get("/interactions")
async def interactions(
    _: AdminPrincipal, hub: HubDep,
    cliente_id: Annotated[int | None, Query(gt=0, le=CLIENTE_ID_MAX)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; naive means UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Session-manager calls, newest first, optionally of one cliente and since a time."""
    return {"items": await hub.interactions.read(cliente_id, naive_utc(since), limit)}
