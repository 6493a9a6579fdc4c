"""Against real WhatsApp: pair a phone, send a text, resume without a QR. Skipped unless LEADMASTER_LIVE=1.

See docs/whatsmeow.md ("Live test") for the environment variables and what to do on the phone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leadmaster.contract.status import SessionStatus
from leadmaster.session_manager.qr import terminal

from .conftest import Recorder, make_engine

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(os.environ.get("LEADMASTER_LIVE") != "1", reason="needs a phone: set LEADMASTER_LIVE=1"),
]

S = SessionStatus


async def test_pair_send_and_resume_with_a_real_phone(tmp_path):
    data_dir = Path(os.environ.get("LEADMASTER_LIVE_DATA_DIR") or tmp_path)
    to = os.environ["LEADMASTER_LIVE_TO"]  # digits of the recipient, e.g. 5491123456789
    phone = os.environ.get("LEADMASTER_LIVE_PHONE")  # pair by code instead of QR when set
    engine = make_engine(data_dir, os.environ.get("SESSION_MANAGER_STORE_URL") or None, proxy=None, test_hooks=False)
    rec = Recorder()
    await engine.start(rec)
    try:
        await engine.connect("live")
        await rec.wait(lambda: any(s in (S.QR_REQUIRED, S.READY) for s, _ in rec.statuses("live")), within=60)
        if rec.statuses("live")[-1][0] is S.QR_REQUIRED:
            if phone:
                code = await engine.pair_code("live", phone)
                print(f"\nOn the phone: WhatsApp > Linked devices > Link with phone number > {code}", flush=True)
            else:
                payload, _ = rec.of("live", "qr")[-1]
                print("\n" + terminal(payload) + "\nScan with WhatsApp > Linked devices.", flush=True)
        await rec.wait_status("live", S.READY, within=180)
        account = await engine.account("live")
        assert account is not None and account.phone

        sent = await engine.send_text("live", f"{to}@s.whatsapp.net", "LeadMaster live test")
        assert sent.message_id and sent.timestamp.year >= 2024
        # The server's ack comes back as a status of that very message ID (later: DELIVERED, READ).
        await rec.wait(lambda: any(m == sent.message_id for m, _, _ in rec.of("live", "message_status")), within=30)

        # Resume from the store: no QR the second time.
        await engine.disconnect("live")
        rec.events.clear()
        await engine.connect("live")
        await rec.wait_status("live", S.READY, within=60)
        assert not rec.of("live", "qr")

        if os.environ.get("LEADMASTER_LIVE_LOGOUT") == "1":
            await engine.logout("live")
            assert engine.credentials.stored("live") is None
    finally:
        await engine.stop()
