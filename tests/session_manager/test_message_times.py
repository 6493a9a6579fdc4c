"""Message times on the wire: `iso_us` formats the polling cursor, so it must be exact to the microsecond and
agree with `parse_since`, whichever path (the cached seconds, or datetime for times outside its range) it takes."""

from __future__ import annotations

import random
from datetime import timedelta

from leadmaster.session_manager.messages import EPOCH, iso_us, parse_since


def reference(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_iso_us_is_datetimes_format_to_the_microsecond_and_parses_back() -> None:
    rng = random.Random(20261128)
    edges = [0, 1, 999_999, 1_000_000, 1_764_300_000_123_456, 253_402_300_799_999_999, -1, -5_000_001]
    for us in edges + [rng.randrange(-10**15, 253_402_300_800 * 10**6) for _ in range(20_000)]:
        text = iso_us(us)
        assert text == reference(us), us
        assert parse_since(text) == us, text
    assert iso_us(None) is None
