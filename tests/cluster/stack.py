"""A real cluster on loopback: N session-manager nodes and M hubs on one PostgreSQL, as processes.

Reuses the fault suite's keys and the shared pieces of tests/support (process starters, cliente set-up);
what is new here is more than one node, and asking which node runs which instance.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.fault.stack import ADMIN, SM_KEY
from tests.support import db as testdb
from tests.support.clientes import add_clientes
from tests.support.processes import Service, free_port, start_hub, start_session_manager

LEASE_SECONDS = 3.0


def postgres_reachable() -> bool:
    try:
        with psycopg.connect(testdb.ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@dataclass
class Node:
    name: str
    port: int
    data_dir: Path
    svc: Service | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ClusterStack:
    root: Path
    nodes: list[Node] = field(default_factory=list)
    hubs: list[Service] = field(default_factory=list)
    sm_env: dict[str, str] = field(default_factory=dict)
    hub_env: dict[str, str] = field(default_factory=dict)
    pg_urls: list[str] = field(default_factory=list)
    keys: dict[int, str] = field(default_factory=dict)
    token: str = ""

    def start(self, n_nodes: int = 3, n_hubs: int = 2, **sm_env: str) -> ClusterStack:
        sm_db = testdb.create_database("leadmaster_test_cluster")
        hub_db = testdb.create_database("leadmaster_test_cluster_hub")
        self.pg_urls += [sm_db, hub_db]
        self.sm_env = {"SESSION_MANAGER_API_KEY": SM_KEY, "SESSION_MANAGER_STORE_URL": sm_db,
                       "SESSION_MANAGER_LEASE_SECONDS": str(LEASE_SECONDS), **sm_env}
        self.hub_env = {"SESSION_MANAGER_API_KEY": SM_KEY, "CENTRAL_HUB_ADMIN_USERNAME": ADMIN[0],
                        "CENTRAL_HUB_ADMIN_PASSWORD": ADMIN[1], "SESSION_MANAGER_HEALTH_INTERVAL": "0",
                        "CENTRAL_HUB_DATABASE_URL": hub_db.replace("postgresql://", "postgresql+psycopg://", 1)}
        for i in range(n_nodes):
            node = Node(f"n{i + 1}", free_port(), self.root / f"n{i + 1}")
            self.nodes.append(node)
            self.start_node(node)
        for i in range(n_hubs):
            node = self.nodes[i % n_nodes]
            self.hubs.append(start_hub(self.root / f"hub{i + 1}", node.url, **self.hub_env))
        if self.hubs:
            self.token = self.login()
        return self

    def start_node(self, node: Node) -> Service:
        node.svc = start_session_manager(node.data_dir, port=node.port, SESSION_MANAGER_NODE_ID=node.name,
                                         **self.sm_env)
        return node.svc

    def kill(self, node: Node) -> None:
        assert node.svc is not None
        node.svc.kill()

    def pause(self, node: Node) -> None:
        assert node.svc is not None
        node.svc.proc.send_signal(signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        assert node.svc is not None
        node.svc.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        for node in self.nodes:
            if node.svc is not None:
                node.svc.proc.send_signal(signal.SIGCONT)  # a paused node cannot handle SIGTERM
        for svc in [*self.hubs, *(n.svc for n in self.nodes if n.svc is not None)]:
            svc.stop()
        for url in self.pg_urls:
            testdb.drop_database(url)

    def logs(self) -> str:
        paths = [s.log_path for s in self.hubs] + [n.svc.log_path for n in self.nodes if n.svc is not None]
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in dict.fromkeys(paths) if p.exists())

    # -- clients ---------------------------------------------------------------------------------

    def sm(self, node: Node, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=node.url, headers={"Authorization": f"Bearer {SM_KEY}"}, timeout=timeout)

    def hub(self, i: int = 0, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.hubs[i].base_url, headers={"Authorization": f"Bearer {self.token}"},
                            timeout=timeout)

    def login(self) -> str:
        r = httpx.post(self.hubs[0].base_url + "/api/auth/login",
                       json={"username": ADMIN[0], "password": ADMIN[1]}, timeout=10)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def add_clientes(self, ids: list[int]) -> None:
        """Create, connect (placed by the cluster) and pair each cliente's instance through the first hub."""
        with self.hub() as hub, self.sm(self.nodes[-1]) as sm:
            self.keys.update(add_clientes(hub, sm, ids))

    def owners(self, ids: list[int], via: Node) -> dict[int, str]:
        """cliente id -> node id running its instance (X-Served-By of a status read through `via`)."""
        found = self.owners_of([f"sender_{cid}" for cid in ids], via)
        return {cid: found[f"sender_{cid}"] for cid in ids}

    def owners_of(self, instances: list[str], via: Node) -> dict[str, str]:
        found = {}
        with self.sm(via) as sm:
            for instance in instances:
                r = sm.get(f"/api/session-manager/sessions/{instance}/status")
                found[instance] = r.headers.get("x-served-by", "") if r.status_code == 200 else ""
        return found

    def outboxes(self, ids: list[int], via: Node) -> dict[int, list[dict[str, Any]]]:
        found = self.outboxes_of([f"sender_{cid}" for cid in ids], via)
        return {cid: found[f"sender_{cid}"] for cid in ids}

    def outboxes_of(self, instances: list[str], via: Node) -> dict[str, list[dict[str, Any]]]:
        out = {}
        with self.sm(via, timeout=30) as sm:
            for instance in instances:
                r = sm.get(f"/api/session-manager/sandbox/{instance}/outbox")
                deadline = time.monotonic() + 15
                # An instance still moving (a rebalance's gentle moves go on for a few heartbeats) answers 503
                # with Retry-After, as CONTRACT §4 says: a careful reader asks again.
                while r.status_code == 503 and r.json().get("code") == "SESSION_NOT_READY" \
                        and time.monotonic() < deadline:
                    time.sleep(0.2)
                    r = sm.get(f"/api/session-manager/sandbox/{instance}/outbox")
                assert r.status_code == 200, r.text
                out[instance] = r.json()["messages"]
        return out

    def cluster_view(self, via: Node) -> dict[str, Any]:
        with self.sm(via) as sm:
            r = sm.get("/api/session-manager/cluster")
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body


def poll(check: Any, timeout: float, what: str, step: float = 0.1) -> Any:
    """Call `check()` until it returns a truthy value, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"{what}: not true after {timeout}s (last {last!r})")
