"""/docs and /redoc work offline: their pages name only this server's URLs, and every asset they
load is served here with a script, style or image type (issue 9, item 2)."""

from __future__ import annotations

import re
from typing import Final

import httpx
import pytest

from infra.settings import Settings
from producers.api.app import create_app

# Every URL a page makes the browser load: src/href attributes, Swagger UI's `url:` and ReDoc's spec-url.
LOADED_URL: Final = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|\burl: '([^']*)'""")
ASSET_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture
async def client() -> httpx.AsyncClient:
    """A client on the app in-process (no lifespan: the pages need no database or Kafka)."""
    transport = httpx.ASGITransport(app=create_app(Settings()))
    return httpx.AsyncClient(transport=transport, base_url="http://sandbox.test")


def _loaded_urls(html: str) -> list[str]:
    return [a or b for a, b in LOADED_URL.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_local_assets(client: httpx.AsyncClient, page: str) -> None:
    """The page names only same-server paths (no CDN, no fonts), and each answers 200 with its type."""
    async with client:
        response = await client.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        urls = _loaded_urls(response.text)
        assert "/openapi.json" in urls, urls
        assets = [url for url in urls if url != "/openapi.json"]
        assert any(url.endswith(".js") for url in assets), urls  # the page is more than a shell
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        for url in assets:
            asset = await client.get(url)
            suffix = url[url.rindex(".") :]
            assert asset.status_code == 200, url
            assert asset.headers["content-type"].startswith(ASSET_TYPES[suffix]), (url, asset.headers)
            assert len(asset.content) > 1_000, url


async def test_swagger_ui_reads_openapi_3_1(client: httpx.AsyncClient) -> None:
    """The bundled Swagger UI is version 5 or later (4 cannot render an OpenAPI 3.1 document)."""
    async with client:
        page = (await client.get("/docs")).text
        script = next(url for url in _loaded_urls(page) if url.endswith("swagger-ui-bundle.js"))
        bundle = (await client.get(script)).text
    assert "SwaggerUIBundle" in bundle
    assert re.search(r'"5\.\d+\.\d+"', bundle), "expected Swagger UI 5.x in the bundle"
