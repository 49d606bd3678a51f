"""A local HTTP server that speaks Twilio's Messages API, for the official client.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded, HTTP Basic auth (the account
SID and auth token) checked; answers shaped like Twilio's (201 with `sid`, `status: queued`;
errors `{"code", "message", "more_info", "status"}`). Scriptable per recipient:

    server.script["+15005550001"] = "429" | "500" | "bad-number" | "unsubscribed" | "stall" | "drop"

"stall" and "drop" take the message (it is recorded, as Twilio would queue it) and then give no
answer: held until the test ends, or the connection closed. Every accepted message is recorded in
`accepted`, so a test counts what arrived; `wait_for(n)` returns once n have (a test that acts
mid-batch, without sleeping).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-f]{32})/Messages\.json$")
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "test-auth-token"

ERRORS: dict[str, tuple[int, int, str]] = {
    "429": (429, 20429, "Too Many Requests"),
    "500": (500, 20500, "Internal Server Error"),
    "bad-number": (400, 21211, "The 'To' number {to} is not a valid phone number."),
    "unsubscribed": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "not-mobile": (400, 21614, "'To' number is not a valid mobile number"),
    "bad-sender": (
        400,
        21212,
        "The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID.",
    ),
}


class TwilioServer:
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        self.account_sid, self.auth_token = account_sid, auth_token
        self.accepted: list[dict[str, Any]] = []  # one entry per message Twilio would send
        self.requests = 0
        self.script: dict[str, str] = {}  # recipient → behaviour; stays until removed
        self.lock = threading.Lock()
        self.taken = threading.Condition(self.lock)  # notified at each accepted message
        self.release = threading.Event()  # ends every stall
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real API

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        # A short poll: shutdown() waits for the loop to notice, 0.5 s per test by default.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> TwilioServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def arrived(self, to: str) -> int:
        """How many messages to this number were taken."""
        return sum(1 for m in self.accepted if m["to"] == to)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """True once `count` messages have been taken, False after `timeout` seconds."""
        with self.taken:
            return self.taken.wait_for(lambda: len(self.accepted) >= count, timeout)

    # --- behaviour ------------------------------------------------------------------------------

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, code: int, message: str) -> None:
        more = f"https://www.twilio.com/docs/errors/{code}"
        self._reply(handler, status, {"code": code, "message": message, "more_info": more, "status": status})

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return handler.headers.get("Authorization") == f"Basic {expected}"

    def handle(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        with self.lock:
            self.requests += 1
        found = PATH.match(handler.path)
        if not found or found["account"] != self.account_sid:
            return self._error(handler, 404, 20404, "The requested resource was not found")
        if not self._authorised(handler):
            return self._error(handler, 401, 20003, "Authenticate")
        form = {name: values[0] for name, values in parse_qs(raw.decode(), keep_blank_values=True).items()}
        to, sender = form.get("To", ""), form.get("From")
        behaviour = self.script.get(to)
        if behaviour in ERRORS:
            status, code, message = ERRORS[behaviour]
            return self._error(handler, status, code, message.format(to=to, sender=sender))
        if not E164.match(to):
            return self._error(handler, 400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not sender and not form.get("MessagingServiceSid"):
            return self._error(handler, 400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        if not form.get("Body"):
            return self._error(handler, 400, 21602, "Message body is required.")
        sid = "SM" + uuid.uuid4().hex
        with self.lock:
            self.accepted.append(
                {
                    "sid": sid,
                    "to": to,
                    "from": sender,
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": form["Body"],
                    "status_callback": form.get("StatusCallback"),
                }
            )
            self.taken.notify_all()
        if behaviour == "stall":
            self.release.wait(30)  # past the client's timeout: the answer never comes
            handler.close_connection = True
            return None
        if behaviour == "drop":
            handler.close_connection = True
            return None
        return self._reply(handler, 201, self._resource(sid, form))

    def _resource(self, sid: str, form: dict[str, str]) -> dict[str, Any]:
        """The Message resource as Twilio answers a create."""
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form["Body"],
            "date_created": "Mon, 01 Jun 2026 12:00:00 +0000",
            "date_sent": None,
            "date_updated": "Mon, 01 Jun 2026 12:00:00 +0000",
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": form["To"],
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
