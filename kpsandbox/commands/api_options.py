"""The options every HTTP-API command of the CLI shares: the tenant's key and the API's URL."""

from __future__ import annotations

from typing import Final

import typer

from kpsandbox.console import settings
from producers.api_client import API_KEY_ENV, ApiClient, api_base_url

API_URL_ENV: Final = "KPSANDBOX_API_URL"

API_KEY_OPTION: Final = typer.Option(
    "",
    "--api-key",
    envvar=API_KEY_ENV,
    show_default=False,
    help=f"A tenant's secret key, sk_test_… (or ${API_KEY_ENV}); `kpsandbox tenants create NAME` makes one.",
)
API_URL_OPTION: Final = typer.Option(
    None,
    "--api-url",
    envvar=API_URL_ENV,
    show_default=False,
    help=f"The API's base URL (or ${API_URL_ENV}); default: KPSANDBOX_API_HOST and KPSANDBOX_API_PORT.",
)


def api_client(api_key: str, api_url: str | None) -> ApiClient:
    """A client of the API at `api_url` (or where the settings say it listens), as the key's tenant."""
    if api_url is None:
        config = settings()
        api_url = api_base_url(config.api_host, config.api_port)
    return ApiClient(api_url, api_key)
