"""The cluster with the real engine, offline (CONTRACT §4, SESSION_MANAGER_ENGINE=whatsmeow).

Three nodes on one PostgreSQL, every dial refused by `SESSION_MANAGER_WHATSMEOW_PROXY=http://127.0.0.1:1`.
Six instances have paired credentials stored in the shared whatsmeow store (tests/support/whatsmeow_store.py),
so each owner dials them from those credentials and, offline, shows ERROR / CONNECT_FAILED. SIGKILL a node:
each of its instances gets a new owner (lease token bumped) that redials the same stored device, never
asking for a QR, and no device is ever dialled by two live nodes. The node back takes its share and
redials those stored devices.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from leadmaster.common.logs import mask_phone
from leadmaster.session_manager.engines.whatsmeow.process import REPO_ROOT
from tests.cluster.stack import LEASE_SECONDS, ClusterStack, Node, poll
from tests.support.whatsmeow_store import REFUSING_PROXY, plant_paired, stored_devices

N_HUBS = 0
# No single-admin instance: only the six planted ones hold leases, so the fair share is exactly two each.
# A failed dial is retried within half a second, so a node still dialling a device it gave up shows at once.
SM_ENV = {"SESSION_MANAGER_ENGINE": "whatsmeow", "SESSION_MANAGER_WHATSMEOW_PROXY": REFUSING_PROXY,
          "SESSION_MANAGER_CONNECT_ON_START": "false", "SESSION_MANAGER_WHATSMEOW_BACKOFF_BASE_SECONDS": "0.2",
          "SESSION_MANAGER_WHATSMEOW_BACKOFF_CAP_SECONDS": "0.5"}
IDS = [f"wm_{i}" for i in range(6)]
FAILED = ("ERROR", "CONNECT_FAILED")


@pytest.fixture(scope="module", autouse=True)
def worker_built() -> None:
    """The Go worker every node runs, rebuilt when its sources changed (a no-op when already built)."""
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "build_worker.py")], check=True, timeout=900,
                   stdout=subprocess.DEVNULL)


def _status(cluster: ClusterStack, via: Node, instance: str) -> tuple[int, dict[str, Any], str]:
    with cluster.sm(via) as sm:
        r = sm.get(f"/api/session-manager/sessions/{instance}/status")
    body: dict[str, Any] = r.json()
    if r.status_code != 200:
        # During a move: 503 SESSION_NOT_READY with Retry-After, never a 500 (CONTRACT §4).
        assert r.status_code == 503 and body.get("code") == "SESSION_NOT_READY", (r.status_code, r.text)
        assert r.headers.get("retry-after"), r.headers
    return r.status_code, body, r.headers.get("x-served-by", "")


def _dials(node: Node, skip_lines: int = 0) -> dict[str, set[str]]:
    """instance -> devices this node's worker dialled for it (its "dial failed; retrying" log lines),
    over what the node logged after its first `skip_lines` lines."""
    assert node.svc is not None
    found: dict[str, set[str]] = {}
    for line in node.svc.logs().splitlines()[skip_lines:]:
        if '"dial failed; retrying"' in line:
            entry = json.loads(line)
            found.setdefault(entry["instance_id"], set()).add(entry.get("device", ""))
    return found


def _worker_pids(node: Node) -> set[int]:
    assert node.svc is not None
    return {int(json.loads(ln)["worker_pid"]) for ln in node.svc.logs().splitlines()
            if '"dial failed; retrying"' in ln}


def _running(pid: int) -> bool:
    """Whether the process exists and has not exited (a zombie, never reaped by its new parent, has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _tokens(cluster: ClusterStack) -> dict[str, tuple[str, int]]:
    """instance -> (owner, fencing token) in the lease table."""
    with psycopg.connect(cluster.pg_urls[0]) as conn:
        rows = conn.execute("SELECT instance_id, owner, token FROM sm_cluster_leases "
                            "WHERE instance_id = ANY(%s)", (IDS,)).fetchall()
    return {r[0]: (r[1], int(r[2])) for r in rows}


@dataclass
class Placed:
    owners: dict[str, str]  # instance -> the node it was placed on
    devices: dict[str, str]  # instance -> its stored device JID, as the logs show it
    history: dict[str, list[str]] = field(default_factory=dict)  # instance -> its owners so far, in order
    killed: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def placed(cluster: ClusterStack) -> Placed:
    """The six instances planted as paired, then connected through the first node (placed by the cluster)."""
    stored = asyncio.run(plant_paired(cluster.root / "seed", cluster.pg_urls[0], IDS))
    # Logs show JIDs masked to their last 4 digits (CONTRACT §1); the seeded ones differ there.
    devices = {i: str(mask_phone(jid)) for i, jid in stored.items()}
    assert len(set(devices.values())) == len(IDS), devices
    n1 = cluster.nodes[0]
    with cluster.sm(n1) as sm:
        for instance in IDS:
            r = sm.post(f"/api/session-manager/sessions/{instance}/connect")
            assert r.status_code == 200, r.text
    owners = {}
    for instance in IDS:
        def failed(i: str = instance) -> str:
            code, body, served_by = _status(cluster, n1, i)
            assert body.get("status") != "QR_REQUIRED", (i, body)  # paired: a stored device, never a QR
            return served_by if code == 200 and (body["status"], body.get("reason")) == FAILED else ""
        owners[instance] = poll(failed, 30, f"{instance} ERROR/CONNECT_FAILED on its owner")
    return Placed(owners, devices, {i: [o] for i, o in owners.items()})


def test_paired_instances_dial_their_stored_device_on_their_owner_only(
    cluster: ClusterStack, placed: Placed
) -> None:
    owners, devices = placed.owners, placed.devices
    assert len(set(owners.values())) >= 2, owners  # placement spread them over the nodes

    def dialled_by_owner() -> bool:
        dials = {n.name: _dials(n) for n in cluster.nodes}
        return all(dials[owners[i]].get(i) == {devices[i]} for i in IDS)

    poll(dialled_by_owner, 10, "each owner's worker dialled the instance's stored device")
    for node in cluster.nodes:
        others = {i for i in _dials(node) if i in IDS and owners[i] != node.name}
        assert not others, f"{node.name} dialled instances it does not own: {others}"


def test_a_killed_nodes_instances_redial_their_stored_devices_on_new_owners(
    cluster: ClusterStack, placed: Placed
) -> None:
    owners, devices = placed.owners, placed.devices
    # The victim: the node (not the first, through which we ask) running the most of them.
    counts = Counter(o for o in owners.values() if o != cluster.nodes[0].name)
    victim = next(n for n in cluster.nodes if n.name == counts.most_common(1)[0][0])
    survivors = [n for n in cluster.nodes if n is not victim]
    moved = [i for i in IDS if owners[i] == victim.name]
    tokens = _tokens(cluster)
    # Nothing the survivors logged so far may count as a redial after the takeover.
    before = {n.name: len(n.svc.logs().splitlines()) for n in survivors if n.svc is not None}

    worker_pids = _worker_pids(victim)
    assert worker_pids, "no worker of the victim logged a dial"
    killed = time.monotonic()
    cluster.kill(victim)
    placed.killed.append(victim.name)
    # Its worker (a child in its own session) sees its pipe close and stops dialling before anyone else
    # may claim the victim's instances (their leases run at least this long after the kill's last renewal).
    poll(lambda: not any(_running(p) for p in worker_pids), LEASE_SECONDS - 1, "the victim's worker exited")
    answers: Counter[str] = Counter()
    new_owner: dict[str, tuple[str, float]] = {}
    deadline = killed + LEASE_SECONDS + 15
    turn = 0
    while len(new_owner) < len(moved) and time.monotonic() < deadline:
        for instance in [i for i in moved if i not in new_owner]:
            turn += 1
            code, body, served_by = _status(cluster, survivors[turn % 2], instance)
            answers[f"{code} {body['status'] if code == 200 else body.get('code')}"] += 1
            assert body.get("status") != "QR_REQUIRED", (instance, body)
            if code == 200 and served_by != victim.name and (body["status"], body.get("reason")) == FAILED:
                new_owner[instance] = (served_by, time.monotonic() - killed)
        time.sleep(0.05)
    assert set(new_owner) == set(moved), f"not resumed elsewhere: {sorted(set(moved) - set(new_owner))}; {answers}"
    took = max(t for _, t in new_owner.values())
    print(f"\nreal-engine takeover of {len(moved)} instances from {victim.name}: max {took:.2f} s; "
          f"answers meanwhile {dict(answers)}")
    # CONTRACT §4: a dead node's instances run again within the lease + 5 s.
    assert took <= LEASE_SECONDS + 5, new_owner

    after = _tokens(cluster)
    for instance in moved:
        owner = new_owner[instance][0]
        placed.history[instance].append(owner)
        assert after[instance][0] == owner and after[instance][1] > tokens[instance][1], (instance, tokens, after)
    # The instances that were not on the victim stayed where they were (status through either survivor).
    for instance in (i for i in IDS if i not in moved):
        code, body, served_by = _status(cluster, survivors[0], instance)
        assert code == 200 and served_by == owners[instance] and (body["status"], body.get("reason")) == FAILED

    def redialled() -> bool:
        fresh = {n.name: _dials(n, before[n.name]) for n in survivors}
        return all(fresh[new_owner[i][0]].get(i) == {devices[i]} for i in moved)

    poll(redialled, 10, "each new owner redialled the instance's stored device")
    for node in survivors:
        foreign = {i for i in _dials(node, before[node.name]) if i in IDS
                   and (new_owner[i][0] if i in moved else owners[i]) != node.name}
        assert not foreign, f"{node.name} dialled devices another node owns: {foreign}"

    view = cluster.cluster_view(survivors[0])
    alive = {n["node_id"]: n["alive"] for n in view["nodes"]}
    assert alive[victim.name] is False and all(alive[n.name] for n in survivors), view
    # No new QR anywhere: the stored devices are all still there.
    stored = asyncio.run(stored_devices(cluster.root / "check", cluster.pg_urls[0], IDS))
    assert all(stored.values()), stored



def test_the_node_back_takes_its_share_and_redials_those_stored_devices(
    cluster: ClusterStack, placed: Placed
) -> None:
    if not placed.killed:
        pytest.skip("follows the SIGKILL test, which did not run")
    victim = next(n for n in cluster.nodes if n.name == placed.killed[0])
    assert victim.svc is not None
    logged = len(victim.svc.logs().splitlines())
    cluster.start_node(victim)  # same data dir and port: the same node comes back
    share = math.ceil(len(IDS) / len(cluster.nodes))

    def fair() -> bool:
        nodes = cluster.cluster_view(cluster.nodes[0])["nodes"]
        return all(n["alive"] and n["instances"] == share for n in nodes)

    poll(fair, 30, f"{share} instances on every node again")
    back = [i for i in IDS if _status(cluster, cluster.nodes[0], i)[2] == victim.name]
    assert len(back) == share, back
    for instance in back:
        placed.history[instance].append(victim.name)
        poll(lambda i=instance: _status(cluster, victim, i)[1].get("status") == "ERROR"
             and _dials(victim, logged).get(i) == {placed.devices[i]}, 10,
             f"{instance} redialled from its stored device on {victim.name}")
    # From now on only the current owners dial: watch until each has redialled a few times more.
    marks = {n.name: len(n.svc.logs().splitlines()) for n in cluster.nodes if n.svc is not None}
    poll(lambda: all(len(_fresh(cluster, marks, i)) >= 3 for i in IDS), 15, "a few more redials of every device")
    for instance in IDS:
        assert set(_fresh(cluster, marks, instance)) == {placed.history[instance][-1]}, (instance, placed.history)
        # Over the whole run, each device was dialled by one node at a time, in the order of its owners.
        assert _dialers(cluster, instance) == placed.history[instance], instance


def _fresh(cluster: ClusterStack, marks: dict[str, int], instance: str) -> list[str]:
    """The node of each dial of `instance` logged after `marks` (node -> lines it had logged then)."""
    return [n.name for n in cluster.nodes for _ in range(len(_dial_lines(n, instance, marks[n.name])))]


def _dial_lines(node: Node, instance: str, skip_lines: int = 0) -> list[dict[str, Any]]:
    assert node.svc is not None
    return [json.loads(ln) for ln in node.svc.logs().splitlines()[skip_lines:]
            if '"dial failed; retrying"' in ln and f'"instance_id":"{instance}"' in ln]


def _dialers(cluster: ClusterStack, instance: str) -> list[str]:
    """The nodes that dialled `instance`, in time order, consecutive repeats folded."""
    order = [name for _, name in sorted((e["ts"], n.name) for n in cluster.nodes for e in _dial_lines(n, instance))]
    return [name for n, name in enumerate(order) if n == 0 or order[n - 1] != name]


PAUSE_SECONDS = 6.0  # twice the lease: every instance of the stalled node is taken over meanwhile
VALIDITY = LEASE_SECONDS - min(1.0, LEASE_SECONDS / 4)  # the coordinator's local deadline after a renewal


def _at(entry: dict[str, Any]) -> float:
    """When a log line was written: the worker's own time for a folded worker line (folded late when the API
    process was stopped), else the service's."""
    return datetime.fromisoformat(str(entry.get("worker_ts") or entry["ts"])).timestamp()


def _entries(node: Node, skip_lines: int) -> list[dict[str, Any]]:
    assert node.svc is not None
    return [json.loads(ln) for ln in node.svc.logs().splitlines()[skip_lines:] if ln.startswith("{")]


def test_a_stalled_nodes_worker_stops_dialling_at_its_lease_deadline(cluster: ClusterStack, placed: Placed) -> None:
    """SIGSTOP of a node's Python process only (docs/deploy.md, "A stalled node"): its worker goes on, but
    dials nothing past the lease deadline the node last gave it, and after SIGCONT nothing of what it lost."""
    owners = cluster.owners_of(IDS, cluster.nodes[0])
    counts = Counter(o for o in owners.values() if o and o != cluster.nodes[0].name)
    victim = next(n for n in cluster.nodes if n.name == counts.most_common(1)[0][0])
    survivors = [n for n in cluster.nodes if n is not victim]
    mine = [i for i in IDS if owners[i] == victim.name]
    assert victim.svc is not None
    marks = {n.name: len(n.svc.logs().splitlines()) for n in cluster.nodes if n.svc is not None}
    poll(lambda: all(_dial_lines(victim, i, marks[victim.name]) for i in mine), 10, f"{victim.name} dialling {mine}")

    stopped_at = time.time()
    cluster.pause(victim)
    try:
        def taken_over() -> bool:
            return all(_status(cluster, survivors[0], i)[2] in {n.name for n in survivors} for i in mine)

        poll(taken_over, LEASE_SECONDS + 10, f"{mine} taken over from the stalled {victim.name}", step=0.3)
        time.sleep(max(0.0, stopped_at + PAUSE_SECONDS - time.time()))
    finally:
        resumed_at = time.time()
        cluster.resume(victim)
    # Awake, the node finds those leases gone and stops their sessions, then renews what it has left.
    poll(lambda: {e.get("instance_id") for e in _entries(victim, marks[victim.name])
                  if e["msg"] == "lease lost"} >= set(mine), 15, f"{victim.name} stopped {mine}")
    time.sleep(2.0)  # four redials' worth (backoff at most 0.5 s) for anything still dialling

    entries = _entries(victim, marks[victim.name])
    dials = [(_at(e), e["instance_id"]) for e in entries
             if e["msg"] == "dial failed; retrying" and e.get("instance_id") in mine]
    paused = [_at(e) for e in entries if e["msg"].startswith("lease deadline passed") and _at(e) >= stopped_at]
    deadline = paused[0] if paused else stopped_at + VALIDITY
    before = [d for d in dials if stopped_at <= d[0] < deadline]
    during = [d for d in dials if deadline <= d[0] <= resumed_at]
    # A dial after SIGCONT is allowed only for an instance the node took again since (a rebalance).
    retaken = {(e["instance_id"], _at(e)) for e in entries if e["msg"] in ("lease taken over", "lease claimed")}
    after = [d for d in dials if d[0] > resumed_at
             and not any(i == d[1] and resumed_at < t < d[0] for i, t in retaken)]
    print(f"\nstalled {victim.name} ({len(mine)} instances): worker dials {len(before)} from SIGSTOP to its lease "
          f"deadline ({deadline - stopped_at:.2f} s), {len(during)} from then to SIGCONT "
          f"({resumed_at - deadline:.2f} s), {len(after)} of lost instances after SIGCONT")
    assert not during, f"the stalled node's worker dialled past its lease deadline: {during}"
    assert not after, f"the node dialled instances it lost after SIGCONT: {after}"
    assert before, "the worker should have gone on dialling until its deadline (the measure would be void)"
    assert paused, "the worker did not log its lease deadline passing"
    # Its deadline came before the database's expiry, hence before any other node could claim and dial them.
    assert deadline - stopped_at <= LEASE_SECONDS, deadline - stopped_at
    first_new = min(_at(e) for n in survivors for e in _entries(n, marks[n.name])
                    if e["msg"] == "dial failed; retrying" and e.get("instance_id") in mine)
    assert deadline < first_new, (deadline, first_new)
