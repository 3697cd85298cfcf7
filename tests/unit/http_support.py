"""A real HTTP/1.1 server on a free local port for the webhook dispatcher's unit tests: it reads each
request whole and lets the test write the answer, byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

Answerer = Callable[[int, asyncio.StreamWriter], Awaitable[bool]]  # (request number, writer) → keep the connection


@dataclass
class Seen:
    """What the server saw: connections opened, and each request's first line, headers and body."""

    connections: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def server(answer: Answerer) -> AsyncIterator[tuple[str, Seen]]:
    """A real HTTP/1.1 server on a free local port: reads each request whole, lets `answer` write the
    response and say whether to keep the connection for the next request."""
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        try:
            for _ in range(100):  # requests per connection in these tests
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen.requests.append((lines[0], headers, body))
                if not await answer(len(seen.requests), writer):
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    listening = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        listening.close()
