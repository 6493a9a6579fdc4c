"""Where instances should run: least-loaded placement and a gentle, bounded rebalance (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from leadmaster.session_manager.cluster.leases import NodeLoad

# At most this many instances leave one node per heartbeat when rebalancing: a returning node takes
# its share over a few heartbeats instead of all at once (each move is a short 503 for that instance).
MOVES_PER_BEAT = 2


def least_loaded(loads: list[NodeLoad], self_id: str) -> NodeLoad | None:
    """The live node with the fewest instances (this node on a tie, then by id), or None if none is live."""
    alive = [n for n in loads if n.alive]
    if not alive:
        return None
    return min(alive, key=lambda n: (n.instances, n.node_id != self_id, n.node_id))


@dataclass(frozen=True, slots=True)
class Plan:
    claim: int  # how many free leases this node should take now
    release: int  # how many of its own it should hand over now


def plan(loads: list[NodeLoad], self_id: str, mine: int, dead: int, released: int, total: int) -> Plan:
    """This node's share of the work for one heartbeat.

    Fair share is ceil(total / live nodes). A node below it claims free leases up to it; leases of a dead
    node are always claimed (a fair part each), even above the share, because a takeover must not wait for
    a rebalance. A node above its share hands over a few when some live node is below the share.
    """
    alive = [n for n in loads if n.alive]
    live_count = max(1, len(alive) + (0 if any(n.node_id == self_id for n in alive) else 1))
    share = math.ceil(total / live_count) if total else 0
    claim = max(0, share - mine)
    if dead:
        claim = max(claim, math.ceil(dead / live_count))
    claim = min(claim, dead + released)
    release = 0
    others_below = any(n.instances < share for n in alive if n.node_id != self_id)
    if mine > share and others_below and not dead:
        release = min(mine - share, MOVES_PER_BEAT)
    return Plan(claim, release)
