"""Central-hub settings, read once from the environment (CONTRACT §3.1)."""

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadmaster.common.logs import LOG_FORMAT_VAR
from leadmaster.common.settings import OptionalLogFormat, OptionalText

BASE_URL_VAR = "SESSION_MANAGER_BASE_URL"


class Settings(BaseSettings):
    # Aliases are the exact variable names so that every error message can name the variable.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    session_manager_base_url: str = Field("", validation_alias=BASE_URL_VAR, validate_default=True)
    port: int = Field(3000, validation_alias="CENTRAL_HUB_PORT", ge=0, le=65535)
    host: str = Field("127.0.0.1", validation_alias="CENTRAL_HUB_HOST")
    data_dir: Path = Field(Path("./data/central-hub"), validation_alias="CENTRAL_HUB_DATA_DIR")
    database_url: OptionalText = Field(None, validation_alias="CENTRAL_HUB_DATABASE_URL")
    secret_key: OptionalText = Field(None, validation_alias="CENTRAL_HUB_SECRET_KEY")
    admin_username: OptionalText = Field(None, validation_alias="CENTRAL_HUB_ADMIN_USERNAME")
    admin_password: OptionalText = Field(None, validation_alias="CENTRAL_HUB_ADMIN_PASSWORD")
    token_lifetime_seconds: int = Field(3600, validation_alias="CENTRAL_HUB_TOKEN_LIFETIME_SECONDS", ge=60)
    log_level: str = Field("INFO", validation_alias="CENTRAL_HUB_LOG_LEVEL")
    log_format: OptionalLogFormat = Field(None, validation_alias=LOG_FORMAT_VAR)
    # Seconds a client may take to send a whole request (head and body) before it is dropped with a 408.
    request_read_timeout: float = Field(10.0, validation_alias="CENTRAL_HUB_REQUEST_READ_TIMEOUT", gt=0)
    sm_api_key: OptionalText = Field(None, validation_alias="SESSION_MANAGER_API_KEY")
    sm_connect_timeout: float = Field(5.0, validation_alias="SESSION_MANAGER_CONNECT_TIMEOUT", gt=0)
    sm_read_timeout: float = Field(30.0, validation_alias="SESSION_MANAGER_READ_TIMEOUT", gt=0)
    sm_api: Literal["instances", "single-admin"] = Field("instances", validation_alias="SESSION_MANAGER_API")
    # Seconds between background GET /health probes of the session-manager; 0 turns them off.
    sm_health_interval: float = Field(30.0, validation_alias="SESSION_MANAGER_HEALTH_INTERVAL", ge=0)

    @field_validator("session_manager_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value.strip()) if value else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"{BASE_URL_VAR}={value!r} is not an absolute http(s) URL; "
                "set it to the session-manager's address, e.g. http://127.0.0.1:3001"
            )
        return value.strip().rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'central-hub.db').resolve()}"

