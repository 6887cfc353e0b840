"""The webhook deliveries' HTTP/1.1 client (`service.events.http`) against scripted
receivers on 127.0.0.1: what it sends, how it reads every shape of answer (a length, chunks,
a body to the end of the connection, one too large), when it keeps a connection for the
next attempt, and that it never follows a redirect or accepts what is not HTTP."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from service.events import http
from service.events.ssrf import Target


@dataclass
class Script:
    """A receiver that answers the n-th request it reads with `answers[n]` (the last one
    again past the end), and closes the connection after it when `close_after` says so."""

    answers: list[bytes]
    close_after: set[int] = field(default_factory=set)
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0


async def _serve(script: Script) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                n = len(script.requests)
                script.requests.append(head + body)
                writer.write(script.answers[min(n, len(script.answers) - 1)])
                await writer.drain()
                if n in script.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _target(port: int) -> Target:
    return Target("http", "receiver.example", port, "127.0.0.1", "/hook?x=1")


def _run(script: Script, body: Callable[[http.Client, Target], Awaitable[object]]) -> object:
    async def main() -> object:
        server, port = await _serve(script)
        client = http.Client()
        try:
            return await asyncio.wait_for(body(client, _target(port)), 10)
        finally:
            client.close()
            server.close()

    return asyncio.run(main())


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_the_request_is_one_post_with_the_host_the_headers_and_the_body() -> None:
    script = Script([OK])

    async def post(client: http.Client, target: Target) -> int:
        return await client.post(target, {"webhook-id": "ev_1"}, b'{"a":1}')

    assert _run(script, post) == 200
    head, _, body = script.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /hook?x=1 HTTP/1.1"
    assert "webhook-id: ev_1" in lines
    assert "content-length: 7" in lines
    assert body == b'{"a":1}'


@pytest.mark.parametrize(
    "answer",
    [
        OK,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n3;x=y\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTrailer: 1\r\n\r\n",
    ],
    ids=["length", "chunked", "no-body", "trailers"],
)
def test_an_answer_read_to_its_end_keeps_the_connection_for_the_next(answer: bytes) -> None:
    script = Script([answer])

    async def three(client: http.Client, target: Target) -> list[int]:
        return [await client.post(target, {}, b"{}") for _ in range(3)]

    assert _run(script, three) == [int(answer.split()[1])] * 3
    assert script.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (http.MAX_BODY + 1)
        + b"x" * (http.MAX_BODY + 1),
    ],
    ids=["connection-close", "http-1.0", "body-too-large"],
)
def test_an_answer_that_ends_its_connection_or_is_not_read_gets_a_new_one(answer: bytes) -> None:
    script = Script([answer], close_after={0, 1})

    async def two(client: http.Client, target: Target) -> list[int]:
        return [await client.post(target, {}, b"{}") for _ in range(2)]

    assert _run(script, two) == [200, 200]
    assert script.connections == 2


def test_a_body_running_to_the_end_of_the_connection_is_left_unread() -> None:
    script = Script([b"HTTP/1.1 200 OK\r\n\r\nall of it"], close_after={0, 1})

    async def two(client: http.Client, target: Target) -> list[int]:
        return [await client.post(target, {}, b"{}") for _ in range(2)]

    assert _run(script, two) == [200, 200]
    assert script.connections == 2


def test_a_kept_connection_the_receiver_closed_is_replaced_without_a_failure() -> None:
    script = Script([OK], close_after={0})

    async def two(client: http.Client, target: Target) -> list[int]:
        first = await client.post(target, {}, b"{}")
        await asyncio.sleep(0.1)  # the receiver's close arrives
        return [first, await client.post(target, {}, b"{}")]

    assert _run(script, two) == [200, 200]
    assert script.connections == 2
    assert len(script.requests) == 2


def test_a_redirect_is_answered_with_its_status_and_not_followed() -> None:
    script = Script(
        [b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"]
    )

    async def post(client: http.Client, target: Target) -> int:
        return await client.post(target, {}, b"{}")

    assert _run(script, post) == 302
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n", "bad content-length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (http.MAX_BODY + 1),
            "response body too large",
        ),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * http.MAX_HEAD + b"\r\n\r\n", "too large"),
        (b"HTTP/1.1 200 OK\r\nContent-", "no complete HTTP response head"),
        (b"", "the connection closed without an answer"),
    ],
    ids=[
        "not-http",
        "no-code",
        "bad-length",
        "bad-chunk",
        "chunks-too-large",
        "huge-head",
        "cut-head",
        "no-answer",
    ],
)
def test_an_answer_that_is_not_http_it_can_read_is_a_bad_response(
    answer: bytes, message: str
) -> None:
    script = Script([answer], close_after={0})

    async def post(client: http.Client, target: Target) -> int:
        return await client.post(target, {}, b"{}")

    with pytest.raises(http.BadResponse, match=message):
        _run(script, post)
