"""The plan's boundaries, checked on every test run: import contracts and no outbound calls."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    exe = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "broken" in proc.stdout and ", 0 broken" in proc.stdout


def test_central_hub_imports_no_whatsapp_library_at_runtime() -> None:
    code = (
        "import sys, leadmaster.central_hub.app, leadmaster.central_hub.cli;"
        "bad = [m for m in sys.modules if m.startswith(('neonize', 'leadmaster.session_manager'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_python_whatsapp_library_is_installed() -> None:
    """WhatsApp lives only in the Go engine worker (engine-worker/), a separate process."""
    import importlib.util

    assert importlib.util.find_spec("neonize") is None


def test_session_manager_code_calls_nothing_but_whatsapp() -> None:
    """No HTTP client library in the session-manager: it never calls the hub, webhooks or anything else."""
    src = ROOT / "src" / "leadmaster" / "session_manager"
    offenders = []
    for path in src.rglob("*.py"):
        text = path.read_text()
        libs = ("import aiohttp", "import httpx", "import requests", "from aiohttp", "from httpx", "urllib.request")
        for lib in libs:
            # The `qr` command reads its own service's /qr; a cluster node forwards to its peers only (§4).
            allowed = path.name == "cli.py" or path.relative_to(src).as_posix() == "cluster/forwarding.py"
            if lib in text and not allowed:
                offenders.append(f"{path.relative_to(ROOT)}: {lib}")
    assert offenders == []
