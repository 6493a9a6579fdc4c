"""Test hooks of the worker: drive neonize's own callback entry points, from a foreign thread, as Go does.

Reachable only when the engine was built with `test_hooks=True` (the worker refuses `test_*` operations
otherwise), so production traffic cannot fake a pairing or a logout.
"""

from __future__ import annotations

import base64
import ctypes
import time
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from neonize._binder import func_callback_bytes, func_string
from neonize.aioze import events as neonize_events
from neonize.events import EVENT_TO_INT
from neonize.proto.Neonize_pb2 import Device

from leadmaster.session_manager.engines.whatsmeow.sessions import Client


def _event_class(name: str) -> type[Any]:
    if name == "Device":
        device: type[Any] = Device
        return device
    cls = getattr(neonize_events, name, None)
    if cls is None or cls not in EVENT_TO_INT:
        raise ValueError(f"not a neonize event: {name!r}")
    found: type[Any] = cls
    return found


def drive(client: Client, steps: list[dict[str, Any]]) -> None:
    """Run `steps` against the client's real callbacks: qr, login_status, event (+fields/raw_b64), sleep."""
    uuid = ctypes.create_string_buffer(client.uuid)
    # The very callback objects neonize hands to Go in connect().
    qr_cb = func_string(client._NewAClient__onQr)
    login_cb = func_string(client._NewAClient__onLoginStatus)
    event_cb = func_callback_bytes(client.event.execute)
    for step in steps:
        if "sleep" in step:
            time.sleep(float(step["sleep"]))
        elif "qr" in step:
            buf = ctypes.create_string_buffer(str(step["qr"]).encode())
            qr_cb(ctypes.addressof(uuid), ctypes.addressof(buf))
        elif "login_status" in step:
            buf = ctypes.create_string_buffer(str(step["login_status"]).encode())
            login_cb(ctypes.addressof(uuid), ctypes.addressof(buf))
        elif "event" in step:
            cls = _event_class(str(step["event"]))
            if "raw_b64" in step:
                raw = base64.b64decode(step["raw_b64"])
            else:
                raw = json_format.ParseDict(step.get("fields", {}), cls()).SerializeToString()
            data = ctypes.create_string_buffer(raw, len(raw) or 1)
            event_cb(client.uuid, ctypes.addressof(data), len(raw), EVENT_TO_INT[cls])
        else:
            raise ValueError(f"unknown test step {step!r}")
