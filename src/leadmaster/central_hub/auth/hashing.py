"""argon2 on its own bounded pool, so that a flood of sign-ins cannot starve the other routes.

argon2 costs tens of milliseconds of CPU by design. Run in the default thread pool (which the database calls
share) 16 threads of bad logins took `GET /api/admin/clientes` from 1.6 ms to about a second (issue 11).
Here hashing has one dedicated thread, at a lower CPU priority (Linux nice is per thread), and at most
`MAX_WAITING` callers queue for it; beyond that a sign-in is refused at once with 429 and Retry-After.
"""

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from leadmaster.central_hub import errors
from leadmaster.central_hub.auth import secrets

T = TypeVar("T")
MAX_WAITING = 32
_NICE = 10


def _lower_priority() -> None:
    # setpriority(PRIO_PROCESS, tid) renices only this thread on Linux (and threads argon2 starts inherit it).
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)


class PasswordHasher:
    def __init__(self, workers: int = 1) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="argon2", initializer=_lower_priority)
        self._waiting = 0

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._waiting >= MAX_WAITING:
            raise errors.TooManyAttemptsError(
                f"More than {MAX_WAITING} sign-ins are already waiting; try again in a second.", retry_after=1
            )
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._waiting -= 1

    async def hash(self, password: str) -> str:
        return await self._run(secrets.hash_password, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await self._run(secrets.verify_password, password_hash, password)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
