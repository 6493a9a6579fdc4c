"""PostgreSQL URLs: no TLS to a server on this host unless the URL asks for it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit

LOOPBACK = ("localhost", "127.0.0.1", "::1")


def plain_on_loopback(url: str) -> str:
    """`url` with `sslmode=disable` added when it is a PostgreSQL URL (`postgres…://`) whose host is this
    machine and that names no `sslmode`; any other URL as it is.

    libpq's default (`prefer`) encrypts even a loopback connection when the server offers TLS, as Debian's
    does out of the box: every statement then costs both sides a TLS record for nothing a local socket needs.
    A server on another host keeps whatever the URL (or libpq's default) says.
    """
    parts = urlsplit(url)
    if (not parts.scheme.startswith("postgres") or "sslmode" in parse_qs(parts.query)
            or (parts.hostname or "localhost") not in LOOPBACK):
        return url
    # Appended as text: re-encoding the query could change what libpq reads (a `+`, a space).
    return urlunsplit(parts._replace(query=f"{parts.query}&sslmode=disable" if parts.query else "sslmode=disable"))
