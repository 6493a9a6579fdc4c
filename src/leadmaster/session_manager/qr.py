"""QR payload → image, once per payload (codes rotate every 20 s; every poll between asks again)."""

import base64
import functools
import io

import segno


@functools.lru_cache(maxsize=512)
def png(payload: str) -> bytes:
    buf = io.BytesIO()
    # Scale 6 with the standard 4-module quiet zone: phones read it from a laptop screen at arm's length.
    segno.make_qr(payload, error="m").save(buf, kind="png", scale=6, border=4)
    return buf.getvalue()


@functools.lru_cache(maxsize=512)
def svg(payload: str) -> bytes:
    buf = io.BytesIO()
    segno.make_qr(payload, error="m").save(buf, kind="svg", scale=6, border=4, xmldecl=True)
    return buf.getvalue()


@functools.lru_cache(maxsize=512)
def png_data_url(payload: str) -> str:
    return "data:image/png;base64," + base64.b64encode(png(payload)).decode()


def terminal(payload: str) -> str:
    """The QR drawn with Unicode half blocks, for `session-manager qr` on a server without a browser."""
    buf = io.StringIO()
    segno.make_qr(payload, error="m").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()
