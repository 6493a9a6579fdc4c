"""Queries of the hub, as plain functions of a Session (run them through Database.run)."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from leadmaster.central_hub.db.models import ApiKey, Cliente, Interaction, User, utcnow


def cliente_out(c: Cliente) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "instance_id": c.instance_id}


def user_out(u: User) -> dict[str, Any]:
    return {"id": u.id, "username": u.username, "role": u.role, "cliente_id": u.cliente_id}


def api_key_out(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id, "name": k.name, "prefix": k.prefix, "role": k.role, "cliente_id": k.cliente_id,
        "created_at": iso(k.created_at), "revoked_at": iso(k.revoked_at) if k.revoked_at else None,
    }


def interaction_out(i: Interaction) -> dict[str, Any]:
    return {
        "id": i.id, "time": iso(i.time), "request_id": i.request_id, "user": i.actor,
        "cliente_id": i.cliente_id, "instance_id": i.instance_id, "operation": i.operation,
        "method": i.method, "path": i.path, "upstream_status": i.upstream_status,
        "outcome": i.outcome, "duration_ms": i.duration_ms,
    }


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds") + "Z"


def count_users(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(User)) or 0)


def user_by_name(s: Session, username: str) -> User | None:
    return s.scalar(select(User).where(User.username == username))


def clientes(s: Session, only: int | None = None) -> Sequence[Cliente]:
    q = select(Cliente).order_by(Cliente.id)
    if only is not None:
        q = q.where(Cliente.id == only)
    return s.scalars(q).all()


def api_key_by_hash(s: Session, key_hash: str) -> ApiKey | None:
    return s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))


def insert_interactions(s: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        s.execute(insert(Interaction), rows)


def interactions(
    s: Session, cliente_id: int | None, since: datetime | None, limit: int
) -> Sequence[Interaction]:
    q = select(Interaction).order_by(Interaction.id.desc()).limit(limit)
    if cliente_id is not None:
        q = q.where(Interaction.cliente_id == cliente_id)
    if since is not None:
        q = q.where(Interaction.time >= since)
    return s.scalars(q).all()


def revoke_api_key(s: Session, key_id: int) -> str | None:
    """Mark the key revoked; returns its hash (to drop from caches) or None when unknown."""
    key = s.get(ApiKey, key_id)
    if key is None:
        return None
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key.key_hash


def users(s: Session) -> Sequence[User]:
    return s.scalars(select(User).order_by(User.id)).all()


def api_keys(s: Session) -> Sequence[ApiKey]:
    return s.scalars(select(ApiKey).order_by(ApiKey.id)).all()
