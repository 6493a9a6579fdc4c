"""A real session-manager (sandbox engine) and a real hub as processes, with the helpers the fault suites share.

Both services keep their data across restarts (same data dirs, same port, and with LEADMASTER_TEST_DB=postgres
the same throwaway databases), so a test can SIGKILL either one and start it again as an operator would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import db as testdb
from tests.support.clientes import add_clientes
from tests.support.processes import Service, start_hub, start_session_manager

SM_KEY = "fault-sm-key-0123456789"
ADMIN = ("chief", "chief-password-0123")
TO = "5491123456789"

# CONTRACT §3.4 plus the hub's own refusals (§3.3): every status/code a hub caller may ever see.
CONTRACT_ERRORS = {
    (400, "VALIDATION_ERROR"), (401, "UNAUTHORIZED"), (403, "FORBIDDEN"), (404, "NOT_FOUND"),
    (503, "SERVICE_UNAVAILABLE"), (502, "WHATSAPP_ERROR"), (502, "SESSION_MANAGER_AUTH_FAILED"),
    (502, "SESSION_MANAGER_BAD_RESPONSE"), (504, "SESSION_MANAGER_TIMEOUT"), (503, "SESSION_MANAGER_UNREACHABLE"),
}
# Errors after which the message may or may not have reached WhatsApp: the caller retries with its key.
AMBIGUOUS = {"SESSION_MANAGER_TIMEOUT", "SESSION_MANAGER_UNREACHABLE"}


@dataclass
class Stack:
    root: Path
    sm_env: dict[str, str] = field(default_factory=dict)
    hub_env: dict[str, str] = field(default_factory=dict)
    sm: Service | None = None
    hub: Service | None = None
    pg_urls: list[str] = field(default_factory=list)
    token: str = ""
    keys: dict[int, str] = field(default_factory=dict)  # cliente id -> its user API key
    log_paths: list[Path] = field(default_factory=list)

    # -- processes -----------------------------------------------------------------------------

    def start(self) -> Stack:
        self.sm_env = {"SESSION_MANAGER_API_KEY": SM_KEY, "SESSION_MANAGER_LOG_LEVEL": "INFO", **self.sm_env}
        self.hub_env = {"SESSION_MANAGER_API_KEY": SM_KEY, "CENTRAL_HUB_ADMIN_USERNAME": ADMIN[0],
                        "CENTRAL_HUB_ADMIN_PASSWORD": ADMIN[1], "SESSION_MANAGER_HEALTH_INTERVAL": "0",
                        **self.hub_env}
        self.pg_urls += testdb.service_databases("leadmaster_test_fault", self.sm_env, self.hub_env)
        self.start_sm()
        self.start_hub()
        self.token = self.login()
        return self

    def start_sm(self, port: int | None = None) -> Service:
        self.sm = start_session_manager(self.root / "sm", port=port or (self.sm.port if self.sm else None),
                                        **self.sm_env)
        self.log_paths.append(self.sm.log_path)
        return self.sm

    def start_hub(self) -> Service:
        assert self.sm is not None
        self.hub = start_hub(self.root / "hub", self.sm.base_url, port=self.hub.port if self.hub else None,
                             **self.hub_env)
        self.log_paths.append(self.hub.log_path)
        return self.hub

    def close(self) -> None:
        for svc in (self.hub, self.sm):
            if svc is not None:
                svc.stop()
        for url in self.pg_urls:
            testdb.drop_database(url)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in dict.fromkeys(self.log_paths) if p.exists())

    # -- clients ---------------------------------------------------------------------------------

    @property
    def hub_url(self) -> str:
        assert self.hub is not None
        return self.hub.base_url

    def sm_client(self, timeout: float = 10) -> httpx.Client:
        assert self.sm is not None
        return httpx.Client(base_url=self.sm.base_url, headers={"Authorization": f"Bearer {SM_KEY}"},
                            timeout=timeout)

    def hub_client(self, token: str | None = None, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.hub_url, headers={"Authorization": f"Bearer {token or self.token}"},
                            timeout=timeout)

    def login(self, username: str = ADMIN[0], password: str = ADMIN[1]) -> str:
        r = httpx.post(self.hub_url + "/api/auth/login", json={"username": username, "password": password},
                       timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    # -- tenants ---------------------------------------------------------------------------------

    def add_clientes(self, ids: list[int]) -> None:
        """Create each cliente with a user API key of its own, connect and pair its instance."""
        with self.hub_client() as hub, self.sm_client() as sm:
            self.keys.update(add_clientes(hub, sm, ids))

    def fault(self, cid: int, **faults: Any) -> None:
        with self.sm_client() as sm:
            r = sm.post(f"/api/session-manager/sandbox/sender_{cid}/faults", json=faults)
            assert r.status_code == 200, r.text

    def outbox(self, cid: int) -> list[dict[str, Any]]:
        with self.sm_client(timeout=30) as sm:
            r = sm.get(f"/api/session-manager/sandbox/sender_{cid}/outbox")
            assert r.status_code == 200, r.text
            messages: list[dict[str, Any]] = r.json()["messages"]
            return messages
