"""`/docs` and `/redoc` of both services, with every asset served by the service itself (issue 11 row 9).

FastAPI's defaults pull unpinned swagger-ui and redoc from a CDN, without integrity and without a CSP, on the
origin where the dashboard keeps its token. Here the assets come from the `fastapi-offline` package (pinned in
uv.lock), the pages have no inline script, and a CSP like the dashboard's allows only this origin.
"""

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
_STATIC = Path(str(files("fastapi_offline") / "static"))
# Swagger UI and Redoc set inline style attributes and Redoc runs a blob: worker; scripts stay 'self' only.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "worker-src 'self' blob:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}

_SWAGGER_INIT = """"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, showExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
"""


def _page(title: str, head: str, body: str) -> HTMLResponse:
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="{ASSETS}/favicon.png">{head}</head><body>{body}</body></html>')
    return HTMLResponse(html, headers={**HEADERS, "Cache-Control": "no-store"})


def install_docs(app: FastAPI) -> None:
    """Serve /docs (Swagger UI) and /redoc from packaged assets; build the app with docs_url=redoc_url=None."""
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> Response:
        return _page(f"{title} - Swagger UI", f'<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">',
                     f'<div id="swagger-ui"></div><script src="{ASSETS}/swagger-ui-bundle.js"></script>'
                     f'<script src="{ASSETS}/swagger-init.js"></script>')

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> Response:
        return _page(f"{title} - ReDoc", "",
                     f'<redoc spec-url="/openapi.json"></redoc><script src="{ASSETS}/redoc.standalone.js"></script>')

    @app.get(f"{ASSETS}/swagger-init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(_SWAGGER_INIT, media_type="text/javascript", headers=HEADERS)

    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")
