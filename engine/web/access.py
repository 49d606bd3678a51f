"""The access log of `nudge serve`: one record a request with method, path, status and duration
as fields (so `--log-format json` gives a log shipper something to index), never a token or a
query string (unsubscribe and preference tokens stand for a customer)."""

from __future__ import annotations

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


class AccessLogHandler(WSGIRequestHandler):
    """werkzeug's request handler, logging through nudge's logging instead of its Apache line."""

    def run_wsgi(self) -> None:
        self._started = time.perf_counter()
        super().run_wsgi()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        started = getattr(self, "_started", None)
        duration = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
        path = redacted_path(self.path)
        status = int(code) if str(code).isdigit() else None
        log.info(
            "%s %s %s %s ms",
            self.command,
            path,
            code,
            duration,
            extra={"method": self.command, "path": path, "status": status, "duration_ms": duration},
        )

    def log_error(self, format: str, *args) -> None:
        log.warning("%s %s", redacted_path(getattr(self, "path", "")), format % args)

    def log_message(self, format: str, *args) -> None:
        pass  # everything worth saying goes through log_request or log_error
