"""PostgreSQL: the connection of a writer lane (writer_loop.py), which keeps its socket registered with the loop.

psycopg's asyncio wait registers the socket with the event loop and unregisters it again at every wait: on
uvloop a statement costs an `epoll_ctl` ADD, one DEL and three DELs that fail (strace), and a poll handle
created and closed. A lane waits on its connection for one statement at a time and for nothing else, so here
the socket is registered once and a wait parks a future that the reader resolves (beside a timer, as
psycopg's: the third rule below). Measured in the service at one client, see docs/benchmarks.md.

Three rules keep the one registration safe:
* nothing reads the socket while no statement waits (a notice, or the server closing the connection): the
  reader then unregisters itself (at its second wake-up in a row with no statement waiting), or the loop
  would call it again at every turn; the next wait registers it again and libpq reads what came;
* the socket is unregistered on the loop's thread before libpq closes it, or a new socket given the same
  descriptor would find the old registration (`close`, `abandon`);
* a wait is never left to the registration alone. On uvloop, when the socket reports an error (POLLERR: the
  connection was reset, perhaps with bytes still unread), libuv stops polling it: the reader is called that
  once and never again until the registration is removed and made anew (strace: the event, then an
  `epoll_ctl` DEL). libpq may read the bytes and wait for the rest, and that wait was never woken. So, as
  psycopg's own wait does, a wait wakes by itself after `WAIT_INTERVAL`, registers afresh and lets libpq
  read, which surfaces the error (tests/cluster/test_writer_conn.py, the reset connection; a connection the
  server ended hung so about one run in three).
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import psycopg
from psycopg.waiting import READY_R, WAIT_R, Ready, Wait, wait_async

WAIT_INTERVAL = 0.1  # psycopg's own (connection_async._WAIT_INTERVAL): a lane's wait wakes by itself after it


class LaneConnection(psycopg.AsyncConnection[Any]):
    """An autocommit asyncio connection that one task uses at a time."""

    # The loop the socket is registered with, and its descriptor: libpq forgets it when it closes the socket.
    _watched: tuple[asyncio.AbstractEventLoop, int] | None = None
    _waiter: asyncio.Future[bool] | None = None  # True: the socket is readable; False: the wait timed out
    _idle_wakeups = 0  # wake-ups in a row while no statement waited
    _cursor: psycopg.AsyncCursor[Any] | None = None

    @property
    def lane_cursor(self) -> psycopg.AsyncCursor[Any]:
        """The one cursor the lane runs its statements on: making and closing a cursor per batch cost 7 µs of
        each statement's 80 µs (a bare loop on this connection class), and the send path runs three."""
        if self._cursor is None:
            self._cursor = self.cursor()
        return self._cursor

    async def wait(
        self,
        gen: Generator[Wait, Ready | int, Any],
        interval: float = WAIT_INTERVAL,
        timeout: float | None = None,  # noqa: ASYNC109  # psycopg's signature: its cursors call it so
    ) -> Any:
        if timeout is not None:
            self._unwatch()
            return await super().wait(gen, interval, timeout)
        loop = asyncio.get_running_loop()
        try:
            state = next(gen)
            while True:
                if state != WAIT_R:
                    # Writing too (a statement larger than the socket's buffer): rare, so psycopg's own wait,
                    # which registers the socket for itself.
                    self._unwatch()
                    return await wait_async(_resumed(state, gen), self.pgconn.socket, interval)
                if self._watched is not None and self._watched[0] is not loop:
                    self._unwatch()  # used from another loop than the one it registered with (lanes never are)
                if self._watched is None:
                    fd = self.pgconn.socket
                    loop.add_reader(fd, self._readable)
                    self._watched = loop, fd
                self._waiter = waiter = loop.create_future()
                self._idle_wakeups = 0
                timer = loop.call_later(interval, _wake, waiter, False)
                try:
                    woken = await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
                if not woken:
                    # A long statement, or a descriptor libuv stopped polling after a socket error (module
                    # docstring): registered afresh at the next wait, and libpq reads now, which surfaces the error
                    # (reading with nothing there is harmless: libpq asks to wait again).
                    self._unwatch()
                state = gen.send(READY_R)
        except StopIteration as done:
            return done.value
        except BaseException:
            # Cancelled, or failed mid-statement (libpq may have closed the socket already: a lost connection):
            # the lane drops the connection, and nothing stays registered.
            self._unwatch()
            raise

    def _readable(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            _wake(waiter, True)
            return
        # Nobody reads now. Once can be the answer the last wait has read since (asyncio's loop polls again
        # before the woken task runs); twice in a row is something left unread: stop being woken for it.
        self._idle_wakeups += 1
        if self._idle_wakeups > 1:
            self._unwatch()

    def _unwatch(self) -> None:
        watched, self._watched = self._watched, None
        if watched is not None and not watched[0].is_closed():
            watched[0].remove_reader(watched[1])

    async def close(self) -> None:
        self._unwatch()  # even when psycopg already knows the connection closed: the registration is ours
        await super().close()

    def abandon(self) -> None:
        """Close at once from any thread (the lane's loop may be gone, or busy elsewhere)."""
        loop = self._watched[0] if self._watched is not None else None
        if loop is None or loop.is_closed() or not loop.is_running():
            self._unwatch()  # a loop that is not running polls nothing meanwhile
            self.pgconn.finish()
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._unwatch()
            self.pgconn.finish()
        else:
            loop.call_soon_threadsafe(self.abandon)  # unregistered and closed by the loop's own thread


def _wake(waiter: asyncio.Future[bool], readable: bool) -> None:
    if not waiter.done():
        waiter.set_result(readable)


def _resumed(state: Wait, gen: Generator[Wait, Ready | int, Any]) -> Generator[Wait, Ready | int, Any]:
    """`gen`, which already asked for `state`, as a generator that asks for it first."""
    ready = yield state
    while True:
        try:
            state = gen.send(ready)
        except StopIteration as done:
            return done.value
        ready = yield state
