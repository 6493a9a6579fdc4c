"""ASGI routing in front of the app: each request runs on the node that owns its instance.

It sits inside the request context (API key, request id, body limit, access log) and in front of both send
entries (the FastSend shortcut and the FastAPI routes), so every route that names an instance is covered,
including routes added later under /api/session-manager/sessions/{id}/... or /sandbox/{id}/...
The owned-here fast path costs a regex match and a dict lookup; the database is asked only about
instances this node does not hold.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadmaster.contract.ids import is_valid_instance_id
from leadmaster.session_manager.cluster.coordinator import Cluster, not_ready
from leadmaster.session_manager.cluster.forwarding import FORWARDED_HEADER, Forwarder
from leadmaster.session_manager.errors import SendOutcomeUnknownError, ServiceError

logger = logging.getLogger("leadmaster.session_manager.cluster")
_PER_INSTANCE = re.compile(r"/api/session-manager/(?:sessions|sandbox)/([^/]+)(/.*)?")
_SINGLE_ADMIN = frozenset({"/status", "/qr", "/connect", "/disconnect", "/logout", "/send", "/pair-code",
                           "/account"})
_FORWARDED = FORWARDED_HEADER.encode()
_LIST = "/api/session-manager/sessions"


def instance_of(path: str, default_instance: str) -> tuple[str, str] | None:
    """(instance_id, rest of the path) a request acts on, or None for node-level routes."""
    if path in _SINGLE_ADMIN:
        return default_instance, path
    match = _PER_INSTANCE.fullmatch(path)
    if match is None or not is_valid_instance_id(match.group(1)):
        return None  # invalid ids get their 400 from the route itself
    return match.group(1), match.group(2) or ""


class ClusterRouter:
    def __init__(self, app: ASGIApp, cluster: Cluster, forwarder: Forwarder) -> None:
        self.app = app
        self.cluster = cluster
        self.forwarder = forwarder
        self.default_instance = cluster.service.settings.default_instance

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == _LIST and scope["method"] == "GET" and not _was_forwarded(scope):
            await self._list(scope, send)
            return
        found = instance_of(scope["path"], self.default_instance)
        if found is None:
            await self.app(scope, receive, send)  # node-level routes: health, metrics, lists, the cluster view
            return
        instance_id, rest = found
        method: str = scope["method"]
        if self.cluster.owns(instance_id):
            await self._serve(instance_id, rest, scope, receive, send)  # the fast path: ours
            return
        try:
            target = await self._route(instance_id, rest, method, scope)
        except ServiceError as exc:
            await _send_json(send, exc.status, exc.body(), exc.headers)
            return
        except Exception:
            # The coordinator's database is unreachable: nobody can say who runs the instance right now.
            logger.exception("cluster routing failed", extra={"fields": {"instance_id": instance_id}})
            refusal = not_ready(instance_id, "the cluster's database does not answer")
            await _send_json(send, refusal.status, refusal.body(), refusal.headers)
            return
        if target is None:
            await self._serve(instance_id, rest, scope, receive, send)
            return
        try:
            body = await _read_body(receive)
            raw_path = scope.get("raw_path") or scope["path"].encode()
            if scope.get("query_string"):
                raw_path += b"?" + scope["query_string"]
            forward = self.forwarder.forward(
                target[1], method, raw_path.decode("latin-1"), scope["headers"], body, rest == "/send", instance_id
            )
            status, headers, payload = await self._watched(forward, instance_id, target[0], rest == "/send")
        except ServiceError as exc:
            await _send_json(send, exc.status, exc.body(), exc.headers)
            return
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _serve(self, instance_id: str, rest: str, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["method"] == "DELETE" and rest == "" and scope["path"].startswith("/api/session-manager/sessions/"):
            await self.cluster.forget(instance_id)  # deleted: no node may resume it

    async def _list(self, scope: Scope, send: Send) -> None:
        """Every node's sessions in one list: each live peer's own, merged with this node's."""
        peers = [n for n in await self.cluster.loads() if n.alive and n.node_id != self.cluster.node_id]
        calls = [asyncio.wait_for(self.forwarder.forward(n.url, "GET", _LIST, scope["headers"], b"", False, "-"),
                                  self.cluster.lease) for n in peers]
        merged = {s["instance_id"]: s for s in self.cluster.service.list()}
        for answer in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(answer, BaseException) or answer[0] != 200:
                continue  # a peer that cannot answer now: its instances are moving anyway
            for entry in orjson.loads(answer[2]):
                mine = merged.get(entry["instance_id"])
                # The node running an instance knows its state; another node has at most a stale copy.
                if mine is None or (mine["status"] == "DISCONNECTED" and entry["status"] != "DISCONNECTED"):
                    merged[entry["instance_id"]] = entry
        await _send_json(send, 200, [merged[k] for k in sorted(merged)], {})

    async def _watched(self, forward: Any, instance_id: str, owner: str, is_send: bool) -> Any:
        """The owner's answer, given up as soon as the owner lost the lease (a paused or dead node would
        otherwise hold the caller until the forward timeout)."""
        task = asyncio.ensure_future(forward)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.cluster.interval)
                if done:
                    return task.result()
                try:
                    now = await self.cluster.lookup(instance_id)
                except Exception:
                    # Cannot tell now; the forward timeout still bounds the wait.
                    logger.warning("owner lookup failed while forwarding", exc_info=True)
                    continue
                # No row yet: a placed first connect; the chosen node is claiming it. Keep waiting.
                lapsed = now is not None and now.owner == owner and not now.live
                taken = now is not None and now.owner not in (None, owner)
                if lapsed or taken:
                    if is_send:
                        raise SendOutcomeUnknownError(
                            f"Node {owner} stopped answering while sending for {instance_id!r} and lost the "
                            "instance: the message may have gone out. Retrying with the same Idempotency-Key "
                            "will not send it twice."
                        )
                    raise not_ready(instance_id, f"node {owner} stopped answering")
        finally:
            task.cancel()

    async def _route(self, instance_id: str, rest: str, method: str, scope: Scope) -> tuple[str, str] | None:
        """None to serve here, else (node id, URL) of the owner; raises 503 while the instance changes hands."""
        cluster = self.cluster
        connect = method == "POST" and rest == "/connect"
        forwarded = _was_forwarded(scope)
        if cluster.token_of(instance_id) is not None:
            # Ours, but our clock says the lease may have lapsed (e.g. after a pause): renew, then decide.
            try:
                await cluster.fence(instance_id)
                return None
            except ServiceError:
                pass
        owner = await cluster.lookup(instance_id)
        if owner is not None and owner.live:
            if owner.owner == cluster.node_id:
                raise not_ready(instance_id, "its lease is being renewed")
            if forwarded or not owner.url or not owner.owner:
                # One hop only: the sender thought we own it; ownership moved meanwhile.
                raise not_ready(instance_id, f"owned by {owner.owner}")
            return owner.owner, owner.url
        if connect:
            # A first connect (or one after its node died): place it on the least-loaded live node.
            if not forwarded:
                node = await cluster.place()
                if node is not None and node.node_id != cluster.node_id:
                    return node.node_id, node.url
            if await cluster.claim(instance_id):
                return None
            raise not_ready(instance_id, "another node is taking it")
        if owner is None:
            return None  # never placed anywhere: answer from here (DISCONNECTED, shared outbox, ...)
        raise not_ready(instance_id, "its node stopped; another node takes it over shortly")


class ServedBy:
    """Names the node that ran the request in `X-Served-By` (kept as the owner set it on forwarded ones)."""

    def __init__(self, app: ASGIApp, node_id: str) -> None:
        self.app = app
        self.header = (b"x-served-by", node_id.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_node(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"x-served-by" for k, _ in headers):
                    headers.append(self.header)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_node)


def _was_forwarded(scope: Scope) -> bool:
    return any(k == _FORWARDED for k, _ in scope["headers"])


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _send_json(send: Send, status: int, body: object, headers: dict[str, str]) -> None:
    payload = orjson.dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
