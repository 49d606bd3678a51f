"""SendGrid v3 mail/send through the official client: concurrency, rate limit, batching, and a
deliberate answer to every status.

202 (200 in sandbox) sent · 400 split to isolate bad recipients · 413 split · 401/403 stop all,
nothing marked sent · 429 wait for X-RateLimit-Reset · 5xx bounded exponential backoff ·
no answer after the request left: unknown, never resent blindly.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import sendgrid
from python_http_client.exceptions import (
    BadRequestsError,
    ForbiddenError,
    HTTPError,
    PayloadTooLargeError,
    TooManyRequestsError,
    UnauthorizedError,
)

from connectors.api import (
    ConnectorError,
    ConnectorFatal,
    HandOff,
    OutgoingEmail,
    SendResult,
    SendStatus,
    hand_all,
)
from connectors.email import sendgrid_batching as batching
from connectors.email.sendgrid_transport import KeepAliveClient, Lost, NotSent

API_KEY_VARIABLE = "SENDGRID_API_KEY"
BACKOFF_ATTEMPTS = 4
MAX_RATE_WAIT = 120.0

# python_http_client logs request headers (the API key) and bodies (addresses) at DEBUG.
logging.getLogger("python_http_client").setLevel(logging.WARNING)
log = logging.getLogger("nudge.sendgrid")


class _Fatal(ConnectorError):
    pass


class _RateLimiter:
    """At most `rate` requests a second across all threads."""

    def __init__(self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.interval = 1.0 / rate if rate else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_slot = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = self.clock()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            self.sleep(slot - now)


def _names_a_bad_address(error: HTTPError) -> bool:
    """SendGrid's 400 for an address it will never accept points at a recipient's `email` field."""
    try:
        errors = json.loads(error.body).get("errors", [])
    except (ValueError, AttributeError, TypeError):
        return False
    return any(
        isinstance(e, dict) and str(e.get("field") or "").endswith(".email") and ".to." in str(e.get("field"))
        for e in errors
    )


def _error_message(error: HTTPError) -> str:
    try:
        errors = json.loads(error.body).get("errors", [])
        return "; ".join(e.get("message", "") for e in errors) or f"HTTP {error.status_code}"
    except (ValueError, AttributeError, TypeError):
        return f"HTTP {error.status_code}"


@dataclass
class _Retries:
    """How much one request has waited and retried so far."""

    attempts: int = 0
    rate_waited: float = 0.0


class SendgridConnector:
    def __init__(
        self,
        api_key: str,
        *,
        host: str = "https://api.sendgrid.com",
        sandbox_mode: bool = False,
        concurrency: int = 4,
        rate_per_second: float | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        official = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        self.client = KeepAliveClient(
            host=official.client.host,
            request_headers=dict(official.client.request_headers),
            version=3,
            url_path=["mail", "send"],
            timeout=timeout,
        )
        self.sandbox_mode = sandbox_mode
        self.sleep, self.clock = sleep, clock
        self.limiter = _RateLimiter(rate_per_second, clock, sleep)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sendgrid")
        self._fatal: str | None = None

    @classmethod
    def from_config(cls, config, workspace: Path, environ: Mapping[str, str]) -> SendgridConnector:
        key = environ.get(API_KEY_VARIABLE)
        if not key:
            raise ConnectorFatal(f"{API_KEY_VARIABLE} is not set in the environment")
        settings = config.sendgrid
        return cls(
            key,
            host=settings.host or "https://api.sendgrid.com",
            sandbox_mode=settings.sandbox_mode,
            concurrency=settings.concurrency,
            rate_per_second=settings.rate_per_second,
            timeout=settings.timeout,
        )

    # --- requests ------------------------------------------------------------------------

    def _post(self, group: list[OutgoingEmail], handoff: HandOff) -> list[SendResult]:
        retries = _Retries()
        fenced: list[SendResult] = []
        while True:
            if self._fatal:
                return fenced + [SendResult(e.delivery_id, SendStatus.RETRY, self._fatal) for e in group]
            self.limiter.wait()
            # Asked before every attempt, after any wait: a worker paused in a rate-limit sleep
            # past its lease sends nothing that another worker has taken over meanwhile.
            owned = handoff([e.delivery_id for e in group])
            fenced += [
                SendResult(e.delivery_id, SendStatus.NOT_OURS, "another worker owns this message")
                for e in group
                if e.delivery_id not in owned
            ]
            group = [e for e in group if e.delivery_id in owned]
            if not group:
                return fenced
            outcome = self._attempt(group, handoff, retries)
            if outcome is not None:
                return fenced + outcome

    def _attempt(self, group: list[OutgoingEmail], handoff: HandOff, retries: _Retries) -> list[SendResult] | None:
        """One request: its results, or None when it is worth trying again (after the wait it needs)."""
        try:
            reply = self.client.post(request_body=batching.payload(group, self.sandbox_mode))
        except (UnauthorizedError, ForbiddenError) as exc:
            self._fatal = f"SendGrid refused the API key ({exc.status_code}): check {API_KEY_VARIABLE}"
            raise _Fatal(self._fatal) from None
        except TooManyRequestsError as exc:
            wait = self._reset_wait(exc)
            retries.rate_waited += wait
            if retries.rate_waited > MAX_RATE_WAIT:
                reason = "SendGrid rate limit: still limited"
                return [SendResult(e.delivery_id, SendStatus.RETRY, reason) for e in group]
            self.sleep(wait)
            return None
        except (BadRequestsError, PayloadTooLargeError) as exc:
            if len(group) > 1:
                half = len(group) // 2
                return self._post(group[:half], handoff) + self._post(group[half:], handoff)
            reason = (
                "message too large for SendGrid"
                if isinstance(exc, PayloadTooLargeError)
                else f"SendGrid 400: {_error_message(exc)}"
            )
            bad = isinstance(exc, BadRequestsError) and _names_a_bad_address(exc)
            return [SendResult(group[0].delivery_id, SendStatus.FAILED, reason, bad_address=bad)]
        except HTTPError as exc:
            if exc.status_code < 500 or retries.attempts >= BACKOFF_ATTEMPTS:
                status = SendStatus.RETRY if exc.status_code >= 500 else SendStatus.FAILED
                reason = f"SendGrid {exc.status_code}: {_error_message(exc)}"
                return [SendResult(e.delivery_id, status, reason) for e in group]
            self.sleep(min(2**retries.attempts, 30))
            retries.attempts += 1
            return None
        except NotSent as exc:
            if retries.attempts >= 1:
                return [SendResult(e.delivery_id, SendStatus.RETRY, f"SendGrid unreachable: {exc}") for e in group]
            retries.attempts += 1
            return None
        except Lost as exc:
            reason = f"no answer from SendGrid after sending: {exc}"
            return [SendResult(e.delivery_id, SendStatus.UNKNOWN, reason) for e in group]
        message_id = reply.headers.get("X-Message-Id") if reply.headers else None
        return [SendResult(e.delivery_id, SendStatus.SENT, provider_id=message_id) for e in group]

    def _reset_wait(self, error: HTTPError) -> float:
        reset = (error.headers or {}).get("X-RateLimit-Reset")
        try:
            return min(max(float(str(reset)) - self.clock(), 0.0) + 0.01, MAX_RATE_WAIT)
        except (TypeError, ValueError):
            return 1.0

    # --- the connector protocol ----------------------------------------------------------------

    def requests_for(self, batch: list[OutgoingEmail]) -> list[list[OutgoingEmail]]:
        """Identical content shares a request (≤ 1000 recipients, no address twice); the rest go alone."""
        return batching.group(batch)

    def send(self, batch: list[OutgoingEmail], handoff: HandOff = hand_all) -> list[SendResult]:
        if self._fatal:
            raise ConnectorFatal(self._fatal)
        groups = self.requests_for(batch)
        futures = [self.pool.submit(self._post, group, handoff) for group in groups]
        results: list[SendResult] = []
        fatal = None
        for future, group in zip(futures, groups, strict=False):
            try:
                results += future.result()
            except ConnectorError as exc:  # bad credentials, or the engine's hand-off could not be asked
                fatal = str(exc)
                results += [SendResult(e.delivery_id, SendStatus.RETRY, fatal) for e in group]
        if fatal:
            raise ConnectorFatal(fatal, partial=[r for r in results if r.status != SendStatus.RETRY])
        return results

    def was_sent(self, delivery_id: int) -> bool | None:
        return None

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close_thread_connection()
