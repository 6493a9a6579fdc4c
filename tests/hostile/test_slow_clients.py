"""Slow clients against the real processes: a request's head and body must arrive within a bounded time.

Both services run with their default read timeout (10 s). 100 sockets per service trickle half a header
(one byte a second) or send a body shorter than their Content-Length; each must be answered 408 and closed
within 20 s, while the services keep answering other clients at once.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.fault.stack import SM_KEY, Stack

SOCKETS = 100
WITHIN = 20.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("slow"))
    try:
        s.start()
        yield s
    finally:
        s.close()


BODY_PATHS = {"hub": b"/api/auth/login", "sm": b"/api/session-manager/sessions/slow/send"}


def open_slow(name: str, port: int, i: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if i % 2:
        # Half a head, then (below) one byte a second: the slowloris pattern.
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    else:
        # A complete head promising 100 bytes, then 1 byte: the app waits for the rest of the body.
        sock.sendall(b"POST " + BODY_PATHS[name] + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + SM_KEY.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
    sock.setblocking(False)
    return sock


def test_slow_heads_and_bodies_are_dropped_and_others_still_served(stack: Stack) -> None:
    assert stack.sm is not None and stack.hub is not None
    started = time.monotonic()
    socks = {s: (name, time.monotonic()) for name, port in (("hub", stack.hub.port), ("sm", stack.sm.port))
             for s in (open_slow(name, port, i) for i in range(SOCKETS))}
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    answers: dict[socket.socket, bytes] = {s: b"" for s in socks}
    closed: dict[socket.socket, float] = {}
    served_while_held: list[float] = []
    next_trickle = time.monotonic() + 1
    try:
        while len(closed) < len(socks) and time.monotonic() - started < WITHIN + 5:
            for key, _ in sel.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                if data:
                    answers[sock] += data
                else:
                    closed[sock] = time.monotonic() - socks[sock][1]
                    sel.unregister(sock)
            if time.monotonic() >= next_trickle:
                next_trickle += 1
                for sock in socks:
                    if sock not in closed:
                        with contextlib.suppress(OSError):
                            sock.send(b"a")  # keeps a slowloris head (and a short body) trickling
                if len(served_while_held) < 5 and len(closed) < len(socks) // 2:
                    t0 = time.perf_counter()
                    assert httpx.get(stack.hub_url + "/health", timeout=5).status_code == 200
                    r = httpx.get(stack.sm.base_url + "/api/session-manager/sessions",
                                  headers={"Authorization": f"Bearer {SM_KEY}"}, timeout=5)
                    assert r.status_code == 200, r.text
                    served_while_held.append(time.perf_counter() - t0)
    finally:
        for sock in socks:
            sock.close()
    assert len(closed) == len(socks), f"{len(socks) - len(closed)} slow sockets still open after {WITHIN + 5} s"
    assert max(closed.values()) <= WITHIN, max(closed.values())
    assert min(closed.values()) >= 5, "dropped too early: the default read timeout is 10 s"
    assert len(served_while_held) == 5
    for sock, data in answers.items():
        assert data.startswith(b"HTTP/1.1 408 "), (socks[sock][0], data[:200])
        assert b'"code":"REQUEST_TIMEOUT"' in data


def test_a_huge_head_is_refused(stack: Stack) -> None:
    with socket.create_connection(("127.0.0.1", stack.hub.port if stack.hub else 0), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(100):
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]
