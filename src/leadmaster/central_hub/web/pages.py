"""The dashboard's HTML pages: shells that the JS in static/js fills from the hub's JSON API."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")

# The pages load only their own files and show the QR as a data: URL; a strict policy makes an injected
# <script> from a cliente name or log line inert even if an escaping mistake slipped in.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _asset_version() -> str:
    # Cache-busts /static after an upgrade without a build step: newest mtime of the shipped files.
    newest = max((p.stat().st_mtime for p in STATIC_DIR.rglob("*") if p.is_file()), default=0.0)
    return str(int(newest))


ASSET_VERSION = _asset_version()

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, page: str, **context: object) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {"page": page, "v": ASSET_VERSION, **context},
        headers=_HEADERS,
    )


@router.get("/", response_class=HTMLResponse)
async def clientes_page(request: Request) -> Response:
    """Dashboard home: the clientes the signed-in user may see."""
    return _page(request, "clientes.html", "clientes")


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    """Sign-in form."""
    return _page(request, "login.html", "login")


@router.post("/login", response_class=HTMLResponse)
async def login_without_js(request: Request) -> Response:
    """Reached only when the browser ran no JS: the form posts here instead of calling the API."""
    return _page(request, "login.html", "login", nojs=True)


@router.get("/clientes/{cliente_id}", response_class=HTMLResponse)
async def cliente_page(request: Request, cliente_id: int) -> Response:
    """One cliente: link WhatsApp (QR or pairing code), send a test message, interaction log."""
    return _page(request, "cliente.html", "cliente", cliente_id=cliente_id)


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request) -> Response:
    """Admin: create clientes, users and API keys."""
    return _page(request, "admin.html", "admin")


@router.get("/clientes", response_class=HTMLResponse)
async def clientes_alias() -> Response:
    return RedirectResponse("/", status_code=307)
