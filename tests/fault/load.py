"""Concurrent senders through the hub, and the ledger that proves nothing was lost, doubled or mixed up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tests.fault.stack import AMBIGUOUS, CONTRACT_ERRORS, TO

# A send with no answer after this long is a hang (the client gives up: status 0). The hub's own timeouts end
# every upstream call within seconds; whatever a slow answer spends beyond that is CPU queueing on a shared box,
# which bench/ measures and no test asserts (a 7.04 s answer against a 7 s bound failed a full run here once).
HANG_SECONDS = 60.0


@dataclass
class Sent:
    cliente_id: int
    text: str
    key: str
    status: int  # 0 = the client gave up (a hang)
    code: str | None
    body: dict[str, Any]
    seconds: float
    started: float = 0.0  # time.monotonic() when the request left


async def send_one(http: aiohttp.ClientSession, hub_url: str, api_key: str, cid: int, text: str, key: str,
                   limit: float) -> Sent:
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": key, "Content-Type": "application/json"}
    started = time.monotonic()
    try:
        async with http.post(f"{hub_url}/api/whatsapp/{cid}/send", data=orjson.dumps({"to": TO, "message": text}),
                             headers=headers, timeout=aiohttp.ClientTimeout(total=limit)) as resp:
            raw = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Sent(cid, text, key, 0, type(exc).__name__, {}, time.monotonic() - started, started)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = {"unparsable": raw[:200].decode(errors="replace")}
    code = None if status == 200 else body.get("code")
    return Sent(cid, text, key, status, code, body, time.monotonic() - started, started)


async def run_load(hub_url: str, keys: dict[int, str], total: int, concurrency: int, tag: str,
                   limit: float, stop_after: float = 120.0,
                   on_progress: Callable[[int], None] | None = None) -> list[Sent]:
    """`total` sends (unique texts) spread round-robin over the clientes of `keys`, `concurrency` at a time."""
    clientes = sorted(keys)
    results: list[Sent] = []
    counter = iter(range(total))
    deadline = time.monotonic() + stop_after
    connector = aiohttp.TCPConnector(limit=concurrency)

    async with aiohttp.ClientSession(connector=connector) as http:
        async def worker() -> None:
            for n in counter:
                if time.monotonic() > deadline:
                    return
                cid = clientes[n % len(clientes)]
                sent = await send_one(http, hub_url, keys[cid], cid, f"{tag} #{n} for {cid}", f"{tag}-{n}", limit)
                results.append(sent)
                if on_progress is not None:
                    on_progress(len(results))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def retry_ambiguous(hub_url: str, keys: dict[int, str], results: list[Sent], limit: float) -> list[Sent]:
    """Retry every ambiguous failure once with the same Idempotency-Key, as a careful caller would."""
    async with aiohttp.ClientSession() as http:
        retries = [send_one(http, hub_url, keys[s.cliente_id], s.cliente_id, s.text, s.key, limit)
                   for s in results if s.code in AMBIGUOUS]
        return list(await asyncio.gather(*retries))


def ambiguous(s: Sent) -> bool:
    """The caller cannot know whether the message went out."""
    # A 200 whose body was cut short (the session-manager SIGKILLed between writing the head and the body) is a
    # SESSION_MANAGER_BAD_RESPONSE with upstream_status 200: the send had succeeded, the answer was lost.
    cut_success = s.code == "SESSION_MANAGER_BAD_RESPONSE" and s.body.get("upstream_status") == 200
    return s.code in AMBIGUOUS or s.body.get("upstream_code") == "SEND_OUTCOME_UNKNOWN" or cut_success


def check_ledger(attempts: list[Sent], outboxes: dict[int, list[dict[str, Any]]], tag: str) -> Counter[str]:
    """The invariants of a messaging gateway; returns the outcome counts for the report.

    - every send was answered (none hung), with a 200 or a contract error;
    - each text is in the outbox at most once, on its own cliente's instance, with its own body/to/cliente_id;
    - every 200 names the message_id of exactly that outbox entry;
    - a definite failure (any error but a timeout or an unreachable session-manager) sent nothing.
    """
    outcomes: Counter[str] = Counter()
    for s in attempts:
        outcomes[s.code or "OK"] += 1
        assert s.status != 0, f"request hung or broke ({s.code}) after {s.seconds:.1f}s: {s.text}"
        if s.status != 200:
            assert (s.status, s.code) in CONTRACT_ERRORS, f"not a contract error: {s.status} {s.body}"
            assert s.body.get("success") is False and "request_id" in s.body, s.body

    by_text: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for cid, messages in outboxes.items():
        for m in messages:
            if m["message"].startswith(tag + " #"):
                by_text.setdefault(m["message"], []).append((cid, m))
    doubled = {t: v for t, v in by_text.items() if len(v) > 1}
    assert not doubled, f"messages delivered more than once: {list(doubled.items())[:3]} " + str(
        [s for s in attempts if s.text in doubled][:6])

    ok_ids: dict[str, str] = {}
    for s in attempts:
        found = by_text.get(s.text, [])
        if s.status == 200:
            assert len(found) == 1, f"200 without exactly one outbox entry: {s.text} {found}"
            cid, m = found[0]
            data = s.body["data"]
            assert (cid, m["cliente_id"], m["to"], data["cliente_id"], data["to"]) == (
                s.cliente_id, s.cliente_id, TO, s.cliente_id, TO), (s, m)
            assert data["message_id"] == m["message_id"], (s, m)
            previous = ok_ids.setdefault(s.text, data["message_id"])
            assert previous == data["message_id"], f"two different message ids for {s.text}"
        elif not ambiguous(s):
            # Only a definite failure when no other attempt with this key succeeded or was ambiguous.
            others = [o for o in attempts if o.text == s.text and o is not s]
            if all(o.status != 200 and not ambiguous(o) for o in others):
                assert not found, f"{s.code} but the message went out: {s.text}"
    attempted = {s.text for s in attempts}
    strays = set(by_text) - attempted
    assert not strays, f"outbox holds messages nobody sent: {sorted(strays)[:5]}"
    return outcomes
