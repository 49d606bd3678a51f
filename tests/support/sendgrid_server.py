"""A local HTTP server that speaks SendGrid's v3 mail/send contract, for the official client, fast
enough to be the delivery benchmark's reference (issue 25: ≥ 5k requests a second on 2 cores).

It checks the bearer key, validates the body the way SendGrid does (personalizations 1..1000,
valid and unique addresses, from, content), answers 413 with an HTML page above a size limit,
and can be scripted: 429 with X-RateLimit-Reset, 5xx, a dropped connection after reading the
request, or a stall longer than the client's timeout. It records what it accepted (one entry per
personalization, with its substitutions applied), or, with `record=False`, only counts it.

Speed comes from one asyncio protocol (uvloop when installed) parsing HTTP/1.1 keep-alive by hand
on a thread of its own: http.server's thread per connection and line-by-line header parsing cost
more than the JSON the server has to read anyway.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from http import HTTPStatus

from tests.support.pgserver import free_port

try:  # an optional speed-up (the test extras install it); the standard loop is correct too
    import uvloop

    _new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
except ImportError:  # pragma: no cover
    _new_loop = asyncio.new_event_loop

ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Script = Callable[[dict], tuple[int, dict, bytes] | str | None]
STALL_SECONDS = 3.0  # longer than the timeouts the tests give the client
_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024


class _Request:
    """One parsed request: what `SendgridServer.handle` reads."""

    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes):
        self.method, self.path, self.headers, self.body = method, path, headers, body


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _response(status: int, body: bytes, headers: dict | None, content_type: str, close: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
        *(["Connection: close"] if close else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: requests are read whole (head, then Content-Length bytes) and
    answered in order."""

    def __init__(self, owner: SendgridServer):
        self.owner = owner
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.owner.connections += 1

    def connection_lost(self, exc) -> None:
        self.closed = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.closed:
            end = self.buffer.find(_HEAD_END)
            if end < 0:
                if len(self.buffer) > _MAX_HEAD:
                    self._send(_response(431, b"", None, "text/plain", True), close=True)
                return
            method, path, headers = _parse_head(bytes(self.buffer[:end]))
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.owner.handle(self, _Request(method, path, headers, body))

    def _send(self, data: bytes, close: bool = False) -> None:
        assert self.transport is not None
        self.transport.write(data)
        if close:
            self.closed = True
            self.transport.close()

    # --- what SendgridServer.handle answers with ------------------------------------------------

    def reply(self, status: int, body: bytes, headers: dict | None, content_type: str, request: _Request) -> None:
        close = request.headers.get("connection", "").lower() == "close"
        self._send(_response(status, body, headers, content_type, close), close=close)

    def drop(self) -> None:
        """Shut the connection without an answer, as a crashed proxy does."""
        assert self.transport is not None
        self.closed = True
        self.transport.abort()

    def stall(self) -> None:
        """Answer nothing, then hang up once the client has long given up."""
        assert self.transport is not None
        self.closed = True
        self.transport.pause_reading()
        asyncio.get_running_loop().call_later(STALL_SECONDS, self.transport.close)


class SendgridServer:
    def __init__(self, api_key: str = "SG.test-key", max_body: int = 10_000_000, record: bool = True):
        self.api_key, self.max_body, self.record = api_key, max_body, record
        self._authorization = f"Bearer {api_key}"
        self.accepted: list[dict] = []  # one entry per accepted personalization (when recording)
        self.requests: list[dict] = []  # every request body that parsed (when recording)
        self.accepted_count = 0  # personalizations accepted, recorded or not
        self.request_count = 0  # requests answered 2xx
        self.body_bytes = 0  # of the requests answered 2xx: the benchmark sizes its reference by it
        self.connections = 0
        self.script: list[Script] = []  # popped one per request, before validation
        self.lock = threading.Lock()  # kept for callers that read the records while it runs
        self.port = free_port()
        self._loop = _new_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sendgrid-sink", daemon=True)
        self._message_ids = 0

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(lambda: _Connection(self), "127.0.0.1", self.port, backlog=256)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

    def __enter__(self) -> SendgridServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # --- behaviour ------------------------------------------------------------------------------

    def _error(self, connection: _Connection, request: _Request, status: int, message: str, field=None) -> None:
        body = json.dumps({"errors": [{"message": message, "field": field, "help": None}]}).encode()
        connection.reply(status, body, None, "application/json", request)

    def handle(self, connection: _Connection, request: _Request) -> None:
        if request.path != "/v3/mail/send" or request.method != "POST":
            return self._error(connection, request, 404, "not found")
        if request.headers.get("authorization") != self._authorization:
            return self._error(
                connection, request, 401, "The provided authorization grant is invalid, expired, or revoked"
            )
        if len(request.body) > self.max_body:
            page = b"<html><body><h1>413 Request Entity Too Large</h1></body></html>"
            return connection.reply(413, page, None, "text/html", request)
        try:
            body = json.loads(request.body)
        except ValueError:
            return self._error(connection, request, 400, "Bad Request", None)
        if self.record:
            self.requests.append(body)
        step = self.script.pop(0) if self.script else None
        action = step(body) if step else None
        if action == "drop":
            return connection.drop()
        if action == "stall":
            return connection.stall()
        if isinstance(action, tuple):
            status, headers, payload = action
            return connection.reply(status, payload, headers, "application/json", request)
        problem = self.validate(body)
        if problem:
            return self._error(connection, request, 400, *problem)
        personalizations = body["personalizations"]
        if self.record:
            self.accepted.extend(self._accepted(body, p) for p in personalizations)
        self.accepted_count += len(personalizations)
        self.request_count += 1
        self.body_bytes += len(request.body)
        sandbox = body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable")
        self._message_ids += 1
        message_id = f"{self.port:05d}{self._message_ids:017x}"  # unique per server, like SendGrid's
        connection.reply(200 if sandbox else 202, b"", {"X-Message-Id": message_id}, "application/json", request)

    def _accepted(self, body: dict, personalization: dict) -> dict:
        return {
            "to": personalization["to"][0]["email"],
            "all_to": [to["email"] for to in personalization["to"]],
            "custom_args": {**body.get("custom_args", {}), **personalization.get("custom_args", {})},
            "headers": {**body.get("headers", {}), **personalization.get("headers", {})},
            "subject": personalization.get("subject", body["subject"]),
            "content": self._content(body, personalization),
            "sandbox": body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable"),
        }

    @staticmethod
    def _content(body: dict, personalization: dict) -> dict:
        result = {}
        for part in body["content"]:
            value = part["value"]
            for tag, replacement in personalization.get("substitutions", {}).items():
                value = value.replace(tag, replacement)
            result[part["type"]] = value
        return result

    @staticmethod
    def validate(body: dict) -> tuple[str, str] | None:
        personalizations = body.get("personalizations") or []
        if not 1 <= len(personalizations) <= 1000:
            return (
                "The personalizations field is required and must have at least one personalization.",
                "personalizations",
            )
        seen = set()
        for i, p in enumerate(personalizations):
            if not p.get("to"):
                return ("The to array is required for all personalization objects.", f"personalizations.{i}.to")
            for j, to in enumerate(p.get("to") or []):
                address = to.get("email", "")
                if not ADDRESS.match(address):
                    return ("Does not contain a valid address.", f"personalizations.{i}.to.{j}.email")
                if address.lower() in seen:
                    return (
                        "Each email address in the personalization block should be unique between to, cc, "
                        "and bcc. We found the first duplicate instance of [redacted] in the "
                        "personalizations.{i}.to field.",
                        f"personalizations.{i}.to",
                    )
                seen.add(address.lower())
            substituted = sum(len(k.encode()) + len(str(v).encode()) for k, v in p.get("substitutions", {}).items())
            if substituted > 10_000:
                return (
                    "The total size of substitutions in a personalization must not exceed 10,000 bytes.",
                    f"personalizations.{i}.substitutions",
                )
        if not body.get("from", {}).get("email"):
            return ("The from object must be provided for every email send.", "from")
        if not body.get("content"):
            return ("Unless a valid template_id is provided, the content parameter is required.", "content")
        return None
