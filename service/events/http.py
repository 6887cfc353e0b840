"""A small HTTP/1.1 client for webhook deliveries: POST to an address already checked
(`ssrf.Target`), never a second DNS lookup, never a redirect followed, keep-alive
connections reused per address.

Why not httpx: every attempt must connect to the checked address rather than let the
client resolve the host again, and a general client spends about a millisecond of CPU
per request, in the same process as the submissions that the deliveries must not slow
down; this one writes one request and reads one bounded response.
"""

import asyncio
import contextlib
import ssl

from service.events.ssrf import Target

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
IDLE_PER_ADDRESS = 32  # delivery.PER_WEBHOOK: a busy webhook's connections all stay open


class BadResponse(Exception):
    """The receiver's answer was not HTTP/1.x we could read."""


class _Stale(Exception):
    """The connection closed before any byte of an answer."""


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Client:
    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int, str], list[_Conn]] = {}
        self._tls = ssl.create_default_context()

    async def post(self, target: Target, headers: dict[str, str], body: bytes) -> int:
        """The status code of the answer (the caller bounds the time). A kept-alive
        connection that the receiver closed meanwhile is replaced once, transparently."""
        key = (target.scheme, target.address, target.port, target.host)
        idle = self._idle.get(key) or []
        while idle:
            conn = idle.pop()
            if conn[0].at_eof():
                conn[1].close()
                continue
            try:
                return await self._exchange(key, conn, target, headers, body)
            except (ConnectionError, _Stale):
                continue
        conn = await asyncio.open_connection(
            target.address,
            target.port,
            ssl=self._tls if target.scheme == "https" else None,
            server_hostname=target.host if target.scheme == "https" else None,
            limit=MAX_HEAD,
        )
        try:
            return await self._exchange(key, conn, target, headers, body)
        except _Stale as exc:
            raise BadResponse("the connection closed without an answer") from exc

    async def _exchange(
        self,
        key: tuple[str, str, int, str],
        conn: _Conn,
        target: Target,
        headers: dict[str, str],
        body: bytes,
    ) -> int:
        reader, writer = conn
        try:
            lines = [f"POST {target.path} HTTP/1.1"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            lines.append(f"content-length: {len(body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            status, reusable = await self._read_response(reader)
        except BaseException:
            writer.close()
            raise
        if reusable and len(self._idle.setdefault(key, [])) < IDLE_PER_ADDRESS:
            self._idle[key].append(conn)
        else:
            writer.close()
        return status

    async def _read_response(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Stale from exc
            raise BadResponse("no complete HTTP response head") from exc
        except asyncio.LimitOverrunError as exc:
            raise BadResponse("the response head is too large") from exc
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise BadResponse("not an HTTP/1.x status line")
        status = int(parts[1])
        fields: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                fields[name.strip().lower()] = value.strip()
        reusable = fields.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
        if 100 <= status < 200 or status in (204, 304):
            return status, reusable
        if "chunked" in fields.get("transfer-encoding", "").lower():
            await self._skip_chunks(reader)
        elif "content-length" in fields:
            try:
                length = int(fields["content-length"])
            except ValueError as exc:
                raise BadResponse("bad content-length") from exc
            if length > MAX_BODY:
                return status, False  # not read: the connection is dropped
            await reader.readexactly(length)
        else:
            return status, False  # the body runs to the end of the connection: unread
        return status, reusable

    async def _skip_chunks(self, reader: asyncio.StreamReader) -> None:
        total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise BadResponse("bad chunk size") from exc
            total += size
            if total > MAX_BODY:
                raise BadResponse("response body too large")
            if size == 0:
                await _trailers(reader)
                return
            await reader.readexactly(size + 2)

    def close(self) -> None:
        for conns in self._idle.values():
            for _, writer in conns:
                with contextlib.suppress(Exception):
                    writer.close()
        self._idle.clear()


async def _trailers(reader: asyncio.StreamReader) -> None:
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass
