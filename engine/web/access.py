"""The access log of `nudge serve`: one record a request with method, path, status and duration
as fields (so `--log-format json` gives a log shipper something to index), never a token or a
query string (unsubscribe and preference tokens stand for a customer)."""

from __future__ import annotations

import json
import logging
import time

from werkzeug.serving import WSGIRequestHandler

log = logging.getLogger("nudge.serve.access")
# Paths whose last segment is a token: logged with the token replaced.
_TOKEN_PATHS = ("/unsubscribe/", "/preferences/", "/confirm/")


def redacted_path(path: str) -> str:
    """A request path fit for a log."""
    path = path.split("?", 1)[0]
    for prefix in _TOKEN_PATHS:
        if path.startswith(prefix):
            return prefix + "[token]"
    return path


def log_access(method: str, path: str, status: int | None, duration_ms: float | None) -> None:
    """One access record, from either server (engine.web.server's gunicorn logger, or werkzeug's
    handler below): the path redacted here, whatever the caller passes."""
    path = redacted_path(path)
    log.info(
        "%s %s %s %s ms",
        method,
        path,
        status if status is not None else "-",
        duration_ms,
        extra={"method": method, "path": path, "status": status, "duration_ms": duration_ms},
    )


class AccessLogHandler(WSGIRequestHandler):
    """werkzeug's request handler, logging through nudge's logging instead of its Apache line."""

    def run_wsgi(self) -> None:
        self._started = time.perf_counter()
        super().run_wsgi()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        started = getattr(self, "_started", None)
        duration = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
        # No path when the request line itself could not be read (send_error answers it).
        status = int(code) if str(code).isdigit() else None
        log_access(self.command, getattr(self, "path", "") or "", status, duration)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What the HTTP server answers before the app sees a request (a request line it cannot
        read, a URI or a header too long): JSON with `error`, as every error answer of nudge serve,
        instead of http.server's HTML page."""
        reason = message or self.responses.get(code, ("error",))[0]
        self.log_error("code %d, message %s", code, reason)
        self.send_response(code, message)
        self.send_header("Connection", "close")
        body = (json.dumps({"error": reason}) + "\n").encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_error(self, format: str, *args) -> None:
        log.warning("%s %s", redacted_path(getattr(self, "path", "")), format % args)

    def log_message(self, format: str, *args) -> None:
        pass  # everything worth saying goes through log_request or log_error
