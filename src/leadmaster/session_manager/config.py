"""Session-manager settings, read once from the environment (CONTRACT §2.6)."""

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadmaster.common.logs import LOG_FORMAT_VAR
from leadmaster.common.settings import OptionalLogFormat, OptionalText
from leadmaster.contract.ids import is_valid_instance_id

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SESSION_MANAGER_", extra="ignore", populate_by_name=True)

    port: int = Field(3001, validation_alias="PORT", ge=0, le=65535)
    host: str = "127.0.0.1"
    engine: Literal["whatsmeow", "sandbox"] = "whatsmeow"
    data_dir: Path = Path("./data/session-manager")
    store_url: OptionalText = None
    default_instance: str = "admin"
    api_key: OptionalText = None
    log_level: str = "INFO"
    log_format: OptionalLogFormat = Field(None, validation_alias=LOG_FORMAT_VAR)
    # Seconds a client may take to send a whole request (head and body) before it is dropped with a 408.
    request_read_timeout: float = Field(10.0, gt=0)
    # Sandbox only: pair by itself this many seconds after the first QR (0 = only on /scan).
    sandbox_auto_pair_seconds: float = Field(0.0, validation_alias="SANDBOX_AUTO_PAIR_SECONDS", ge=0)
    # Sandbox only: QR rotation, as the real engine (first code 60 s, then 20 s, 6 codes).
    sandbox_qr_first_seconds: float = Field(60.0, validation_alias="SANDBOX_QR_FIRST_SECONDS", gt=0)
    sandbox_qr_seconds: float = Field(20.0, validation_alias="SANDBOX_QR_SECONDS", gt=0)
    sandbox_qr_count: int = Field(6, validation_alias="SANDBOX_QR_COUNT", ge=1)
    # Sandbox only: a sent message turns DELIVERED, then READ, this long after the send (CONTRACT §5).
    sandbox_delivery_ms: int = Field(200, validation_alias="SANDBOX_DELIVERY_MS", ge=0)
    sandbox_read_ms: int = Field(1000, validation_alias="SANDBOX_READ_MS", ge=0)
    # CONTRACT §5: message statuses are kept at least 30 days; number-check answers cached, lookups limited.
    message_retention_days: float = Field(30.0, ge=30)
    contact_cache_hours: float = Field(24.0, ge=0)
    contact_checks_per_hour: int = Field(200, ge=1)
    # Resume stored sessions on start-up (CONTRACT §2.2); tests turn it off to control timing.
    connect_on_start: bool = True
    # Idempotency records are kept this long (CONTRACT §2.5: 24 h).
    idempotency_ttl_seconds: int = 24 * 3600
    # Whatsmeow only: dial WhatsApp through this proxy (tests use http://127.0.0.1:1 to fail dials fast).
    whatsmeow_proxy: OptionalText = None
    # Whatsmeow only: reconnect backoff after a failed dial (exponential with jitter, first delay and cap).
    whatsmeow_backoff_base_seconds: float = Field(1.0, gt=0)
    whatsmeow_backoff_cap_seconds: float = Field(300.0, gt=0)
    # Whatsmeow only: dials in flight at once (1,000 stored sessions never storm WhatsApp at start-up).
    whatsmeow_max_dials: int = Field(16, ge=1, le=1000)
    # Whatsmeow only: the one database pool of every device of the node (PostgreSQL server connections).
    whatsmeow_db_connections: int = Field(8, ge=1, le=100)

    @field_validator("default_instance")
    @classmethod
    def _valid_instance(cls, value: str) -> str:
        if not is_valid_instance_id(value):
            raise ValueError(f"SESSION_MANAGER_DEFAULT_INSTANCE={value!r} must match ^[A-Za-z0-9_-]{{1,64}}$")
        return value

    @model_validator(mode="after")
    def _refuse_open_bind_without_key(self) -> "Settings":
        if not is_loopback(self.host) and not self.api_key:
            raise ValueError(
                f"SESSION_MANAGER_HOST={self.host!r} is not a loopback address and SESSION_MANAGER_API_KEY "
                "is not set: refusing to expose WhatsApp sessions without an API key. "
                "Set SESSION_MANAGER_API_KEY or bind to 127.0.0.1."
            )
        return self
