"""Number check (CONTRACT §5): which phone numbers are on WhatsApp, asked gently.

Bulk lookups get numbers banned, so answers are cached per instance (`SESSION_MANAGER_CONTACT_CACHE_HOURS`)
and lookups that reach WhatsApp are limited per instance over a sliding hour
(`SESSION_MANAGER_CONTACT_CHECKS_PER_HOUR`). Both live in the store, so the limit survives a restart and
holds when an instance moves to another node. A request whose uncached numbers do not all fit in what is
left of the hour is refused whole (429 with `Retry-After`: when enough earlier lookups leave the window);
cached numbers never count.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from leadmaster.contract.status import SessionStatus
from leadmaster.session_manager import errors
from leadmaster.session_manager.engines.base import EngineError, EngineNotReady
from leadmaster.session_manager.parsing import parse_to
from leadmaster.session_manager.store import create_schema

if TYPE_CHECKING:
    from leadmaster.session_manager.service import SessionService

MAX_PHONES = 50
WINDOW_SECONDS = 3600.0

metadata = sa.MetaData()
contacts = sa.Table(
    "sm_contacts",
    metadata,
    sa.Column("instance_id", sa.String(64), primary_key=True),
    sa.Column("phone", sa.String(16), primary_key=True),
    sa.Column("jid", sa.String(128)),  # null: not on WhatsApp
    sa.Column("checked_at", sa.Float, nullable=False),
)
lookups = sa.Table(
    "sm_contact_lookups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("n", sa.Integer, nullable=False),  # numbers this request asked WhatsApp about
    sa.Index("ix_sm_contact_lookups_instance_at", "instance_id", "at"),
)


def parse_phones(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(as given, digits) for each entry of `phones`: 1-50 phone numbers or user JIDs, or INVALID_PHONES."""
    phones = data.get("phones")
    if not isinstance(phones, list) or not 1 <= len(phones) <= MAX_PHONES:
        got = f"a list of {len(phones)}" if isinstance(phones, list) else repr(phones)[:40]
        raise errors.InvalidPhonesError(f"phones must be a list of 1 to {MAX_PHONES} phone numbers, got {got}.")
    parsed = []
    for i, given in enumerate(phones):
        jid = parse_to(given)
        if jid is None:
            raise errors.InvalidPhonesError(
                f"phones[{i}] {str(given)[:40]!r} is not a phone number (7-15 digits, optional +) or a user JID."
            )
        assert isinstance(given, str)
        parsed.append((given, jid.split("@", 1)[0]))
    return parsed


class ContactChecker:
    def __init__(self, service: SessionService, clock: Any = time.time) -> None:
        self.service = service
        self.engine = service.store.engine
        self.cache_seconds = service.settings.contact_cache_hours * 3600
        self.per_hour = service.settings.contact_checks_per_hour
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        create_schema(self.engine, metadata)  # under the cluster's schema lock on PostgreSQL

    async def check(self, instance_id: str, data: dict[str, Any]) -> dict[str, Any]:
        phones = parse_phones(data)
        s = self.service.sessions.get(instance_id)
        if s is None or s.status is not SessionStatus.READY:
            raise self.service._not_ready(instance_id)
        wanted = list(dict.fromkeys(digits for _, digits in phones))
        # One check at a time per instance: the quota is read and taken in one step.
        async with self._locks.setdefault(instance_id, asyncio.Lock()):
            known = await asyncio.to_thread(self._cached, instance_id, wanted, self.clock())
            missing = [d for d in wanted if d not in known]
            if missing:
                reservation = await asyncio.to_thread(self._reserve, instance_id, len(missing), self.clock())
                try:
                    found = await self.service.engine.check_numbers(instance_id, missing)
                except EngineNotReady as exc:
                    await asyncio.to_thread(self._release, reservation)  # WhatsApp was not asked
                    raise self.service._not_ready(instance_id) from exc
                except EngineError as exc:
                    raise errors.ContactCheckFailedError(f"WhatsApp failed the number lookup: {exc}") from exc
                answers = {d: found.get(d) for d in missing}
                await asyncio.to_thread(self._remember, instance_id, answers, self.clock())
                known.update(answers)
        return {"results": [{"phone": g, "on_whatsapp": known[d] is not None, "jid": known[d]} for g, d in phones]}

    # -- store (blocking: run in a thread) ------------------------------------------------------------

    def _cached(self, instance_id: str, phones: list[str], now: float) -> dict[str, str | None]:
        c = contacts.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.phone, c.jid).where(
                    c.instance_id == instance_id, c.phone.in_(phones), c.checked_at > now - self.cache_seconds
                )
            ).all()
        return {r.phone: r.jid for r in rows}

    def _reserve(self, instance_id: str, n: int, now: float) -> int:
        """Take `n` lookups from the instance's hour, or raise RATE_LIMITED with the wait until they fit."""
        lk = lookups.c
        with self.engine.begin() as conn:
            conn.execute(lookups.delete().where(lk.instance_id == instance_id, lk.at <= now - WINDOW_SECONDS))
            window: list[Any] = list(conn.execute(
                sa.select(lk.at, lk.n).where(lk.instance_id == instance_id).order_by(lk.at, lk.id)
            ))
            over = sum(r.n for r in window) + n - self.per_hour
            if over > 0:
                raise self._limited(instance_id, n, over, window, now)
            result = conn.execute(lookups.insert().values(instance_id=instance_id, at=now, n=n))
        key: Any = result.inserted_primary_key
        return int(key[0])

    def _limited(self, instance_id: str, n: int, over: int, window: list[Any], now: float) -> errors.RateLimitedError:
        wait = WINDOW_SECONDS
        if n <= self.per_hour:
            freed = 0
            for row in window:
                freed += row.n
                if freed >= over:
                    wait = row.at + WINDOW_SECONDS - now
                    break
        retry_after = max(1, math.ceil(wait))
        return errors.RateLimitedError(
            f"Instance {instance_id!r} may look up {self.per_hour} uncached numbers an hour; this request needs "
            f"{n} and {max(0, n - over)} are left. Try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            limit=self.per_hour,
        )

    def _release(self, reservation: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(lookups.delete().where(lookups.c.id == reservation))

    def _remember(self, instance_id: str, answers: dict[str, str | None], now: float) -> None:
        c = contacts.c
        with self.engine.begin() as conn:
            conn.execute(
                contacts.delete().where(
                    c.instance_id == instance_id,
                    sa.or_(c.phone.in_(list(answers)), c.checked_at <= now - self.cache_seconds),
                )
            )
            conn.execute(
                contacts.insert(),
                [{"instance_id": instance_id, "phone": p, "jid": j, "checked_at": now} for p, j in answers.items()],
            )

    def forget_instance(self, instance_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(contacts.delete().where(contacts.c.instance_id == instance_id))
            conn.execute(lookups.delete().where(lookups.c.instance_id == instance_id))
