"""`/docs` (Swagger UI) and `/redoc` served from this machine, so they work offline (issue 9, item 2).

FastAPI's own pages load Swagger UI and ReDoc from a CDN: without the internet they stay blank. The
same pages are built here with FastAPI's `get_swagger_ui_html` / `get_redoc_html`, pointed at the
assets that the `fastapi-offline` package ships (Swagger UI 5, which reads OpenAPI 3.1, and ReDoc 2;
MIT wrapper, Apache-2.0 / MIT assets) and served by a StaticFiles mount under DOCS_ASSETS_PATH. Only
its files are used, not its FastAPI factory: `create_app` keeps building the app itself.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH: Final = "/docs"
REDOC_PATH: Final = "/redoc"
DOCS_ASSETS_PATH: Final = "/docs-assets"
ASSETS_DIR: Final = Path(str(files("fastapi_offline") / "static"))
SWAGGER_JS: Final = "swagger-ui-bundle.js"
SWAGGER_CSS: Final = "swagger-ui.css"
REDOC_JS: Final = "redoc.standalone.js"
FAVICON: Final = "favicon.png"


def install_docs(app: FastAPI) -> None:
    """Adds /docs, /redoc and the asset mount to an app created with `docs_url=None, redoc_url=None`."""
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{DOCS_ASSETS_PATH}/{name}"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{request.scope.get('root_path', '')}{app.openapi_url}",
            title=f"{app.title} — Swagger UI",
            swagger_js_url=asset(request, SWAGGER_JS),
            swagger_css_url=asset(request, SWAGGER_CSS),
            swagger_favicon_url=asset(request, FAVICON),
        )

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            openapi_url=f"{request.scope.get('root_path', '')}{app.openapi_url}",
            title=f"{app.title} — ReDoc",
            redoc_js_url=asset(request, REDOC_JS),
            redoc_favicon_url=asset(request, FAVICON),
            with_google_fonts=False,
        )
