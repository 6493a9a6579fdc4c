"""Reconnect delays: exponential, capped, with jitter so that many sessions never retry in lockstep."""

from __future__ import annotations

import random

JITTER = 0.2


def nominal_delay(attempt: int, base: float, cap: float) -> float:
    """The un-jittered delay before retry number `attempt` (1-based): base, 2*base, 4*base, ... up to cap."""
    return float(min(cap, base * 2 ** min(max(attempt - 1, 0), 30)))


def delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """`nominal_delay` spread by ±20 %, never above the cap."""
    nominal = nominal_delay(attempt, base, cap)
    spread = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return min(cap, nominal * spread)
