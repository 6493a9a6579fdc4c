"""One node of the cluster: heartbeat, the leases it holds, fencing, takeover, handover and drain.

Safety rests on two fences (docs/deploy.md, "Why a paused node cannot send"):
1. Local: each lease this node holds has a deadline on this process's monotonic clock, taken *before* the
   renewing statement was sent and shorter than the lease, so it always passes before the database's
   expiry does. `fence()` runs before every engine send; past the deadline it must renew first, and a
   node whose lease was taken over fails that renewal, stops the engine session and answers 503.
   A SIGSTOPped process resumes with its monotonic deadlines in the past, so it renews before sending.
2. Database: the send path's inserts (idempotency record, sandbox outbox) are conditional on the lease
   row still naming this node with the same fencing token and being live (schema.LeaseGuard).
These stop sends; the engine's connections are fenced by `Engine.lease`, given this node's deadline after
every renewal: the whatsmeow worker, another process, disconnects and stops dialling past it on its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from leadmaster.common.logs import log
from leadmaster.contract.status import SessionStatus
from leadmaster.session_manager import errors
from leadmaster.session_manager.cluster.leases import Leases, NodeLoad, Owner
from leadmaster.session_manager.cluster.placement import least_loaded, plan

if TYPE_CHECKING:
    from leadmaster.session_manager.service import SessionService

logger = logging.getLogger("leadmaster.session_manager.cluster")

RETRY_AFTER = "2"
# How long a handed-over instance is remembered, so that a renewal racing its release never re-adopts it
# (a takeover skips it for one lease period only: see `_rebalance`).
_RELEASE_COOLDOWN = 30.0


@dataclass(slots=True)
class Held:
    token: int
    deadline: float  # time.monotonic() after which this node must renew before sending
    since: float  # time.monotonic() when this node got it (a renewal started earlier cannot know it)


def not_ready(instance_id: str, why: str) -> errors.SessionNotReadyError:
    return errors.SessionNotReadyError(
        f"WhatsApp session {instance_id!r} is moving between session-manager nodes ({why}); retry shortly.",
        headers={"Retry-After": RETRY_AFTER},
        status="DISCONNECTED",
    )


class Cluster:
    def __init__(self, service: SessionService, leases: Leases, connect_on_start: bool) -> None:
        self.service = service
        self.leases = leases
        self.node_id = leases.node_id
        self.lease = leases.lease
        # The local deadline keeps a margin below the lease for scheduling delays of this process.
        self.validity = self.lease - min(1.0, self.lease / 4)
        self.interval = self.lease / 3
        self.connect_on_start = connect_on_start
        self.held: dict[str, Held] = {}
        self._released: dict[str, float] = {}
        self._beat_lock = asyncio.Lock()
        self._last_beat = 0.0
        self._task: asyncio.Task[None] | None = None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        default = self.service.settings.default_instance if self.connect_on_start else None
        await asyncio.to_thread(self.leases.seed, default)
        await self.beat(adopt=True)
        await self.rebalance()
        # The service loaded every stored instance; a node reports only those it runs.
        for instance_id in [i for i in self.service.sessions if i not in self.held]:
            if self.service.sessions[instance_id].status is SessionStatus.DISCONNECTED:
                del self.service.sessions[instance_id]
        self._task = asyncio.create_task(self._loop())
        self._watchdog_task = asyncio.create_task(self._watchdog())

    async def stop(self) -> None:
        """Drain: stop every engine session first, then hand each lease over for the others to claim."""
        self._stopping = True
        for task in (self._task, self._watchdog_task):
            if task is not None:
                task.cancel()
        try:
            await asyncio.to_thread(self.leases.drain)
            for instance_id in list(self.held):
                await self.release(instance_id)
        except Exception:
            logger.exception("drain failed: the leases will expire instead")

    async def _loop(self) -> None:
        while True:
            # Jitter: nodes started together do not hit the database in step.
            await asyncio.sleep(self.interval * random.uniform(0.9, 1.0))
            try:
                await self.beat()
                await self.rebalance()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("cluster heartbeat failed")
                await self._expire()

    async def _watchdog(self) -> None:
        """Stop an engine session the moment this node's own deadline for its lease passes without a renewal,
        even while a renewal hangs on an unreachable database: the deadline comes before the lease's expiry in
        the database, so the session is closed before another node may claim it and dial the same device."""
        while True:
            now = time.monotonic()
            soonest = min((h.deadline for h in self.held.values()), default=now + self.interval)
            if soonest <= now:
                await self._expire()
                continue
            await asyncio.sleep(min(soonest - now, self.interval) + 0.01)

    async def _expire(self) -> None:
        """Cut off from the database: past its own deadline a lease may be someone else's, so let it go."""
        now = time.monotonic()
        for instance_id in [i for i, h in self.held.items() if now >= h.deadline]:
            await self._lost(instance_id)

    # -- leases ----------------------------------------------------------------------------------

    async def beat(self, adopt: bool = False) -> None:
        """Renew this node's leases; stop every instance whose lease another node took."""
        async with self._beat_lock:
            started = time.monotonic()
            owned = await asyncio.to_thread(self.leases.beat, adopt)
            deadline = started + self.validity
            self._last_beat = started
            for instance_id, held in list(self.held.items()):
                if owned.get(instance_id) != held.token and held.since < started:
                    await self._lost(instance_id)
            for instance_id in [i for i in owned if i in self._released and i not in self.held]:
                del owned[instance_id]  # being handed over: its release is about to commit
            fresh = [i for i in owned if i not in self.held]
            for instance_id, token in owned.items():
                since = self.held[instance_id].since if instance_id in self.held else started
                self.held[instance_id] = Held(token, deadline, since)
            # The engine's own fence, once the sessions lost are stopped: its connections end at this node's
            # deadline even if this process stalls (the whatsmeow worker is another process). Claims and
            # takeovers get later deadlines than this one, so it is never later than any held lease's.
            await self.service.engine.lease(max(0.0, deadline - time.monotonic()))
        await self._run(fresh)

    async def fence(self, instance_id: str) -> None:
        """Before every send: this node holds a lease on `instance_id` that its own clock says is live."""
        held = self.held.get(instance_id)
        if held is not None and time.monotonic() < held.deadline:
            return
        if held is not None:
            started = time.monotonic()
            async with self._beat_lock:
                need = self._last_beat < started
            if need:
                try:
                    await self.beat()
                except Exception:
                    # Cannot renew (database unreachable): the lease may be someone else's by now.
                    logger.exception("renewal before a send failed", extra={"fields": {"instance_id": instance_id}})
                    await self._expire()
            held = self.held.get(instance_id)
            if held is not None and time.monotonic() < held.deadline:
                return
        raise not_ready(instance_id, f"node {self.node_id} does not hold its lease")

    def token_of(self, instance_id: str) -> int | None:
        held = self.held.get(instance_id)
        return held.token if held else None

    def owns(self, instance_id: str) -> bool:
        held = self.held.get(instance_id)
        return held is not None and time.monotonic() < held.deadline

    async def claim(self, instance_id: str) -> bool:
        """Own a free instance now (first connect placed here)."""
        started = time.monotonic()
        token = await asyncio.to_thread(self.leases.claim, instance_id)
        if token is None:
            return False
        # `since` is now, not `started`: a renewal that began before this claim committed cannot know it.
        self.held[instance_id] = Held(token, started + self.validity, time.monotonic())
        log(logger, logging.INFO, "lease claimed", instance_id=instance_id, token=token)
        return True

    async def release(self, instance_id: str) -> None:
        """Hand an instance over: stop sending, stop the engine session, then free the lease."""
        held = self.held.pop(instance_id, None)
        if held is None:
            return
        self._released[instance_id] = time.monotonic()  # a renewal racing this release must not re-adopt it
        await self._stop_session(instance_id)
        await asyncio.to_thread(self.leases.release, instance_id, held.token)
        log(logger, logging.INFO, "lease released", instance_id=instance_id, token=held.token)

    async def forget(self, instance_id: str) -> None:
        """The instance was deleted: no lease row should resume it anywhere."""
        self.held.pop(instance_id, None)
        await asyncio.to_thread(self.leases.forget, instance_id)

    async def lookup(self, instance_id: str) -> Owner | None:
        return await asyncio.to_thread(self.leases.lookup, instance_id)

    async def loads(self) -> list[NodeLoad]:
        return await asyncio.to_thread(self.leases.loads)

    async def place(self) -> NodeLoad | None:
        """The node a first connect should run on."""
        return least_loaded(await self.loads(), self.node_id)

    async def rebalance(self) -> None:
        if self._stopping:
            return
        loads = await self.loads()
        dead, released, total = await asyncio.to_thread(self.leases.orphans)
        todo = plan(loads, self.node_id, len(self.held), dead, released, total)
        now = time.monotonic()
        self._released = {i: t for i, t in self._released.items() if now - t < _RELEASE_COOLDOWN}
        if todo.claim:
            started = time.monotonic()
            # A lease this node just handed over is left to the others for one lease period (three of their
            # heartbeats): long enough for a live node to take it, short enough that a node left alone (its
            # taker died or froze) takes it back well within lease + 5 s.
            recent = [i for i, t in self._released.items() if now - t < self.lease]
            won = await asyncio.to_thread(self.leases.take_over, todo.claim, recent)
            for instance_id, token in won.items():
                self.held[instance_id] = Held(token, started + self.validity, time.monotonic())
                log(logger, logging.INFO, "lease taken over", instance_id=instance_id, token=token)
            await self._run(list(won))
        for instance_id in sorted(self.held)[: todo.release]:
            await self.release(instance_id)

    # -- engine sessions -------------------------------------------------------------------------

    async def _run(self, instance_ids: list[str]) -> None:
        """Newly owned instances resume as after a restart (§2.2): paired ones and the single-admin one.

        One read for all of them and no write for a stored one: a node taking over 1,000 instances (or
        starting with them) spent 2.2 s here reading and writing each instance row in turn."""
        if not instance_ids:
            return
        if len(instance_ids) == 1:
            found = await self.service.store.get_instance(instance_ids[0])
            rows = {found.instance_id: found} if found is not None else {}
        else:
            rows = {r.instance_id: r for r in await self.service.store.list_instances()}
        default = self.service.settings.default_instance if self.connect_on_start else None
        for instance_id in instance_ids:
            row = rows.get(instance_id)
            if not ((row is not None and row.paired) or instance_id == default) or instance_id not in self.held:
                continue
            try:
                await self.service.resume(instance_id, stored=row is not None)
            except Exception:
                logger.exception("takeover connect failed", extra={"fields": {"instance_id": instance_id}})

    async def _lost(self, instance_id: str) -> None:
        self.held.pop(instance_id, None)
        log(logger, logging.WARNING, "lease lost", instance_id=instance_id)
        await self._stop_session(instance_id)

    async def _stop_session(self, instance_id: str) -> None:
        # whatsmeow forbids two connections of one device: this node's connection goes first.
        try:
            await self.service.engine.disconnect(instance_id)
        except Exception:
            logger.exception("engine disconnect failed", extra={"fields": {"instance_id": instance_id}})
        if instance_id in self.service.sessions:
            self.service.status_changed(instance_id, SessionStatus.DISCONNECTED, "LEASE_LOST")
        session = self.service.sessions.pop(instance_id, None)
        if session is not None and session.send_lock.locked():
            # Let a send already handed to the engine finish before another node may claim the instance.
            try:
                async with asyncio.timeout(5):
                    async with session.send_lock:
                        pass
            except TimeoutError:
                logger.warning("send still running at handover", extra={"fields": {"instance_id": instance_id}})
