"""The writer lanes' PostgreSQL connection (writer_conn.py) keeps its socket registered with the event loop
between statements: statements still work in every shape (answers, a statement larger than the socket's
buffer, cancellation), the loop is not woken again and again by a message nobody waits for, and nothing stays
registered once the connection is closed, however it is closed. On uvloop (the services' loop) and asyncio's."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psycopg
import pytest
import uvloop

from leadmaster.session_manager.writer_conn import LaneConnection

LOOPS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {"uvloop": uvloop.run, "asyncio": asyncio.run}


class Counting(LaneConnection):
    """Counts the reader's calls and the unregistrations. Its waits wake by themselves only after 30 s: a
    statement slowed past the usual 0.1 s by a loaded machine must not count as an unregistration."""

    wakeups = 0
    unregistered = 0

    async def wait(self, gen: Any, interval: float = 30.0, timeout: float | None = None) -> Any:
        return await super().wait(gen, 30.0, timeout)

    def _readable(self) -> None:
        self.wakeups += 1
        super()._readable()

    def _unwatch(self) -> None:
        self.unregistered += self._watched is not None
        super()._unwatch()


async def registered(fd: int) -> bool:
    """Whether `fd` is in an epoll set of this process, as the kernel tells (/proc): uvloop says nothing of its
    registrations, and libuv applies them at its next poll, hence the turns of the loop first."""
    for _ in range(3):
        await asyncio.sleep(0)
    for link in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(link) == "anon_inode:[eventpoll]":
                info = (Path("/proc/self/fdinfo") / link.name).read_text()
                if any(int(m) == fd for m in re.findall(r"^tfd:\s*(\d+)", info, re.MULTILINE)):
                    return True
    return False


async def second(db: str, fd: int) -> Any:
    """A statement's answer on a new connection, which must get descriptor `fd`. A socket takes the lowest free
    descriptor, so every lower free one is held meanwhile: in a full run a socket another test left to the
    collector can be closed at any time and free a lower one (a CI run: 12 instead of 22)."""
    fillers: list[int] = []
    collecting = gc.isenabled()
    gc.disable()
    try:
        while (free := os.open(os.devnull, os.O_RDONLY)) < fd:
            fillers.append(free)
        os.close(free)
        assert free == fd, f"descriptor {fd} is still taken"
        again = await LaneConnection.connect(db, autocommit=True)
    finally:
        for filler in fillers:
            os.close(filler)
        if collecting:
            gc.enable()
    try:
        assert again.pgconn.socket == fd
        return await (await again.execute("SELECT 2")).fetchone()
    finally:
        await again.close()


class ResettingProxy:
    """A TCP proxy to PostgreSQL that can reset its client connections (RST) halfway through a message, as a
    dropped NAT entry or a lost server host can: the client's socket then reports an error (POLLERR) beside
    the bytes that came, not an end of stream. One thread and non-blocking sockets, so that a reset is one
    `close` with SO_LINGER 0 and nothing is blocked in a `recv`."""

    def __init__(self, dsn: str) -> None:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        self.upstream = (str(info.get("host") or "127.0.0.1"), int(str(info.get("port") or 5432)))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.dsn = psycopg.conninfo.make_conninfo(dsn, host="127.0.0.1", port=self.listener.getsockname()[1],
                                                  sslmode="disable")
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.listener, selectors.EVENT_READ)
        self.peers: dict[socket.socket, socket.socket] = {}
        self.clients: list[socket.socket] = []
        self.reset_requested = threading.Event()
        self.reset_done = threading.Event()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """Reset every client connection (from the proxy's thread), and return once it is done."""
        self.reset_requested.set()
        assert self.reset_done.wait(5)

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        for sock in [self.listener, *self.peers]:
            sock.close()
        self.sel.close()

    def _run(self) -> None:
        while not self.stopping:
            if self.reset_requested.is_set():
                for client in [c for c in self.clients if c in self.peers]:  # those still connected
                    # The first bytes of a message, then the reset: the client's poll reports readable and
                    # an error at once, libpq reads the bytes and waits for the rest, which never comes.
                    client.send(b"N\0\0")
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self._drop(client)
                self.clients.clear()
                self.reset_requested.clear()
                self.reset_done.set()
            for key, _ in self.sel.select(0.02):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self.listener:
                    client, _ = self.listener.accept()
                    server = socket.create_connection(self.upstream)
                    for s in (client, server):
                        s.setblocking(False)
                        self.sel.register(s, selectors.EVENT_READ)
                    self.peers[client], self.peers[server] = server, client
                    self.clients.append(client)
                    continue
                if sock not in self.peers:
                    continue
                try:
                    data = sock.recv(65536)
                    if data:
                        self.peers[sock].setblocking(True)
                        self.peers[sock].sendall(data)
                        self.peers[sock].setblocking(False)
                        continue
                except OSError:
                    pass
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        for s in (sock, self.peers.get(sock)):
            if s is not None and s in self.peers:
                self.sel.unregister(s)
                del self.peers[s]
                s.close()


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    return LOOPS[request.param]


def test_statements_answer_and_the_socket_stays_registered_between_them(cluster_db: str, run: Any) -> None:
    async def main() -> None:
        conn = await Counting.connect(cluster_db, autocommit=True)
        for n in range(200):
            row = await (await conn.execute("SELECT %s::int + 1", (n,))).fetchone()
            assert row == (n + 1,)
        assert conn.unregistered == 0  # registered by the first statement, for all of them
        fd = conn.pgconn.socket
        assert await registered(fd)  # still registered after the last statement
        await conn.close()
        assert not await registered(fd)

    run(main())


def test_a_message_nobody_waits_for_does_not_wake_the_loop_again_and_again(cluster_db: str, run: Any) -> None:
    async def main() -> None:
        conn = await Counting.connect(cluster_db, autocommit=True)
        got: list[str] = []
        conn.add_notify_handler(lambda n: got.append(n.payload))
        await conn.execute("LISTEN lane_probe")
        with psycopg.connect(cluster_db, autocommit=True) as other:
            other.execute("NOTIFY lane_probe, 'hello'")
        before = conn.wakeups
        await asyncio.sleep(0.3)  # the notification sits in the socket meanwhile
        # psycopg's own wait would have left nothing registered; a registration left as it is would be woken at
        # every turn of the loop for as long as the notification sits unread.
        assert conn.wakeups - before <= 3, f"woken {conn.wakeups - before} times by one unread notification"
        assert conn.unregistered == 1
        row = await (await conn.execute("SELECT 41 + 1")).fetchone()  # the next statement reads past it
        assert row == (42,)
        assert got == ["hello"]
        await conn.close()

    run(main())


def test_a_statement_larger_than_the_socket_buffer_is_written_and_answered(cluster_db: str, run: Any) -> None:
    async def main() -> None:
        conn = await LaneConnection.connect(cluster_db, autocommit=True)
        big = "x" * (8 << 20)  # far above any socket buffer: libpq asks to wait for writing
        row = await (await conn.execute("SELECT length(%s)", (big,))).fetchone()
        assert row == (len(big),)
        row = await (await conn.execute("SELECT 'after'")).fetchone()
        assert row == ("after",)
        await conn.close()

    run(main())


def test_a_connection_opened_after_close_on_the_same_descriptor_works(cluster_db: str, run: Any) -> None:
    # A registration left behind by close would belong to the next socket given the same descriptor (asyncio's
    # loop then refuses to register that one: the kernel dropped the closed socket from its epoll set).
    async def main() -> None:
        conn = await LaneConnection.connect(cluster_db, autocommit=True)
        await conn.execute("SELECT 1")
        fd = conn.pgconn.socket
        assert await registered(fd)
        await conn.close()
        assert await asyncio.wait_for(second(cluster_db, fd), 10) == (2,)

    run(main())


def test_a_connection_the_server_ended_leaves_nothing_registered(cluster_db: str, run: Any) -> None:
    # libpq closes the socket when it reads the end of the connection, and forgets its descriptor: the
    # registration must be undone by the descriptor it was made with (writer_retry.py's lanes reconnect).
    async def main() -> None:
        conn = await LaneConnection.connect(cluster_db, autocommit=True)
        await conn.execute("SELECT 1")
        fd, pid = conn.pgconn.socket, conn.pgconn.backend_pid
        with psycopg.connect(cluster_db, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            await conn.execute("SELECT 1")
        await conn.close()
        assert await asyncio.wait_for(second(cluster_db, fd), 10) == (2,)

    run(main())


def test_a_statement_waiting_when_the_connection_is_reset_fails_and_never_hangs(cluster_db: str, run: Any) -> None:
    # On uvloop a socket error (POLLERR) makes libuv stop polling after one call of the reader: a wait resting
    # on the registration alone was never woken again (writer_conn.py, third rule).
    proxy = ResettingProxy(cluster_db)

    async def main() -> None:
        conn = await LaneConnection.connect(proxy.dsn, autocommit=True)
        await conn.execute("SELECT 1")  # registered, and it stays so between statements
        fd = conn.pgconn.socket
        statement = asyncio.ensure_future(conn.execute("SELECT pg_sleep(3)"))
        await asyncio.sleep(0.2)
        # The reset from the loop's own thread, and time for it to land: the loop's next poll then finds the
        # bytes and the error together; libpq reads the bytes and waits for the rest.
        proxy.reset()
        time.sleep(0.05)
        with pytest.raises(psycopg.OperationalError):
            await asyncio.wait_for(statement, 2)  # well before pg_sleep's 3 s
        await conn.close()
        assert not await registered(fd)

    try:
        run(main())
    finally:
        proxy.close()


def test_a_cancelled_statement_leaves_nothing_registered(cluster_db: str, run: Any) -> None:
    async def main() -> None:
        conn = await LaneConnection.connect(cluster_db, autocommit=True)
        await conn.execute("SELECT 1")
        fd = conn.pgconn.socket
        task = asyncio.create_task(conn.execute("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not await registered(fd)
        conn.abandon()

    run(main())


@pytest.mark.parametrize("new_loop", [uvloop.new_event_loop, asyncio.new_event_loop], ids=["uvloop", "asyncio"])
def test_abandon_from_another_thread_is_done_by_the_loop(cluster_db: str, new_loop: Any) -> None:
    loop = new_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()

    def on_loop(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)

    try:
        conn = on_loop(LaneConnection.connect(cluster_db, autocommit=True))
        on_loop(conn.execute("SELECT 1"))
        fd = conn.pgconn.socket
        conn.abandon()  # from this thread, while the loop runs in its own
        on_loop(asyncio.sleep(0.05))
        assert conn.pgconn.status == psycopg.pq.ConnStatus.BAD  # finished: libpq closed the socket
        assert on_loop(asyncio.wait_for(second(cluster_db, fd), 10)) == (2,)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_abandon_on_a_closed_loop_closes_the_socket(cluster_db: str) -> None:
    async def main() -> LaneConnection:
        conn = await LaneConnection.connect(cluster_db, autocommit=True)
        await conn.execute("SELECT 1")
        return conn

    conn = uvloop.run(main())  # its loop is closed now
    conn.abandon()
    assert conn.pgconn.status == psycopg.pq.ConnStatus.BAD
