"""A local webhook receiver on 127.0.0.1 that can be scripted request by request.

It behaves as a careful receiver does: a request whose Idempotency-Key it already processed is
answered 200 again and not processed a second time. Each request takes the next scripted step
(none left: answer 200 and process it), unless `step_for(request)` names one for that request
itself — for senders in several processes, whose arrival order is not fixed:

- ``Reply(status, body, headers)``: answer that; a 2xx processes the request first.
- ``Stall(processed=...)``: hold the request without answering until the server closes (or
  ``release()``), longer than any client timeout in the tests; ``processed=True`` processes it
  first, so the client's retry is a repeat the server must drop.
- ``Drop(processed=...)``: close the connection without an answer.

It records every request (path with query, headers, exact body bytes) and counts:
``processed`` (Idempotency-Key → the request that was acted on), ``duplicates`` (requests that
arrived with a key already processed: what a receiver without idempotency would have done twice)
and ``distinct_keys``.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.pgserver import free_port

DUPLICATE_ANSWER = b'{"duplicate": true}'


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    processed: bool = False


@dataclass(frozen=True)
class Drop:
    processed: bool = False


Step = Reply | Stall | Drop


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it; header names are lower-cased."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a stalled request: nothing to report


class WebhookServer:
    def __init__(
        self,
        script: list[Step] | None = None,
        tls: tuple[Path, Path] | None = None,
        step_for: Callable[[Received], Step | None] | None = None,
    ) -> None:
        """`tls`: (certificate, key) files to answer HTTPS with (see self_signed). `step_for`: a
        request's own step (None: the script's next), chosen by what it carries, not when it came."""
        self.script: list[Step] = list(script or [])
        self.step_for = step_for
        self.requests: list[Received] = []
        self.processed: dict[str, Received] = {}
        self.duplicates = 0
        self.connections = 0
        self.arrived = threading.Condition()
        self.released = threading.Event()
        self.port = free_port()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def setup(self) -> None:
                super().setup()
                with owner.arrived:
                    owner.connections += 1

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner._handle(self, Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        # Polled for shutdown every 10 ms (the default, 0.5 s, would be most of a test's time).
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> WebhookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        """End every stall: the held requests are closed without an answer."""
        self.released.set()

    @property
    def distinct_keys(self) -> int:
        return len({r.key for r in self.requests})

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """True once `count` requests have arrived (for a test that acts mid-batch without sleeping)."""
        return self.wait_until(lambda requests: len(requests) >= count, timeout)

    def wait_until(self, done: Callable[[list[Received]], bool], timeout: float = 10.0) -> bool:
        """True once `done(requests so far)` holds, False after `timeout` seconds."""
        with self.arrived:
            return self.arrived.wait_for(lambda: done(self.requests), timeout)

    # --- behaviour -------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, received: Received) -> None:
        with self.arrived:
            self.requests.append(received)
            own = self.step_for(received) if self.step_for else None
            step = own or (self.script.pop(0) if self.script else Reply())
            self.arrived.notify_all()
        if isinstance(step, Reply):
            if 200 <= step.status < 300 and self._process(received):
                self._reply(handler, 200, DUPLICATE_ANSWER, {})  # done before: say so again, do nothing
            else:
                self._reply(handler, step.status, step.body, step.headers)
            return
        if step.processed:
            self._process(received)
        if isinstance(step, Stall):
            self.released.wait()
        handler.close_connection = True
        if isinstance(step, Drop):
            handler.connection.shutdown(2)

    def _process(self, received: Received) -> bool:
        """Act on a request once per Idempotency-Key; True when it is a repeat (dropped)."""
        key = received.key or ""
        with self.arrived:
            if key in self.processed:
                self.duplicates += 1
                return True
            self.processed[key] = received
            return False

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key: what verification must refuse."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
        # Its own CA, so a client may name it as the one to trust (a receiver behind a private CA).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "receiver.pem", directory / "receiver.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file
