"""The dispatcher's HTTP/1.1 client: one POST at a time per connection, keep-alive connections kept
per origin, responses parsed by httptools (llhttp, the parser uvicorn uses here too).

Not aiohttp: the dispatcher is bound by its CPU, and at 64 requests in flight aiohttp's request and
response machinery took 140–180 µs of CPU per POST to a local receiver, this client about 27 µs
(bench/RESULTS.md, "Webhooks"). It does only what a webhook delivery needs: POST a body with the given
headers to an `http://` or `https://` URL (TLS verified against the system's CAs), read the status and
the first `head_bytes` of the answer's body, and never follow a redirect. The caller bounds each
request's time; a request cut off there closes its connection.

A connection goes back to its origin's idle list only when its answer was read whole and the server
keeps it alive. A POST on a reused connection that the server closed meanwhile (before any byte of an
answer arrived) is sent once more on a new connection: receivers deduplicate on `webhook-id`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote, urlsplit

import httptools

ORIGINS_MAX: Final = 1_024  # origins with idle connections; the least recently used is closed past this
TARGETS_MAX: Final = 4_096  # parsed URLs remembered; emptied when full
HEAD_BYTES_MAX: Final = 64 * 1024  # an answer's status line and headers; past this it is refused
DEFAULT_PORTS: Final = {"http": 80, "https": 443}
PRINTABLE_ASCII: Final = "".join(map(chr, range(0x21, 0x7F)))  # kept as they are on the request line


class HttpError(Exception):
    """A request that got no HTTP answer: a URL it cannot send to, a closed connection, bytes that
    are not HTTP."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL's POST goes: the origin to connect to and the request line's path."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent on the request line
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Target:
        """The target of an absolute http(s) URL; an HttpError naming what is wrong otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise HttpError(f"cannot send to {url!r}: {error}") from None
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise HttpError(f"cannot send to {url!r}: not an http:// or https:// URL with a host")
        # Printable ASCII stays as given; anything else (past ASCII, spaces, controls) goes as UTF-8
        # percent-escapes, so the request line carries exactly one line whatever the URL holds.
        path = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=PRINTABLE_ASCII)
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            raise HttpError(f"cannot send to {url!r}: its host is not a valid domain name") from None
        shown = f"[{host}]" if ":" in host else host
        port = port if port is not None else DEFAULT_PORTS[parts.scheme]
        header = shown if port == DEFAULT_PORTS[parts.scheme] else f"{shown}:{port}"
        return cls(parts.scheme, host, port, path, header)

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


class _Connection(asyncio.Protocol):
    """One connection and the answer being read on it; the only reader of its socket."""

    def __init__(self, head_bytes: int) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._head_bytes = head_bytes
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._status = 0
        self._body = bytearray()
        self._header_bytes = 0
        self.received = False  # a byte of the current answer arrived
        self.reusable = False  # the last answer was read whole and the server keeps the connection
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Writes one request; the future is (status, first bytes of the body) once it is answered."""
        assert self._transport is not None and self._answer is None, "one request at a time per connection"
        self._answer = asyncio.get_running_loop().create_future()
        self._status, self._body, self._header_bytes = 0, bytearray(), 0
        self.received = self.reusable = False
        self._transport.write(request)
        return self._answer

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for (an idle connection): not reusable
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, HttpError) as error:
            self._fail(HttpError(f"the answer is not HTTP/1.1: {error}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > HEAD_BYTES_MAX:
            raise HttpError(f"the answer's headers pass {HEAD_BYTES_MAX} bytes")  # httptools stops feeding

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        room = self._head_bytes - len(self._body)
        if room > 0:
            self._body += body[:room]

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200 and self._status != 101:  # interim (103 Early Hints): the real one follows
            self._body = bytearray()
            return
        self.reusable = self._parser.should_keep_alive()
        self._settle((self._status, bytes(self._body)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._status >= 200:  # the status is known: an answer without a length (or cut short) ends here
            self._settle((self._status, bytes(self._body)))
        else:
            self._fail(HttpError(f"the connection closed before an answer ({exc or 'closed by the server'})"))

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self._transport is not None:
            self._transport.abort()

    def _settle(self, answer: tuple[int, bytes]) -> None:
        found, self._answer = self._answer, None
        if found is not None and not found.done():
            found.set_result(answer)

    def _fail(self, error: Exception) -> None:
        found, self._answer = self._answer, None
        if found is not None and not found.done():
            found.set_exception(error)
        self.close()


class HttpClient:
    """Keep-alive connections per origin and the requests on them; the only owner of both."""

    def __init__(self, *, user_agent: str, head_bytes: int, idle_per_origin_max: int) -> None:
        """`idle_per_origin_max`: keep-alive connections kept per origin between requests (the caller's
        bound on requests in flight to one origin, so a steady load never reconnects)."""
        self._user_agent = user_agent
        self._head_bytes = head_bytes
        self._idle_per_origin_max = idle_per_origin_max
        self._idle: OrderedDict[tuple[str, str, int], list[_Connection]] = OrderedDict()
        self._targets: dict[str, Target] = {}
        self._tls: ssl.SSLContext | None = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes every idle connection (requests in flight close theirs when they end)."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """POSTs `body` with `headers` once (once more if a reused connection was closed under it);
        (status, the first `head_bytes` of the answer's body). Raises HttpError or OSError."""
        target = self._target(url)
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = (
            f"POST {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\nUser-Agent: {self._user_agent}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{fields}\r\n"
        ).encode("latin-1") + body
        connection = self._take_idle(target)
        if connection is not None:
            try:
                return await self._exchange(target, connection, request)
            except HttpError:
                if connection.received:
                    raise
        return await self._exchange(target, await self._connect(target), request)

    async def _exchange(self, target: Target, connection: _Connection, request: bytes) -> tuple[int, bytes]:
        try:
            answer = await connection.send(request)
        except BaseException:  # cut off (the caller's timeout), or no answer: the connection is spent
            connection.close()
            raise
        self._give_back(target, connection)
        return answer

    def _target(self, url: str) -> Target:
        found = self._targets.get(url)
        if found is None:
            if len(self._targets) >= TARGETS_MAX:
                self._targets.clear()
            found = self._targets[url] = Target.parse(url)
        return found

    def _take_idle(self, target: Target) -> _Connection | None:
        idle = self._idle.get(target.origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, target: Target) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if target.scheme == "https" else None
        _, connection = await loop.create_connection(
            lambda: _Connection(self._head_bytes),
            target.host,
            target.port,
            ssl=tls,
            server_hostname=target.host if tls is not None else None,
        )
        return connection

    def _give_back(self, target: Target, connection: _Connection) -> None:
        if not connection.reusable or connection.closed:
            connection.close()
            return
        idle = self._idle.setdefault(target.origin, [])
        self._idle.move_to_end(target.origin)
        if len(idle) >= self._idle_per_origin_max:
            connection.close()
            return
        idle.append(connection)
        while len(self._idle) > ORIGINS_MAX:
            _, oldest = self._idle.popitem(last=False)
            for stale in oldest:
                stale.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls
