"""Placement and rebalancing arithmetic of the cluster (pure functions; the processes are in tests/cluster)."""

from __future__ import annotations

from leadmaster.session_manager.cluster.leases import NodeLoad
from leadmaster.session_manager.cluster.placement import MOVES_PER_BEAT, least_loaded, plan


def loads(*counts: int, dead: int | None = None) -> list[NodeLoad]:
    return [NodeLoad(f"n{i}", f"http://n{i}", i != dead, c) for i, c in enumerate(counts)]


def test_least_loaded_prefers_fewest_then_self_and_skips_dead_nodes() -> None:
    assert least_loaded(loads(3, 1, 1), "n2").node_id == "n2"  # type: ignore[union-attr]
    assert least_loaded(loads(3, 1, 1), "n0").node_id == "n1"  # type: ignore[union-attr]
    assert least_loaded(loads(3, 0, 1, dead=1), "n0").node_id == "n2"  # type: ignore[union-attr]
    assert least_loaded(loads(1, dead=0), "n0") is None


def test_survivors_claim_a_dead_nodes_leases_in_one_beat_even_above_their_share() -> None:
    # 30 instances, n2 died holding 10: the two survivors each take half at once.
    p = plan(loads(10, 10, 0, dead=2), "n0", mine=10, dead=10, released=0, total=30)
    assert p.claim == 5 and p.release == 0


def test_a_returning_node_gets_its_share_back_a_few_at_a_time() -> None:
    view = loads(15, 15, 0)
    assert plan(view, "n0", mine=15, dead=0, released=0, total=30).release == MOVES_PER_BEAT
    assert plan(view, "n2", mine=0, dead=0, released=4, total=30).claim == 4  # what was freed, up to its share
    balanced = loads(10, 10, 10)
    assert plan(balanced, "n0", mine=10, dead=0, released=0, total=30) == plan(
        balanced, "n0", mine=10, dead=0, released=0, total=30) and plan(
        balanced, "n0", mine=10, dead=0, released=0, total=30).release == 0


def test_no_handover_while_a_takeover_is_pending_or_nobody_is_below_share() -> None:
    assert plan(loads(15, 15, 0), "n0", mine=15, dead=3, released=0, total=30).release == 0
    assert plan(loads(11, 10, 10), "n0", mine=11, dead=0, released=0, total=31).release == 0
