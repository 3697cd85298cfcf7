"""The API's listening socket gives every connection TCP_NODELAY (found by bench/api.py).

asyncio sets TCP_NODELAY on a transport only when its socket's protocol is IPPROTO_TCP; a socket made
as socket(AF_INET, SOCK_STREAM) has protocol 0, so each response's body waited for the client's
delayed ACK (~40 ms per request on Linux: 22 requests/s on one connection to a constant endpoint).
"""

from __future__ import annotations

import asyncio
import socket

from infra.settings import Settings
from producers.api.__main__ import bind_socket
from tests.integration.test_ledger_support import free_port


async def test_accepted_connections_have_tcp_nodelay() -> None:
    """A connection accepted on bind_socket's socket through asyncio has TCP_NODELAY set."""
    sock = bind_socket(Settings(api_host="127.0.0.1", api_port=free_port()))
    nodelay: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server_side = writer.get_extra_info("socket")
        nodelay.append(server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        for _ in range(100):  # bounded: the handler runs within a few loop turns
            if nodelay:
                break
            await asyncio.sleep(0.01)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert nodelay and nodelay[0] != 0, "TCP_NODELAY is off: create the socket with IPPROTO_TCP"
