"""`python -m producers.api`: the HTTP API on KPSANDBOX_API_HOST:KPSANDBOX_API_PORT (uvicorn).

Everything that can fail for a reason the user can fix fails before the server starts, as two
lines on stderr and exit status 2: a busy port (the socket is bound here, then handed to uvicorn),
an unreachable PostgreSQL or Kafka, a missing topic, an unreadable deployment key. SIGTERM or
Ctrl-C stops it gracefully: requests in flight finish, then the resources are closed.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Coroutine
from typing import Any, Final

import uvicorn
import uvloop

from infra import collector
from infra.errors import SandboxError, run_main
from infra.settings import Settings, load_settings
from producers.api.app import create_app
from producers.api.resources import Resources

LISTEN_BACKLOG: Final = 2048
GRACEFUL_SHUTDOWN_S: Final = 10
# The collector while serving (CPython: 700, 10, 10), everything alive at start frozen out of its sight
# (infra/collector.py): with the defaults it re-walked the app's ~90,000 startup objects again and again,
# 0.05–0.1 ms of CPU per GET (bench/RESULTS.md, "API"). Cycles (a raised exception's frames) are still
# collected, every 10,000 new containers.
GC_THRESHOLDS: Final = (10_000, 10, 10)


def bind_socket(settings: Settings) -> socket.socket:
    """A socket bound to the API's host and port; SandboxError naming the setting when it is taken."""
    host, port = settings.api_host, settings.api_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets; without it every response
    # waited ~40 ms for the client's delayed ACK (tests/unit/test_api_socket.py, bench/api.py).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise SandboxError(
                f"port {port} on {host} is in use, so the API cannot listen there",
                "stop what listens there (see `ss -ltnp`), or choose another port with KPSANDBOX_API_PORT",
            ) from error
        raise SandboxError(
            f"the API cannot listen on {host}:{port}: {error.strerror or error}",
            "check KPSANDBOX_API_HOST (an address of this machine, e.g. 127.0.0.1 or 0.0.0.0)",
        ) from error
    sock.set_inheritable(True)
    return sock


async def serve(settings: Settings) -> None:
    """Binds, opens the resources, then serves until SIGTERM or SIGINT."""
    sock = bind_socket(settings)
    try:
        resources = await Resources.open(settings)
        app = create_app(settings, resources=resources)  # its lifespan closes them
        config = uvicorn.Config(
            app,
            lifespan="on",
            backlog=LISTEN_BACKLOG,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            server_header=False,
        )
        # uvicorn names its address only when it binds the socket itself.
        logging.getLogger("uvicorn.error").info(
            "KP sandbox API on http://%s:%d (OpenAPI at /openapi.json, docs at /docs)",
            settings.api_host,
            settings.api_port,
        )
        with collector.collecting_rarely(GC_THRESHOLDS):
            await uvicorn.Server(config).serve(sockets=[sock])
    finally:
        sock.close()


def run_server(server: Coroutine[Any, Any, None]) -> None:
    """Runs a server coroutine on uvloop (libuv's event loop: less CPU per request than asyncio's own).
    uvicorn parses HTTP with httptools when it is installed, as it is here (pyproject.toml)."""
    uvloop.run(server)


def main() -> None:
    """Entry point of `python -m producers.api`."""
    run_main(lambda: run_server(serve(load_settings())))


if __name__ == "__main__":
    main()
