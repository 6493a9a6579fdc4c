"""One hop to the owning node: the only outbound HTTP of the session-manager, and only to its peers.

The request goes out as it came in (method, path, query, headers, body) plus `X-LeadMaster-Forwarded-By`,
so the owner serves it itself and never forwards it again; the owner's status, headers and body come back
unchanged. A peer that cannot be reached answers as an instance in transit (503 SESSION_NOT_READY); a send
whose answer was lost after it reached the owner may have gone out, so it is SEND_OUTCOME_UNKNOWN.
"""

from __future__ import annotations

import aiohttp

from leadmaster.session_manager import errors

FORWARDED_HEADER = "x-leadmaster-forwarded-by"
# Per-hop headers (RFC 9110 §7.6.1) and the ones each node sets itself on the way out.
_DROP_OUT = frozenset({b"host", b"content-length", b"connection", b"keep-alive", b"transfer-encoding",
                       b"te", b"upgrade", b"expect", b"proxy-connection", FORWARDED_HEADER.encode()})
_DROP_BACK = frozenset({b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"date",
                        b"server", b"x-request-id"})


class Forwarder:
    def __init__(self, node_id: str, timeout_seconds: float) -> None:
        self.node_id = node_id
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=2.0)
        self._http: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=self.timeout,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60),
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def forward(
        self, base_url: str, method: str, raw_path: str, headers: list[tuple[bytes, bytes]], body: bytes,
        is_send: bool, instance_id: str,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """(status, headers, body) of the owner's answer; raises a ServiceError when there is none."""
        out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k.lower() not in _DROP_OUT]
        out.append((FORWARDED_HEADER, self.node_id))
        try:
            async with self._client().request(
                method, base_url.rstrip("/") + raw_path, headers=out, data=body, allow_redirects=False
            ) as resp:
                payload = await resp.read()
                back = [(k, v) for k, v in resp.raw_headers if k.lower() not in _DROP_BACK]
                return resp.status, back, payload
        except aiohttp.ClientConnectorError:
            # Never connected: the request certainly did not run there.
            raise _unreachable(instance_id, base_url) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if is_send:
                raise errors.SendOutcomeUnknownError(
                    f"The node running {instance_id!r} ({base_url}) stopped answering during the send "
                    f"({type(exc).__name__}): it may have gone out. Retrying with the same Idempotency-Key "
                    "will not send it twice."
                ) from None
            raise _unreachable(instance_id, base_url) from None


def _unreachable(instance_id: str, base_url: str) -> errors.SessionNotReadyError:
    return errors.SessionNotReadyError(
        f"The node running {instance_id!r} ({base_url}) cannot be reached; another node takes the instance "
        "over when its lease expires. Retry shortly.",
        headers={"Retry-After": "2"},
        status="DISCONNECTED",
    )
