"""A minimal `/metrics` HTTP server on the caller's asyncio event loop, for a private registry.

Both exporters (the metrics consumer and the ledger) use it. It runs on the consumer's own event
loop rather than prometheus-client's thread, so a scrape never sees state half-updated by a batch,
and a loop that is blocked stops answering scrapes too (Prometheus then reports the target down).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest

from infra.errors import SandboxError

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_HEAD_BYTES_MAX: Final = 8_192
REQUEST_TIMEOUT_S: Final = 5.0
HOST_SETTING: Final = "KPSANDBOX_METRICS_HOST"


async def serve_metrics(
    registry: CollectorRegistry, *, host: str, port: int, what: str, port_setting: str, holder: str
) -> asyncio.Server:
    """Starts serving GET /metrics (and /) on host:port; port 0 picks a free port.

    Raises SandboxError naming the port and `port_setting` when the port is taken, and naming
    KPSANDBOX_METRICS_HOST when the host is not an address of this machine. `what` names the
    port in those messages (e.g. "the ledger's metrics port"), `holder` the likely squatter.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            path = head[:REQUEST_HEAD_BYTES_MAX].split(b" ", 2)[1] if b" " in head else b"/"
            if path.split(b"?")[0] in (b"/metrics", b"/"):
                body, status = generate_latest(registry), b"200 OK"
            else:
                body, status = b"not found; try /metrics\n", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: " + CONTENT_TYPE.encode()
                + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
            )  # fmt: skip
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a client that hangs up or sends garbage gets nothing; the next scrape starts afresh
        finally:
            writer.close()

    try:
        return await asyncio.start_server(handle, host, port, reuse_address=True)
    except socket.gaierror as error:
        raise SandboxError(
            f"cannot serve {what}: the host '{host}' does not resolve",
            f"set {HOST_SETTING} to an address of this machine (127.0.0.1, or 0.0.0.0 for every interface)",
        ) from error
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise SandboxError(
                f"{what} {port} is already in use",
                f"stop whatever listens there ({holder}) or set {port_setting}",
            ) from error
        if error.errno == errno.EADDRNOTAVAIL:
            raise SandboxError(
                f"cannot serve {what}: '{host}' is not an address of this machine",
                f"set {HOST_SETTING} to 127.0.0.1, or 0.0.0.0 for every interface",
            ) from error
        raise


def bound_port(server: asyncio.Server) -> int:
    """The port a started server listens on (useful after asking for port 0)."""
    return int(server.sockets[0].getsockname()[1])
