"""The HTTP server under `nudge serve`: gunicorn, N worker processes with a few threads each
(engine.web.serve.App in every one), or werkzeug's development server with `--dev`.

Under gunicorn, nudge keeps what the development server gave: its own logging (text or JSON
lines on stderr), an access log that never shows a token or a query string (engine.web.access),
JSON for what the server refuses before the app sees a request, and a graceful SIGTERM (the
requests in hand finish, then every process exits 0). The App is built once in the master, so a
missing secret or password stops `nudge serve` before anything forks; no store connection crosses
the fork (the master's pool is emptied, each worker's own is dropped unused on arrival).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

from engine.core.errors import RuntimeFailure
from engine.store import Store
from engine.web.access import log_access
from engine.web.serve import App

log = logging.getLogger("nudge.serve")
# Per worker: a slow client or a long dashboard page holds one thread, not the process. The
# threaded worker also keeps its heartbeat while a request waits on a busy SQLite store (up to
# busy_timeout, 30 s), where a one-request-at-a-time worker would be killed at gunicorn's timeout.
THREADS = 4
GRACEFUL_SECONDS = 30  # after SIGTERM, requests in hand get this long; the systemd unit waits longer

# What the server refuses before nudge sees a request. The status codes are the ones werkzeug's
# development server gave; the reasons never quote the request (it may carry a token).
_REFUSED: tuple[tuple[type[Exception], int, str], ...] = (
    (errors.LimitRequestLine, 414, "request line too long"),
    (errors.LimitRequestHeaders, 431, "request header fields too large, or too many"),
    (errors.UnsupportedTransferCoding, 501, "transfer coding not supported"),
    (errors.ExpectationFailed, 417, "expectation not supported"),
    (errors.ForbiddenProxyRequest, 403, "proxy request forbidden"),
)
# What the master sends its workers to stop them; held back across each fork (_Arbiter).
_STOPS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
_SERVER_FAULTS = (errors.InvalidResponseHeader, errors.InvalidResponseHeaderName, errors.ConfigurationProblem)


def refusal(exc: BaseException) -> tuple[int, str]:
    """(status, reason) for what the server met outside the app: a request it cannot read, or a
    fault of its own (500)."""
    if isinstance(exc, _SERVER_FAULTS) or not isinstance(exc, errors.ParseException):
        return 500, "internal error; it is in the server's log"
    for kind, status, reason in _REFUSED:
        if isinstance(exc, kind):
            return status, reason
    # InvalidRequestLine → "bad request: invalid request line"
    return 400, "bad request: " + re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower()


def json_answer(status: int, reason: str) -> bytes:
    """A whole HTTP response: the JSON error body every error answer of nudge serve has."""
    body = (json.dumps({"error": reason}) + "\n").encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class Worker(ThreadWorker):
    """gunicorn's threaded worker, answering what it refuses in JSON instead of an HTML page."""

    def init_signals(self) -> None:
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # a stop sent while it booted arrives now

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        status, reason = refusal(exc)
        if status >= 500:
            self.log.exception("error answering a request (%s)", type(exc).__name__)
        else:
            self.log.warning("refused a request: %s", reason)
        if req is not None and getattr(req, "method", None):
            log_access(req.method, req.path or "", status, None)
        try:
            util.write_nonblock(client, json_answer(status, reason))
        except OSError:
            self.log.debug("the client left before its error answer")


class AccessLogger(Logger):
    """gunicorn's own messages through nudge's logging (the one handler engine.cli.logs puts on
    stderr, text or JSON), and nudge's access line instead of gunicorn's Apache one."""

    def setup(self, cfg: Any) -> None:
        self.cfg = cfg
        self._access_log_enabled = True
        self.error_log.propagate = True  # to the root logger's handler, in nudge's format
        self.error_log.setLevel(logging.INFO)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        duration = round(request_time.total_seconds() * 1000, 1)
        path = environ.get("RAW_URI") or environ.get("PATH_INFO") or ""
        log_access(environ.get("REQUEST_METHOD") or "-", path, getattr(resp, "status_code", None), duration)


class _Arbiter(Arbiter):
    """gunicorn's master, holding stop signals back while it forks a worker. Sent to a worker
    before it has its own handlers, a SIGTERM would reach the master's, inherited, which only
    queues it: the worker would serve on until killed at graceful_timeout (a restart during boot)."""

    def spawn_worker(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        try:
            return super().spawn_worker()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


class Gunicorn(BaseApplication):
    """gunicorn as a library: `nudge serve` stays one command, with nudge's options."""

    def __init__(self, app: Callable[..., Any], options: dict[str, Any]):
        self.application, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Callable[..., Any]:
        return self.application

    def run(self) -> None:
        try:
            _Arbiter(self).run()
        except RuntimeError as exc:  # what gunicorn's master says when it cannot start
            raise RuntimeFailure(f"the server did not start: {exc}") from None


def check_bindable(host: str, port: int) -> None:
    """Fail now, in words, on an address nothing can listen on (gunicorn would retry for seconds)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise RuntimeFailure(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _announce(host: str, port: int, workers: int | None) -> None:
    how = f"{workers} worker processes" if workers else "werkzeug's development server"
    log.info(
        "serving on http://%s:%d with %s (unsubscribe at /unsubscribe/…, events at /sendgrid/events)",
        host,
        port,
        how,
        extra={"host": host, "port": port},
    )


def serve(app: App, store: Store, host: str, port: int, workers: int) -> None:
    """Serve `app` on gunicorn until SIGTERM or SIGINT; never returns."""
    check_bindable(host, port)
    store.dispose()  # the master's connections (migrations) must not be inherited by the workers
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": THREADS,
        "worker_class": f"{__name__}.Worker",
        "logger_class": f"{__name__}.AccessLogger",
        "graceful_timeout": GRACEFUL_SECONDS,
        "when_ready": lambda _arbiter: _announce(host, port, workers),
        # SQLAlchemy: a pool copied by fork is dropped, not closed (the sockets are the master's).
        "post_fork": lambda _arbiter, _worker: store.engine.dispose(close=False),
        "post_worker_init": lambda _worker: app.start(),  # no thread runs in the master as it forks
        "control_socket_disable": True,  # no socket in $HOME: stop and reload are signals
        "proc_name": "nudge serve",
    }
    # gunicorn ends the process itself (SystemExit, 0 after a clean stop), in the master and in
    # each worker (a forked child returns through here too): nothing may run after it.
    Gunicorn(app, options).run()


def serve_dev(app: App, host: str, port: int) -> None:
    """werkzeug's development server (one process, a thread a request) until SIGTERM or Ctrl-C."""
    from werkzeug.serving import make_server

    from engine.web.access import AccessLogHandler

    server = make_server(host, port, app, threaded=True, request_handler=AccessLogHandler)
    _announce(host, port, None)
    app.start()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it as Ctrl-C does
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    server.server_close()
