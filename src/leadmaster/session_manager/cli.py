"""`session-manager` console script: run the service, or print the current QR in the terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

from pydantic import ValidationError

from leadmaster.common.files import private_umask
from leadmaster.common.logs import configure_logging
from leadmaster.common.settings import describe_error


def _settings_or_exit() -> object:
    from leadmaster.session_manager.cluster.config import ClusterSettings
    from leadmaster.session_manager.config import Settings

    try:
        ClusterSettings()  # checked here too, so that a bad cluster setting is one clear line, not a traceback
        return Settings()
    except ValidationError as exc:
        # One line naming each bad variable and its value, as the hub does (CONTRACT §3.1); exit 2 = bad config.
        print(f"session-manager: {describe_error(exc, Settings)}", file=sys.stderr)
        sys.exit(2)


def run_service() -> None:
    from leadmaster.common.server import serve
    from leadmaster.session_manager.app import create_app
    from leadmaster.session_manager.config import Settings

    private_umask()  # before anything opens a file: the store is created by create_app below
    settings = _settings_or_exit()
    assert isinstance(settings, Settings)
    configure_logging("session-manager", settings.log_level, settings.log_format)
    app = create_app(settings)
    serve(app, settings.host, settings.port, settings.request_read_timeout)


def show_qr(instance_id: str | None, url: str | None, watch: bool) -> int:
    """Fetch the QR from a running session-manager and draw it; with --watch, redraw as codes rotate."""
    from leadmaster.session_manager import qr

    base = url or f"http://127.0.0.1:{os.environ.get('PORT', '3001')}"
    path = f"/api/session-manager/sessions/{instance_id}/qr" if instance_id else "/qr"
    headers = {}
    if key := os.environ.get("SESSION_MANAGER_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    last = None
    while True:
        req = urllib.request.Request(base + path, headers=headers)  # noqa: S310 - operator-given URL
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
                body = json.load(resp)
        except (urllib.error.URLError, OSError) as exc:
            print(f"session-manager qr: cannot reach {base + path}: {exc}", file=sys.stderr)
            return 1
        if body.get("status") == "QR_AVAILABLE":
            if body["raw"] != last:
                last = body["raw"]
                print(qr.terminal(last))
                print(f"Scan with WhatsApp > Linked devices. Expires at {body['expires_at']}.", flush=True)
        else:
            print(f"No QR to show: the session is {body.get('session_status')}.", flush=True)
            if not watch or body.get("session_status") == "READY":
                return 0 if body.get("session_status") == "READY" else 1
        if not watch:
            return 0
        time.sleep(2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="session-manager", description="LeadMaster WhatsApp session-manager")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (default)")
    qr_cmd = sub.add_parser("qr", help="print the current QR code of a running session-manager")
    qr_cmd.add_argument("--instance", help="instance_id (default: the single-admin instance)")
    qr_cmd.add_argument("--url", help="session-manager base URL (default http://127.0.0.1:$PORT)")
    qr_cmd.add_argument("--watch", action="store_true", help="keep redrawing as codes rotate, until READY")
    args = parser.parse_args(argv)
    if args.command == "qr":
        sys.exit(show_qr(args.instance, args.url, args.watch))
    run_service()
