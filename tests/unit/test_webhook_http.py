"""The dispatcher's HTTP/1.1 client (consumers/webhooks/http.py) against real local servers: keep-alive,
a connection the server closed, answers of every framing, interim answers, and what it refuses."""

from __future__ import annotations

import asyncio

import pytest

from consumers.webhooks import http
from consumers.webhooks.http import HttpClient, HttpError, Target
from tests.unit.http_support import Answerer, server


def ok(body: bytes = b"ok") -> Answerer:
    async def answer(_: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        return True

    return answer


def client(head_bytes: int = 512, idle_per_origin_max: int = 4) -> HttpClient:
    return HttpClient(user_agent="test-agent/1", head_bytes=head_bytes, idle_per_origin_max=idle_per_origin_max)


async def test_posts_share_one_keep_alive_connection_and_send_what_they_were_given() -> None:
    """Three POSTs in a row: one connection; each request carries the path, headers and body given."""
    async with server(ok()) as (url, seen), client() as session:
        answers = [await session.post(f"{url}/hook?x=1", b'{"n":%d}' % n, {"webhook-id": f"evt_{n}"}) for n in range(3)]
    assert answers == [(200, b"ok")] * 3
    assert seen.connections == 1
    first_line, headers, body = seen.requests[0]
    assert first_line == "POST /hook?x=1 HTTP/1.1" and body == b'{"n":0}'
    assert headers["webhook-id"] == "evt_0" and headers["user-agent"] == "test-agent/1"
    assert headers["content-type"] == "application/json" and headers["host"] == url.removeprefix("http://")


async def test_a_keep_alive_connection_the_server_closed_is_replaced_and_the_post_sent_again() -> None:
    """The server keeps the connection after its first answer, then closes it when the next request
    arrives, without a byte of an answer (its idle timeout fired): that POST is sent again on a new
    connection and answered. Nothing is lost; the receiver saw it twice (it deduplicates on webhook-id)."""

    async def drop_the_second(n: int, writer: asyncio.StreamWriter) -> bool:
        if n == 2:
            return False
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        return True

    async with server(drop_the_second) as (url, seen), client() as session:
        assert await session.post(f"{url}/a", b"{}", {}) == (200, b"ok")
        assert await session.post(f"{url}/b", b"{}", {}) == (200, b"ok")
    assert [line for line, _, _ in seen.requests] == ["POST /a HTTP/1.1", "POST /b HTTP/1.1", "POST /b HTTP/1.1"]
    assert seen.connections == 2


async def test_a_connection_closed_after_part_of_an_answer_is_not_sent_again() -> None:
    """Once a byte of the answer arrived the server has the request: a cut answer is an error, not a resend."""

    async def cut(_: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-le")
        return False

    async with server(cut) as (url, seen), client() as session:
        with pytest.raises(HttpError, match="closed before an answer"):
            await session.post(f"{url}/hook", b"{}", {})
    assert len(seen.requests) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
            (201, b"abcdefg"),
        ),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end", (200, b"until the end")),
        (b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", (204, b"")),
        (b"HTTP/1.1 503 X\r\ncontent-length: 2000\r\n\r\n" + b"y" * 2000, (503, b"y" * 16)),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc", (200, b"abc")),
    ],
    ids=["chunked", "until-close", "interim-then-final", "long-body-cut-to-head-bytes", "body-cut-short-by-close"],
)
async def test_every_framing_of_an_answer_gives_its_status_and_first_bytes(
    raw: bytes, expected: tuple[int, bytes]
) -> None:
    """Chunked, read-until-close, an interim 1xx before the final answer, and a body longer than kept."""

    async def answer(_: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return False

    async with server(answer) as (url, _), client(head_bytes=16) as session:
        assert await session.post(f"{url}/hook", b"{}", {}) == expected


async def test_an_answer_that_is_not_http_or_has_huge_headers_is_an_http_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that are not an HTTP answer, or headers past HEAD_BYTES_MAX: HttpError, not a hang."""
    monkeypatch.setattr(http, "HEAD_BYTES_MAX", 100)
    for raw in (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", b"HTTP/1.1 200 OK\r\nx-big: " + b"z" * 200 + b"\r\n\r\n"):

        async def answer(_: int, writer: asyncio.StreamWriter, raw: bytes = raw) -> bool:
            writer.write(raw)
            return True

        async with server(answer) as (url, _), client() as session:
            with pytest.raises(HttpError):
                await asyncio.wait_for(session.post(f"{url}/hook", b"{}", {}), 5)


async def test_a_request_cut_off_by_the_caller_does_not_leave_its_connection_for_the_next() -> None:
    """A timed-out request's connection is closed: the next POST gets a fresh connection and its own answer."""

    async def slow_first(n: int, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            await asyncio.sleep(0.5)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n#%d" % (len(str(n)) + 1, n))
        return True

    async with server(slow_first) as (url, seen), client() as session:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session.post(f"{url}/hook", b"{}", {}), 0.1)
        assert await session.post(f"{url}/hook", b"{}", {}) == (200, b"#2")
    assert seen.connections == 2


async def test_concurrent_posts_keep_as_many_connections_idle_as_allowed_and_reuse_them() -> None:
    """Four POSTs at once open four connections; with room for four idle ones, the next four reuse them."""
    async with server(ok()) as (url, seen), client(idle_per_origin_max=4) as session:
        for _ in range(2):
            answers = await asyncio.gather(*(session.post(f"{url}/hook", b"{}", {}) for _ in range(4)))
            assert answers == [(200, b"ok")] * 4
    assert seen.connections == 4


async def test_connections_past_the_idle_bound_are_closed_not_kept() -> None:
    """With room for one idle connection, a second round of four POSTs opens three new ones."""
    async with server(ok()) as (url, seen), client(idle_per_origin_max=1) as session:
        for _ in range(2):
            await asyncio.gather(*(session.post(f"{url}/hook", b"{}", {}) for _ in range(4)))
    assert seen.connections == 7


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "http:///nohost",
        "http://127.0.0.1:99999/x",
        "hook",
        "http://" + "a" * 64 + ".example/too-long-a-label",
    ],
)
def test_a_url_that_cannot_be_sent_to_is_an_http_error_naming_it(url: str) -> None:
    with pytest.raises(HttpError, match="cannot send to"):
        Target.parse(url)


def test_targets_carry_the_origin_path_and_host_header() -> None:
    """Default ports stay out of the Host header; IPv6 hosts are bracketed; an empty path is '/'; a path
    past ASCII (or a space or control) is sent as UTF-8 percent-escapes, a domain past ASCII in its IDNA form."""
    assert Target.parse("http://127.0.0.1:8080/hooks/café?q=é%20x").path == "/hooks/caf%C3%A9?q=%C3%A9%20x"
    assert Target.parse("https://bücher.example/h").host == "xn--bcher-kva.example"
    # Never a second header line: urlsplit drops CR, LF and tabs, and the space is escaped.
    assert Target.parse("http://127.0.0.1/a\r\nx: y").path == "/ax:%20y"
    assert Target.parse("https://example.com") == Target("https", "example.com", 443, "/", "example.com")
    assert Target.parse("http://[::1]:8080/h?q=1") == Target("http", "::1", 8080, "/h?q=1", "[::1]:8080")
