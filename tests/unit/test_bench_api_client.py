"""bench/api.py's keep-alive client against a real local server that, as uvicorn does after
`timeout_keep_alive`, closes a connection left idle: the next request must go on a fresh connection,
not fail on the closed one (it did: (b) counted such requests as errors)."""

from __future__ import annotations

import asyncio

from bench.api import Client

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ANSWER)
        await writer.drain()
        writer.close()  # keeps no connection alive, as after an idle timeout

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Client(port, {})
    try:
        assert await client.call("GET", "/") == (200, b"ok")
        await asyncio.sleep(0.05)  # the server's FIN has arrived
        assert await client.call("GET", "/") == (200, b"ok")
    finally:
        client.close()
        server.close()
        await server.wait_closed()
