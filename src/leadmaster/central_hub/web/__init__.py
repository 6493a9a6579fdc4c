"""The dashboard served by the hub at `/` (issue 5). Stub until the dashboard lands."""

from fastapi import FastAPI


def mount_dashboard(app: FastAPI) -> None:
    """Attach the dashboard's pages and static files to the hub's app."""
