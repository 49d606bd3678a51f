"""A local HTTP server that speaks SendGrid's v3 mail/send contract, for the official client.

It checks the bearer key, validates the body the way SendGrid does (personalizations 1..1000,
valid and unique addresses, from, content), answers 413 with an HTML page above a size limit,
and can be scripted: 429 with X-RateLimit-Reset, 5xx, a dropped connection after reading the
request, or a stall longer than the client's timeout. It records what it accepted.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.pgserver import free_port

ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Script = Callable[[dict], tuple[int, dict, bytes] | str | None]


class SendgridServer:
    def __init__(self, api_key: str = "SG.test-key", max_body: int = 10_000_000):
        self.api_key, self.max_body = api_key, max_body
        self.accepted: list[dict] = []  # one entry per accepted personalization
        self.requests: list[dict] = []  # every request body that parsed
        self.connections = 0
        self.script: list[Script] = []  # popped one per request, before validation
        self.lock = threading.Lock()
        self.port = free_port()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real API

            def setup(self):
                super().setup()
                with owner.lock:
                    owner.connections += 1

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SendgridServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- behaviour ------------------------------------------------------------------------------

    def _reply(
        self,
        handler,
        status: int,
        body: bytes = b"",
        headers: dict | None = None,
        content_type: str = "application/json",
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _error(self, handler, status: int, message: str, field: str | None = None) -> None:
        self._reply(
            handler, status, json.dumps({"errors": [{"message": message, "field": field, "help": None}]}).encode()
        )

    def handle(self, handler, raw: bytes) -> None:
        if handler.path != "/v3/mail/send":
            return self._error(handler, 404, "not found")
        if handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(handler, 401, "The provided authorization grant is invalid, expired, or revoked")
        if len(raw) > self.max_body:
            return self._reply(
                handler,
                413,
                b"<html><body><h1>413 Request Entity Too Large</h1></body></html>",
                content_type="text/html",
            )
        body = json.loads(raw)
        with self.lock:
            self.requests.append(body)
            step = self.script.pop(0) if self.script else None
        action = step(body) if step else None
        if action == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return None
        if action == "stall":
            time.sleep(3)
            handler.close_connection = True
            return None
        if isinstance(action, tuple):
            status, headers, payload = action
            return self._reply(handler, status, payload, headers)
        problem = self.validate(body)
        if problem:
            return self._error(handler, 400, *problem)
        with self.lock:
            for p in body["personalizations"]:
                self.accepted.append(
                    {
                        "to": p["to"][0]["email"],
                        "custom_args": p.get("custom_args", {}),
                        "headers": {**body.get("headers", {}), **p.get("headers", {})},
                        "subject": body["subject"],
                        "content": self._content(body, p),
                        "sandbox": body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable"),
                    }
                )
        status = 200 if body.get("mail_settings", {}).get("sandbox_mode", {}).get("enable") else 202
        self._reply(handler, status, b"", {"X-Message-Id": uuid.uuid4().hex[:22]})

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
        if not body.get("from", {}).get("email"):
            return ("The from object must be provided for every email send.", "from")
        if not body.get("content"):
            return ("Unless a valid template_id is provided, the content parameter is required.", "content")
        return None
