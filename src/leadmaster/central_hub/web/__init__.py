"""The dashboard served by the hub at `/` (issue 5).

Server-rendered HTML shells plus a little vanilla JS that calls the hub's own JSON API (the contract) with
a bearer token kept in sessionStorage. Nothing here talks to WhatsApp or the session-manager directly,
except the sandbox helpers in `sandbox.py`, which go through the hub's session-manager client.
"""

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from leadmaster.central_hub.web import sandbox
from leadmaster.central_hub.web.pages import STATIC_DIR, router


def mount_dashboard(app: FastAPI) -> None:
    """Attach the dashboard's pages and static files to the hub's app."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    app.include_router(sandbox.router)
