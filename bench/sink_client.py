"""The fastest bare client we have for the SendGrid sink: the delivery benchmark's floor is the
sink's speed as this client measures it, in the same run.

One process, one asyncio loop (uvloop when installed), raw keep-alive connections, one request in
flight per connection (as nudge's connector sends: no pipelining), bodies encoded before the
clock starts. Threads over http.client (the first reference) measured the client's GIL more than
the sink.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

CONNECTIONS = 8
DISTINCT_BODIES = 512  # cycled: the sink reads every one; encoding 30k of them would time the client


def request_bytes(host: str, api_key: str, n: int, size: int) -> bytes:
    """One personalised mail/send request of about `size` bytes of body, as nudge sends one."""
    filler = "x" * max(0, (size - 300) // 2)  # in both parts: the body is about `size` bytes
    body = json.dumps(
        {
            "personalizations": [{"to": [{"email": f"r{n}@example.com"}], "custom_args": {"n": str(n)}}],
            "from": {"email": "hello@example.com"},
            "subject": f"Reference {n}",
            "content": [{"type": "text/plain", "value": filler}, {"type": "text/html", "value": f"<p>{filler}</p>"}],
        }
    ).encode()
    head = (
        f"POST /v3/mail/send HTTP/1.1\r\nHost: {urlsplit(host).netloc}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Client(asyncio.Protocol):
    """Sends the next request when the previous answer is complete."""

    def __init__(self, shared: _Shared, finished: asyncio.Future):
        self.shared, self.finished = shared, finished
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._next()

    def _next(self) -> None:
        assert self.transport is not None
        request = self.shared.take()
        if request is None:
            self.transport.close()
            if not self.finished.done():
                self.finished.set_result(None)
            return
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        status = int(head.split(" ", 2)[1])
        if status not in (200, 202):
            self.shared.failed.append(status)
            self.shared.limit = 0  # the reference is void: stop everyone
        else:
            self.shared.answered += 1
        self._next()

    def connection_lost(self, exc) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


class _Shared:
    def __init__(self, requests: list[bytes], limit: int, deadline: float):
        self.requests, self.limit, self.deadline = requests, limit, deadline
        self.sent = self.answered = 0
        self.failed: list[int] = []

    def take(self) -> bytes | None:
        if self.sent >= self.limit or (self.sent % 256 == 0 and time.perf_counter() > self.deadline):
            return None
        self.sent += 1
        return self.requests[self.sent % len(self.requests)]


async def _run(host: str, shared: _Shared, connections: int) -> None:
    loop = asyncio.get_running_loop()
    address = urlsplit(host)
    finished = []
    for _ in range(connections):
        done = loop.create_future()
        await loop.create_connection(lambda d=done: _Client(shared, d), address.hostname, address.port)
        finished.append(done)
    await asyncio.gather(*finished)


def blast(host: str, count: int, api_key: str, size: int, seconds: float, connections: int = CONNECTIONS) -> dict:
    """Up to `count` one-recipient requests (at most `seconds`): requests a second the sink answered."""
    try:
        import uvloop

        new_loop = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        new_loop = asyncio.new_event_loop
    requests = [request_bytes(host, api_key, n, size) for n in range(min(count, DISTINCT_BODIES))]
    shared = _Shared(requests, count, time.perf_counter() + seconds)
    loop = new_loop()
    try:
        start = time.perf_counter()
        loop.run_until_complete(_run(host, shared, connections))
        elapsed = time.perf_counter() - start
    finally:
        loop.close()
    if shared.failed:
        raise SystemExit(f"the sink answered {shared.failed[0]}: the reference is void")
    return {
        "requests": shared.answered,
        "seconds": elapsed,
        "requests_per_second": shared.answered / elapsed,
        "connections": connections,
        "client": "asyncio raw sockets",
    }
