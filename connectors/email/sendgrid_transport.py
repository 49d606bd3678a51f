"""Keep-alive transport for the official SendGrid client.

python_http_client opens a new connection per request; `Client._make_request` is its documented
override point. This subclass keeps one persistent connection per thread and tells apart a
request that never fully left (safe to retry) from one that left and got no answer (unknown).
"""

from __future__ import annotations

import http.client
import io
import threading
import urllib.error
from urllib.parse import urlsplit

from python_http_client import Client
from python_http_client.exceptions import handle_error

from connectors.api import ConnectorError


class NotSent(ConnectorError):
    """The request did not leave whole: connecting or writing failed."""


class Lost(ConnectorError):
    """The request left; the answer never came (timeout, dropped connection)."""


class _Reply:
    """What python_http_client's Response reads from a urllib response."""

    def __init__(self, status: int, body: bytes, headers: http.client.HTTPMessage):
        self._status, self._body, self._headers = status, body, headers

    def getcode(self) -> int:
        return self._status

    def read(self) -> bytes:
        return self._body

    def info(self) -> http.client.HTTPMessage:
        return self._headers


class _Connections(threading.local):
    connection: http.client.HTTPConnection | None = None


class KeepAliveClient(Client):
    """The official client's request building and error mapping over persistent connections."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._local = _Connections()
        self.connections_opened = 0
        self._count_lock = threading.Lock()

    def _connection(self, scheme: str, netloc: str, timeout: float | None) -> http.client.HTTPConnection:
        if self._local.connection is None:
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            self._local.connection = kind(netloc, timeout=timeout)
            with self._count_lock:
                self.connections_opened += 1
        return self._local.connection

    def close_thread_connection(self) -> None:
        if self._local.connection is not None:
            self._local.connection.close()
            self._local.connection = None

    def _make_request(self, opener, request, timeout=None):
        timeout = timeout or self.timeout
        url = urlsplit(request.full_url)
        path = url.path + (f"?{url.query}" if url.query else "")
        connection = self._connection(url.scheme, url.netloc, timeout)
        try:
            connection.request(request.get_method(), path, body=request.data, headers=dict(request.header_items()))
        except (OSError, http.client.HTTPException) as exc:
            self.close_thread_connection()
            raise NotSent(str(exc) or type(exc).__name__) from None
        try:
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close_thread_connection()
            raise Lost(str(exc) or type(exc).__name__) from None
        if response.will_close:
            self.close_thread_connection()
        if response.status >= 400:
            error = urllib.error.HTTPError(
                request.full_url, response.status, response.reason, response.headers, io.BytesIO(body)
            )
            raised = handle_error(error)
            raised.__cause__ = None
            raise raised
        return _Reply(response.status, body, response.headers)
