"""Users (CONTRACT §3.3): change or delete one (admin), change one's own password (any signed-in user).

A password change or a demotion bumps the user's `credentials_version`, which refuses every token issued
before it; a deletion refuses them too. The last admin can be neither deleted nor demoted (409).
"""

from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictInt
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadmaster.central_hub import errors
from leadmaster.central_hub.api.deps import AdminPrincipal, CurrentPrincipal, HubDep
from leadmaster.central_hub.api.routes.admin import check_binding
from leadmaster.central_hub.auth import login_limit
from leadmaster.central_hub.db import repo
from leadmaster.central_hub.db.models import DB_INT_MAX, User
from leadmaster.contract.ids import CLIENTE_ID_MAX

admin_router = APIRouter(prefix="/api/admin", tags=["admin"], responses={
    **errors.AUTH_RESPONSES, 409: errors.doc_response("CONFLICT: the last admin", "CONFLICT"),
})
router = APIRouter(prefix="/api/auth", tags=["auth"], responses=errors.AUTH_RESPONSES)


class UserPatch(BaseModel):
    role: Literal["admin", "user"] | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)
    cliente_id: StrictInt | None = Field(None, gt=0, le=CLIENTE_ID_MAX)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


def _user(s: Session, user_id: int) -> User:
    row = s.get(User, user_id) if 0 < user_id <= DB_INT_MAX else None
    if row is None:
        raise errors.NotFoundError(f"No user with id {user_id}.")
    return row


def _refuse_losing_last_admin(s: Session, row: User, what: str) -> None:
    if row.role != "admin":
        return
    admins = select(User.id).where(User.role == "admin")
    if s.get_bind().dialect.name == "postgresql":
        # Two admins removing each other at once: the row locks serialize them, so one admin always remains.
        s.scalars(admins.with_for_update()).all()
    if (s.scalar(select(func.count()).select_from(admins.subquery())) or 0) <= 1:
        raise errors.ConflictError(f"User {row.username!r} is the last admin and cannot be {what}.")


@admin_router.patch("/users/{user_id}")
async def update_user(user_id: int, body: UserPatch, _: AdminPrincipal, hub: HubDep) -> dict[str, Any]:
    """Change a user's role, password or cliente; a new password or a demotion signs the user out."""
    given = body.model_fields_set
    new_hash = await hub.auth.hasher.hash(body.password) if body.password is not None else None

    def update(s: Session) -> dict[str, Any]:
        row = _user(s, user_id)
        role = body.role if body.role is not None else row.role
        kept = None if role == "admin" else row.cliente_id  # a promotion unbinds; a user keeps its cliente
        cliente_id = body.cliente_id if "cliente_id" in given else kept
        check_binding(s, role, cliente_id)
        bump = new_hash is not None
        if row.role == "admin" and role != "admin":
            _refuse_losing_last_admin(s, row, "demoted")
            bump = True
        row.role, row.cliente_id = role, cliente_id
        if new_hash is not None:
            row.password_hash = new_hash
        if bump:
            row.credentials_version = (row.credentials_version or 0) + 1
        return repo.user_out(row)

    out = await hub.db.run(update)
    hub.coherence.invalidate()  # this process at once; the others by the database's NOTIFY
    return out


@admin_router.delete("/users/{user_id}", status_code=204)
async def delete_user(user_id: int, _: AdminPrincipal, hub: HubDep) -> Response:
    """Delete a user; its tokens are refused from the next request on."""

    def delete(s: Session) -> None:
        row = _user(s, user_id)
        _refuse_losing_last_admin(s, row, "deleted")
        s.delete(row)

    await hub.db.run(delete)
    hub.coherence.invalidate()
    return Response(status_code=204)


@router.post("/password", status_code=204, responses={
    400: errors.doc_response("VALIDATION_ERROR: wrong current password", "VALIDATION_ERROR"),
    429: errors.doc_response("TOO_MANY_ATTEMPTS: login limit reached", "TOO_MANY_ATTEMPTS"),
})
async def change_password(body: PasswordChange, principal: CurrentPrincipal, hub: HubDep) -> Response:
    """Change the caller's own password; every token of the user, this one included, is refused after."""
    if principal.kind != "user":
        raise errors.ForbiddenError("An API key has no password; an admin revokes it and mints a new one.")
    username = principal.name

    def begin(s: Session) -> str:
        # A stolen token must not turn into a password oracle: wrong current passwords count as failed logins.
        login_limit.begin_attempt(s, username)
        return _user(s, principal.id).password_hash

    current = await hub.db.run(begin)
    if not await hub.auth.hasher.verify(current, body.current_password):
        raise errors.ValidationFailedError("The current password is wrong.", details=[
            {"loc": ["body", "current_password"], "msg": "wrong password"}])
    new_hash = await hub.auth.hasher.hash(body.new_password)

    def update(s: Session) -> None:
        login_limit.succeeded(s, username)
        row = _user(s, principal.id)
        row.password_hash = new_hash
        row.credentials_version = (row.credentials_version or 0) + 1

    await hub.db.run(update)
    hub.coherence.invalidate()
    return Response(status_code=204)
