"""Webhook calls over HTTP(S) with requests: one POST per message, each asked of the hand-off first.

2xx sent · 3xx failed (redirects are not followed: a redirected POST may lose its body or reach
another host with the signature) · 4xx but 429 failed, with the status and the first 200 bytes of
the answer · 429, 5xx, timeouts, refused or broken connections: retry (pending, never failed; the
request may have been processed, and the Idempotency-Key lets the receiver drop the repeat).

The URL's path and query often hold the receiver's key (Slack, WeChat Work, Discord), and the
headers hold the signature: neither is ever logged or put in a reason, only scheme, host and port.
"""

from __future__ import annotations

import codecs
import logging
import os
import re
import ssl
from collections import Counter
from enum import Enum
from urllib.parse import urlsplit

import requests

from connectors.api import (
    ConnectorError,
    ConnectorFatal,
    HandOff,
    OutgoingWebhook,
    SendResult,
    SendStatus,
    hand_all,
)

CONNECT_TIMEOUT = 5.0  # seconds to open the connection (TLS included)
READ_TIMEOUT = 30.0  # seconds between bytes of the answer
ANSWER_SHOWN = 200  # bytes of a refused request's answer kept in its reason (SPEC)
# Bytes of any answer read before the connection is given back: a fully read answer lets the next
# request reuse the connection, and a receiver that answers gigabytes cannot make us hold them.
ANSWER_READ = 64 * 1024
# Read timeouts, broken answers and 5xx in a row from one host before the rest of the batch for that
# host waits for the next attempt: a stalled receiver would otherwise cost READ_TIMEOUT per message
# (an hour for 120 of them). Not after the first one: a body that alone upsets the receiver must not
# hold back every message queued behind it at each retry.
STALLS_BEFORE_PAUSING = 3

log = logging.getLogger("nudge.webhook")
# urllib3 logs every request line, query string included, at DEBUG: the query may be the receiver's key.
logging.getLogger("urllib3.connectionpool").setLevel(logging.WARNING)


class _Trouble(Enum):
    """What one request says about its host, for the rest of the batch."""

    NONE = "none"  # an answer: go on
    STALL = "stall"  # no usable answer: may be this body, may be the host
    HOST = "host"  # the host itself is refusing: nothing else for it in this batch will fare better


class HttpWebhookConnector:
    """Posts each OutgoingWebhook to its own URL (each action names its URL in the environment)."""

    def __init__(
        self, timeout: float | tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT), *, verify: bool | str = True
    ):
        """`timeout`: seconds, or (connect, read). `verify`: True checks certificates against the
        system's CAs (or REQUESTS_CA_BUNDLE's); a path names the bundle of a receiver's private CA."""
        self.timeout = timeout if isinstance(timeout, tuple) else (float(timeout), float(timeout))
        self.session = requests.Session()
        # Passed with each request, not set on the session: requests lets REQUESTS_CA_BUNDLE override
        # a session's bundle (psf/requests#3829), but not one given to the request.
        self.verify = verify

    def send(self, batch: list[OutgoingWebhook], handoff: HandOff = hand_all) -> list[SendResult]:
        """One result per message; ask `handoff` right before each request and send only what it
        returns (the rest: NOT_OURS). ConnectorFatal, with what was settled, if the hand-off cannot
        be asked: nothing after that point left."""
        results: list[SendResult] = []
        paused: dict[str, str] = {}  # host → why the rest of the batch for it waits
        stalls: Counter[str] = Counter()
        for message in batch:
            origin = _origin(message.url)
            if origin in paused:
                results.append(SendResult(message.delivery_id, SendStatus.RETRY, paused[origin]))
                continue
            if not self._handed(message.delivery_id, handoff, results):
                results.append(SendResult(message.delivery_id, SendStatus.NOT_OURS, "another worker owns this message"))
                continue
            result, trouble = self._post(message, origin)
            results.append(result)
            _log(result, origin)
            stalls[origin] = stalls[origin] + 1 if trouble is _Trouble.STALL else 0
            if trouble is _Trouble.HOST or stalls[origin] >= STALLS_BEFORE_PAUSING:
                paused[origin] = f"not tried in this batch: {origin} failed the request before ({result.reason})"
        return results

    @staticmethod
    def _handed(delivery_id: int, handoff: HandOff, settled: list[SendResult]) -> bool:
        try:
            return delivery_id in handoff([delivery_id])
        except ConnectorError as exc:  # the store is unreachable: nothing is marked, so nothing may leave
            raise ConnectorFatal(str(exc), partial=[r for r in settled if r.status != SendStatus.RETRY]) from None

    def _post(self, message: OutgoingWebhook, origin: str) -> tuple[SendResult, _Trouble]:
        """One request and what its outcome says about the host."""
        delivery_id = message.delivery_id
        try:
            response = self.session.post(
                message.url,
                data=message.body.encode("utf-8"),  # the exact bytes the signature covers
                headers=message.headers,
                timeout=self.timeout,
                allow_redirects=False,
                verify=self.verify,
                stream=True,  # the answer is read by us, bounded (ANSWER_READ)
            )
        except requests.exceptions.ConnectTimeout:
            reason = f"{origin} accepted no connection within {self.timeout[0]:g}s"
            return SendResult(delivery_id, SendStatus.RETRY, reason), _Trouble.HOST
        except requests.exceptions.ReadTimeout:
            reason = f"no answer from {origin} within {self.timeout[1]:g}s"
            return SendResult(delivery_id, SendStatus.RETRY, reason), _Trouble.STALL
        except requests.exceptions.ConnectionError as exc:
            # Exceptions of requests and urllib3 quote the URL: only the cause's own words are kept.
            if _never_connected(exc):
                return SendResult(delivery_id, SendStatus.RETRY, f"{origin} unreachable: {_cause(exc)}"), _Trouble.HOST
            reason = f"connection to {origin} broken before the answer: {_cause(exc)}"
            return SendResult(delivery_id, SendStatus.RETRY, reason), _Trouble.STALL
        except requests.exceptions.RequestException as exc:  # a URL requests cannot use
            reason = f"cannot post to the webhook URL ({type(exc).__name__}): check its variable"
            return SendResult(delivery_id, SendStatus.RETRY, reason), _Trouble.HOST
        return _settle(delivery_id, response.status_code, _answer(response))

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()


def _settle(delivery_id: int, status: int, answer: bytes) -> tuple[SendResult, _Trouble]:
    """SPEC's reading of an HTTP status."""
    if 200 <= status < 300:
        return SendResult(delivery_id, SendStatus.SENT), _Trouble.NONE
    reason = f"HTTP {status}: {_shown(answer)}" if answer else f"HTTP {status}"
    if status == 429:  # the receiver asks for fewer requests: the rest of the batch waits too
        return SendResult(delivery_id, SendStatus.RETRY, reason), _Trouble.HOST
    if status >= 500 or status < 200:
        return SendResult(delivery_id, SendStatus.RETRY, reason), _Trouble.STALL
    if status < 400:
        reason = f"HTTP {status}: redirects are not followed; put the final URL in the action's variable"
    return SendResult(delivery_id, SendStatus.FAILED, reason), _Trouble.NONE


def _answer(response: requests.Response) -> bytes:
    """At most ANSWER_READ bytes of the answer; a body that breaks off changes nothing, the status
    has arrived."""
    kept = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=8192):
            kept += chunk
            if len(kept) >= ANSWER_READ:
                break
    except requests.exceptions.RequestException:
        pass
    finally:
        response.close()
    return bytes(kept)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _shown(answer: bytes) -> str:
    """The first ANSWER_SHOWN bytes as one line of text: a character cut in half at the end is left
    out rather than shown as garbage, and newlines would break the report's table."""
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(answer[:ANSWER_SHOWN], final=False)
    return _CONTROL.sub(" ", text).strip()


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: what may be shown of it (no user, password, path or query)."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        host = parts.hostname or ""
    except ValueError:
        return "the webhook URL"
    if not host:
        return "the webhook URL"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and every exception it wraps (causes, contexts, urllib3's reasons, arguments)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        wrapped = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        todo += [inner for inner in wrapped if isinstance(inner, BaseException)]
    return found


def _never_connected(exc: BaseException) -> bool:
    """True when no connection was made (refused, no such host, TLS refused): the request never left."""
    names = {type(inner).__name__ for inner in _chain(exc)}
    return bool(names & {"NewConnectionError", "NameResolutionError", "SSLError", "SSLCertVerificationError"})


def _cause(exc: BaseException) -> str:
    """Why a connection failed, in the operating system's or TLS's words, never quoting the URL."""
    chain = _chain(exc)
    for inner in chain:
        if isinstance(inner, ssl.SSLError):
            return f"TLS: {getattr(inner, 'verify_message', None) or inner.reason or 'handshake failed'}"
    for inner in chain:
        if isinstance(inner, OSError) and isinstance(inner.errno, int) and inner.errno > 0:
            return os.strerror(inner.errno)
    for inner in chain:  # http.client's RemoteDisconnected and the like: no errno, a plain message
        if type(inner).__module__ in ("builtins", "http.client") and str(inner):
            return str(inner)
    return type(exc).__name__


def _log(result: SendResult, origin: str) -> None:
    if result.status == SendStatus.SENT:
        log.debug("webhook %s to %s: sent", result.delivery_id, origin)
    else:
        log.warning("webhook %s to %s: %s (%s)", result.delivery_id, origin, result.status, result.reason)
