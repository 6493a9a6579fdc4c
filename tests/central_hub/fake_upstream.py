"""A real, scriptable, misbehaving HTTP/1.1 server on loopback: the fake session-manager for hub tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


Behaviour = Callable[[Recorded, asyncio.StreamWriter], Awaitable[bool]]
"""Writes (or not) an answer; returns True to keep the connection open for the next request."""


def respond(
    status: int, body: Any = None, headers: dict[str, str] | None = None, content_type: str = "application/json"
) -> Behaviour:
    payload = body if isinstance(body, bytes) else orjson.dumps(body if body is not None else {})

    async def behave(_: Recorded, writer: asyncio.StreamWriter) -> bool:
        head = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        return True

    return behave


async def hang(_: Recorded, writer: asyncio.StreamWriter) -> bool:
    """Accept the request and never answer (read timeout)."""
    await asyncio.sleep(3600)
    return False


async def reset(_: Recorded, writer: asyncio.StreamWriter) -> bool:
    """Abort with a TCP RST before any byte of a response."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
    return False


async def close(_: Recorded, writer: asyncio.StreamWriter) -> bool:
    """Close cleanly (FIN) without answering."""
    writer.close()
    return False


async def garbage(_: Recorded, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()
    writer.close()
    return False


def truncated(status: int = 200) -> Behaviour:
    async def behave(_: Recorded, writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n".encode()
                     + b'{"status":')
        await writer.drain()
        writer.close()
        return False

    return behave


@dataclass
class FakeUpstream:
    behaviour: Behaviour = field(default_factory=lambda: respond(200, {"status": "READY"}))
    requests: list[Recorded] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    @property
    def calls(self) -> list[Recorded]:
        """Requests other than the hub's background GET /health probes."""
        return [r for r in self.requests if r.path != "/health"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                req = Recorded(method, target, headers, body)
                self.requests.append(req)
                if not await self.behaviour(req, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()


@contextlib.contextmanager
def full_backlog() -> Iterator[str]:
    """A listening socket that never accepts, its backlog filled: new connects time out (loopback only)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        fillers.append(s)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for s in fillers:
            s.close()
        ls.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
