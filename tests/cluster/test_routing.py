"""Any node answers for any instance: one hop to the owner, X-Served-By, placement, the cluster view."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.cluster.stack import LEASE_SECONDS, ClusterStack, Node, poll
from tests.fault.stack import SM_KEY, TO

N_HUBS = 0
IDS = [f"route_{i}" for i in range(6)]
MSG = {"cliente_id": 7, "to": TO, "message": "hola"}


@pytest.fixture(scope="module")
def placed(cluster: ClusterStack) -> dict[str, str]:
    """Six instances connected through the first node and paired: instance -> owning node id."""
    with cluster.sm(cluster.nodes[0]) as sm:
        for instance in IDS:
            r = sm.post(f"/api/session-manager/sessions/{instance}/connect")
            assert r.status_code == 200, r.text
        for instance in IDS:
            poll(lambda i=instance: sm.get(f"/api/session-manager/sessions/{i}/status").json().get("status")
                 == "QR_REQUIRED", 20, f"{instance} QR_REQUIRED")
            assert sm.post(f"/api/session-manager/sandbox/{instance}/scan").status_code == 200
        owners = {}
        for instance in IDS:
            poll(lambda i=instance: sm.get(f"/api/session-manager/sessions/{i}/status").json().get("status")
                 == "READY", 20, f"{instance} READY")
            owners[instance] = sm.get(f"/api/session-manager/sessions/{instance}/status").headers["x-served-by"]
    return owners


def _node(cluster: ClusterStack, name: str) -> Node:
    return next(n for n in cluster.nodes if n.name == name)


def _elsewhere(cluster: ClusterStack, owner: str) -> Node:
    return next(n for n in cluster.nodes if n.name != owner)


def _hops(cluster: ClusterStack, request_id: str) -> dict[str, int]:
    """How many nodes logged a request with this id (each node logs each request it handles once)."""
    seen = {}
    for node in cluster.nodes:
        assert node.svc is not None
        lines = [ln for ln in node.svc.logs().splitlines() if request_id in ln and '"msg":"request"' in ln]
        if lines:
            seen[node.name] = len(lines)
    return seen


def test_first_connects_spread_over_the_least_loaded_nodes(cluster: ClusterStack, placed: dict[str, str]) -> None:
    counts = {n.name: list(placed.values()).count(n.name) for n in cluster.nodes}
    # Six first connects through one node, placed one at a time on the least-loaded live node.
    assert all(c >= 1 for c in counts.values()), counts


ROUTES = [
    ("GET", "/api/session-manager/sessions/{i}", None, 200),
    ("GET", "/api/session-manager/sessions/{i}/status", None, 200),
    ("GET", "/api/session-manager/sessions/{i}/qr", None, 200),
    ("GET", "/api/session-manager/sessions/{i}/account", None, 200),
    ("POST", "/api/session-manager/sessions/{i}/connect", None, 200),
    ("POST", "/api/session-manager/sessions/{i}/send", MSG, 200),
    ("POST", "/api/session-manager/sessions/{i}/pair-code", {"phone": "5491100000000"}, 400),
    ("GET", "/api/session-manager/sandbox/{i}/outbox", None, 200),
    ("POST", "/api/session-manager/sandbox/{i}/faults", {"send_delay_ms": 0}, 200),
    ("POST", "/api/session-manager/sandbox/{i}/scan", None, 409),
    # Routes this branch does not have (CONTRACT §5) are routed by their instance all the same.
    ("GET", "/api/session-manager/sessions/{i}/messages?limit=5", None, None),
    ("POST", "/api/session-manager/sessions/{i}/contacts/check", {"phones": [TO]}, None),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_every_route_family_is_forwarded_once_to_the_owner(
    cluster: ClusterStack, placed: dict[str, str], method: str, path: str, body: object, status: int | None
) -> None:
    instance = IDS[0]
    owner = placed[instance]
    entry = _elsewhere(cluster, owner)
    request_id = f"route-{uuid.uuid4().hex}"
    with cluster.sm(entry) as sm:
        r = sm.request(method, path.format(i=instance), json=body, headers={"X-Request-Id": request_id})
    assert r.headers["x-served-by"] == owner, (r.status_code, r.text)
    if status is not None:
        assert r.status_code == status, r.text
    assert r.headers["x-request-id"] == request_id
    assert r.headers.get("content-type", "").startswith(("application/json", "image/")), r.headers
    # Exactly two nodes saw it, once each: the entry node and the owner (one hop, never forwarded again).
    poll(lambda: _hops(cluster, request_id) == {entry.name: 1, owner: 1}, 5, f"hops of {request_id}")


def test_single_admin_routes_run_on_the_default_instance_owner(cluster: ClusterStack) -> None:
    served = set()
    for node in cluster.nodes:
        with cluster.sm(node) as sm:
            r = sm.get("/status")
            assert r.status_code == 200, r.text
            served.add(r.headers["x-served-by"])
            r = sm.post("/send", json=MSG)  # the admin instance shows a QR: not READY anywhere
            assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY", r.text
            assert r.headers["retry-after"]
    assert len(served) == 1, served


def test_a_forwarded_request_is_never_forwarded_again(cluster: ClusterStack, placed: dict[str, str]) -> None:
    instance = IDS[1]
    entry = _elsewhere(cluster, placed[instance])
    with cluster.sm(entry) as sm:
        r = sm.post(f"/api/session-manager/sessions/{instance}/send", json=MSG,
                    headers={"X-LeadMaster-Forwarded-By": "some-peer"})
    assert r.status_code == 503 and r.json()["code"] == "SESSION_NOT_READY", r.text
    assert r.headers["x-served-by"] == entry.name and r.headers["retry-after"]


def test_a_keyed_send_replays_on_any_node(cluster: ClusterStack, placed: dict[str, str]) -> None:
    instance = IDS[2]
    key = f"k-{uuid.uuid4().hex}"
    bodies = []
    for node in cluster.nodes:
        with cluster.sm(node) as sm:
            r = sm.post(f"/api/session-manager/sessions/{instance}/send", json={**MSG, "message": key},
                        headers={"Idempotency-Key": key})
            assert r.status_code == 200, r.text
            bodies.append((r.json()["data"]["message_id"], r.headers.get("idempotent-replayed")))
    assert len({m for m, _ in bodies}) == 1
    assert [replayed for _, replayed in bodies].count("true") == 2
    outbox = cluster.outboxes_of([instance], cluster.nodes[0])[instance]
    sent = [m for m in outbox if m["message"] == key]
    assert len(sent) == 1 and sent[0]["node_id"] == placed[instance]


def test_cluster_view_on_every_node(cluster: ClusterStack, placed: dict[str, str]) -> None:
    for node in cluster.nodes:
        view = cluster.cluster_view(node)
        assert view["self"] == node.name
        nodes = {n["node_id"]: n for n in view["nodes"]}
        assert set(nodes) == {n.name for n in cluster.nodes}
        assert all(n["alive"] and n["url"] == _node(cluster, n["node_id"]).url for n in nodes.values())
        # Every placed instance (plus the single-admin one) is counted on its owner.
        for name in nodes:
            assert nodes[name]["instances"] >= list(placed.values()).count(name)
        assert sum(n["instances"] for n in nodes.values()) == len(IDS) + 1


def test_every_answer_names_its_node(cluster: ClusterStack) -> None:
    node = cluster.nodes[0]
    assert httpx.get(node.url + "/health").headers["x-served-by"] == node.name
    r = httpx.get(node.url + "/api/session-manager/sessions")  # no API key
    assert r.status_code == 401 and r.headers["x-served-by"] == node.name
    r = httpx.get(node.url + "/api/session-manager/sessions/bad!id/status", headers={"X-Api-Key": SM_KEY})
    assert r.status_code in (400, 404) and r.headers["x-served-by"] == node.name


def test_the_session_list_is_the_clusters(cluster: ClusterStack, placed: dict[str, str]) -> None:
    for node in cluster.nodes:
        with cluster.sm(node) as sm:
            r = sm.get("/api/session-manager/sessions")
        assert r.status_code == 200, r.text
        listed = {s["instance_id"]: s["status"] for s in r.json()}
        assert all(listed.get(i) == "READY" for i in IDS), listed
        assert list(listed) == sorted(listed)


def test_sigterm_drains_a_node_and_the_others_take_over(cluster: ClusterStack, placed: dict[str, str]) -> None:
    """Runs last in this module: the drained node stays down."""
    owners = {i: o for i, o in cluster.owners_of(IDS, cluster.nodes[0]).items()}
    victim = _node(cluster, max(set(owners.values()) - {"n1"}, key=list(owners.values()).count))
    moving = [i for i, o in owners.items() if o == victim.name]
    assert victim.svc is not None
    victim.svc.stop()  # SIGTERM: uvicorn shuts down gracefully, and the node drains on the way out
    released = [ln for ln in victim.svc.logs().splitlines() if '"msg":"lease released"' in ln]
    assert {i for i in moving if any(f'"instance_id":"{i}"' in ln for ln in released)} == set(moving), released
    with cluster.sm(cluster.nodes[0]) as sm:
        for instance in moving:
            # Handed over on the survivors' next heartbeat, resumed from stored credentials (no scan).
            poll(lambda i=instance: (r := sm.get(f"/api/session-manager/sessions/{i}/status")).status_code == 200
                 and r.json()["status"] == "READY" and r.headers["x-served-by"] != victim.name,
                 LEASE_SECONDS + 5, f"{instance} READY after the drain of {victim.name}")
    view = {n["node_id"]: n for n in cluster.cluster_view(cluster.nodes[0])["nodes"]}
    assert view[victim.name]["alive"] is False and view[victim.name]["instances"] == 0, view
    victim.svc = None
