"""bench/webhooks.py's receiver, the end point of every delivery latency it prints: a real HTTP/1.1 server
on a local port, answering keep-alive requests, 500 on /fail, and the first arrival of each webhook-id."""

from __future__ import annotations

import asyncio
import json

from bench import webhooks


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[bytes, bytes]:
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head.split(b"\r\n")[0], await asyncio.wait_for(reader.readexactly(length), 5)


def _post(path: str, webhook_id: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: t\r\nwebhook-id: {webhook_id}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def test_the_receiver_answers_on_one_connection_and_keeps_each_webhook_ids_first_arrival() -> None:
    webhooks.ARRIVALS.clear()
    server = await asyncio.get_running_loop().create_server(webhooks.Receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        status, body = await _exchange(reader, writer, _post("/hook", "evt_a", b'{"x":1}'))
        assert (status, body) == (b"HTTP/1.1 200 OK", b"ok")
        first = webhooks.ARRIVALS["evt_a"]
        await asyncio.sleep(0.01)
        assert (await _exchange(reader, writer, _post("/hook", "evt_a", b"{}")))[0] == b"HTTP/1.1 200 OK"
        status, _ = await _exchange(reader, writer, _post("/fail", "evt_b", b"{}"))
        assert status == b"HTTP/1.1 500 Internal Server Error"
        second = webhooks.ARRIVALS["evt_b"]
        _, arrivals = await _exchange(reader, writer, b"GET /arrivals HTTP/1.1\r\nhost: t\r\n\r\n")
        assert json.loads(arrivals) == {"evt_a": first, "evt_b": second}  # a retry keeps the first
        assert webhooks.ARRIVALS == {}  # read, then forgotten: each phase (and round) reads only its own
        await _exchange(reader, writer, _post("/hook", "evt_c", b"{}"))
        _, arrivals = await _exchange(reader, writer, b"GET /arrivals HTTP/1.1\r\nhost: t\r\n\r\n")
        assert list(json.loads(arrivals)) == ["evt_c"]
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
        webhooks.ARRIVALS.clear()
