"""The hook for the real-engine variant of the cluster test (CONTRACT §4 with SESSION_MANAGER_ENGINE=whatsmeow).

What it will prove, offline: three nodes on one PostgreSQL with `SESSION_MANAGER_ENGINE=whatsmeow` and
`SESSION_MANAGER_WHATSMEOW_PROXY=http://127.0.0.1:1`; instances with credentials stored in the shared
PostgreSQL store (planted through the worker's test hooks); SIGKILL a node; each of its instances gets a new
owner (X-Served-By changes, lease token bumped) and that owner redials from the stored credentials — offline
the dial fails, so the instance shows ERROR / CONNECT_FAILED on the new node, never QR_REQUIRED (no new QR).

The cluster side needs nothing more: `ClusterStack.start(**sm_env)` takes the engine settings, and a new
owner resumes a paired instance through `Engine.connect` (cluster/coordinator.py `_run`). What is missing is a
way to plant stored whatsmeow credentials in the shared store from a test, which the Go whatsmeow worker
being written now provides; this module runs once `PLANT_CREDENTIALS` below finds it.
"""

from __future__ import annotations

import importlib.util

import pytest

PLANT_CREDENTIALS = "leadmaster.session_manager.engines.whatsmeow.fixtures"

if importlib.util.find_spec(PLANT_CREDENTIALS) is None:
    pytest.skip(f"real-engine cluster test waits for the whatsmeow worker's credential fixtures "
                f"({PLANT_CREDENTIALS}); the sandbox variant runs in test_failover.py", allow_module_level=True)
