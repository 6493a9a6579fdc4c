"""Cluster settings (CONTRACT §4), read from the same environment as the rest of the session-manager."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_NODE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ClusterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SESSION_MANAGER_", extra="ignore")

    # The base URL the other nodes reach this one at; default http://<host>:<port>.
    node_url: str | None = None
    # How long a silent node keeps its instances; heartbeats renew every third of it.
    lease_seconds: float = Field(10.0, ge=1.0, le=600.0)
    # Stable name of this node; default: kept in <data dir>/node-id, generated on first start.
    node_id: str | None = None
    # A forwarded request waits this long for the owner's answer (below the hub's 30 s read timeout).
    forward_timeout_seconds: float = Field(25.0, gt=0, le=300.0)

    @field_validator("node_url", "node_id")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("node_url")
    @classmethod
    def _absolute_http(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/\s]+/?", value):
            raise ValueError(f"SESSION_MANAGER_NODE_URL={value!r} must be http(s)://host:port (how peers reach it)")
        return value.rstrip("/") if value else value

    @field_validator("node_id")
    @classmethod
    def _valid_node_id(cls, value: str | None) -> str | None:
        if value is not None and not _NODE_ID.fullmatch(value):
            raise ValueError(f"SESSION_MANAGER_NODE_ID={value!r} must be 1-64 of A-Z a-z 0-9 _ . -")
        return value


def node_id_for(data_dir: Path, configured: str | None) -> str:
    """The configured node id, or the one kept in the data dir (written once, owner-only)."""
    if configured:
        return configured
    path = data_dir / "node-id"
    try:
        found = path.read_text().strip()
    except FileNotFoundError:
        found = ""
    if _NODE_ID.fullmatch(found):
        return found
    node_id = f"node-{secrets.token_hex(4)}"
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(node_id + "\n")
    return node_id
