"""Twilio's Messages API through the official client: one message per request, the hand-off asked
right before each, and a deliberate answer to every outcome.

2xx sent (provider id: the message SID) · 400 failed with Twilio's code (a number that can never
receive: bad address, suppressed by the engine) · 401/403/404 stop all (credentials, account) ·
429 and 5xx not sent yet, retried on a later run · refused before the request left: retried ·
no answer after it left: unknown, never resent blindly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import MaxRetryError

from connectors.api import (
    TEST_DELIVERY_ID,
    ConnectorError,
    ConnectorFatal,
    HandOff,
    OutgoingSms,
    SendResult,
    SendStatus,
    hand_all,
)

TWILIO_API = "https://api.twilio.com"
# Twilio's codes for a number that will never receive a text from us: invalid (21211), not a
# mobile number (21614), and a recipient who replied STOP to the sending number (21610).
BAD_NUMBER_CODES = frozenset({21211, 21614, 21610})
# Codes that blame the sender, not the recipient: every message would fail alike until the
# config is fixed, so sending stops instead of marking each customer `failed` for good.
SENDER_CODES = frozenset({21212, 21606, 21659})
# A 4xx that says the credentials or the account are wrong: nothing can be sent with them.
REFUSED_ACCOUNT = frozenset({401, 403, 404})

# Added to the status callback URL: a receipt for a send that got no answer (so no message SID was
# recorded) still names its ledger row. Twilio's signature covers it; engine.web.twilio_api reads it.
DELIVERY_PARAMETER = "nudge_delivery"

# The official client logs each request's URL and headers at INFO; keep that out of our logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


class NotSent(ConnectorError):
    """The request did not leave: the connection could not be made."""


class Lost(ConnectorError):
    """The request left; no answer came back (read timeout, dropped connection)."""


class _Fatal(ConnectorError):
    pass


class Transport(TwilioHttpClient):
    """The official HTTP client, pointed at another host when configured (a test server), and
    telling apart a request that never left from one whose answer was lost."""

    def __init__(self, base_url: str | None, timeout: float):
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self.base_url and url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.ConnectTimeout as exc:
            raise NotSent(f"connect timeout: {exc}") from None
        except requests.ConnectionError as exc:
            # requests wraps a failure to connect (refused, no route, DNS, TLS handshake) in
            # urllib3's MaxRetryError; one after the request was written (the peer hung up)
            # arrives unwrapped. Only the first proves nothing left.
            if isinstance(exc, requests.exceptions.SSLError) or (exc.args and isinstance(exc.args[0], MaxRetryError)):
                raise NotSent(_first_line(exc)) from None
            raise Lost(_first_line(exc)) from None
        except requests.Timeout as exc:
            raise Lost(f"no answer within {self.timeout} s: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def callback_for(url: str, delivery_id: int) -> str:
    """The status callback URL naming one delivery (a test send names none)."""
    if delivery_id == TEST_DELIVERY_ID:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode({DELIVERY_PARAMETER: delivery_id})) if q)
    return urlunsplit(parts._replace(query=query))


def _twilio_message(exc: TwilioException) -> str:
    """Twilio's own words: the client prefixes them with what it was doing ('Unable to create record: ')."""
    message = str(getattr(exc, "detail", None) or getattr(exc, "title", None) or getattr(exc, "msg", "") or "")
    head, separator, rest = message.partition(": ")
    return rest if separator and head.startswith("Unable to") else message or "no message"


class TwilioConnector:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        sender: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
    ):
        if not sender and not messaging_service_sid:
            raise ConnectorFatal("Twilio needs a sender: set sms.from, or sms.messaging_service_sid_env")
        self.transport = Transport(base_url, timeout)
        self.client = Client(account_sid, auth_token, http_client=self.transport)
        self.sender, self.messaging_service_sid = sender, messaging_service_sid
        self.status_callback = status_callback
        self._fatal: str | None = None

    @classmethod
    def from_config(cls, config: Any, workspace: Path, environ: Mapping[str, str]) -> TwilioConnector:
        """Built from config.yaml's `sms` section; secrets come from the variables it names."""
        settings = config.twilio
        service_variable = config.messaging_service_sid_env or settings.messaging_service_sid_env
        named = [settings.account_sid_env, settings.auth_token_env] + ([service_variable] if service_variable else [])
        missing = [name for name in named if not environ.get(name)]
        if missing:
            raise ConnectorFatal(f"{missing[0]} is not set in the environment: the Twilio connector needs it")
        return cls(
            environ[settings.account_sid_env],
            environ[settings.auth_token_env],
            sender=config.from_,
            messaging_service_sid=environ[service_variable] if service_variable else None,
            status_callback=settings.status_callback_url,
            base_url=settings.base_url,
            timeout=settings.timeout,
        )

    def _create(self, sms: OutgoingSms) -> SendResult:
        """One request; its result, or _Fatal when nothing more can be sent."""
        options: dict[str, Any] = {"to": sms.to, "body": sms.text}
        if sms.sender or self.sender:
            options["from_"] = sms.sender or self.sender
        if self.messaging_service_sid:
            options["messaging_service_sid"] = self.messaging_service_sid
        if self.status_callback:
            options["status_callback"] = callback_for(self.status_callback, sms.delivery_id)
        try:
            created = self.client.messages.create(**options)
        except NotSent as exc:
            return SendResult(sms.delivery_id, SendStatus.RETRY, f"Twilio unreachable: {exc}")
        except Lost as exc:
            return SendResult(sms.delivery_id, SendStatus.UNKNOWN, f"no answer from Twilio after sending: {exc}")
        except TwilioException as exc:
            return self._refused(sms, exc)
        return SendResult(sms.delivery_id, SendStatus.SENT, provider_id=created.sid)

    def _refused(self, sms: OutgoingSms, exc: TwilioException) -> SendResult:
        status, code = int(getattr(exc, "status", 0) or 0), getattr(exc, "code", None)
        reason = f"twilio {code or status}: {_twilio_message(exc)}"
        if status in REFUSED_ACCOUNT or code in SENDER_CODES:
            self._fatal = f"Twilio refused to send ({reason}): check the account, credentials and sender in config"
            raise _Fatal(self._fatal)
        if status == 429 or status >= 500:
            return SendResult(sms.delivery_id, SendStatus.RETRY, reason)
        return SendResult(sms.delivery_id, SendStatus.FAILED, reason, bad_address=code in BAD_NUMBER_CODES)

    def send(self, batch: list[OutgoingSms], handoff: HandOff = hand_all) -> list[SendResult]:
        if self._fatal:
            raise ConnectorFatal(self._fatal)
        results: list[SendResult] = []
        for position, sms in enumerate(batch):
            # Asked right before each request: a worker that stalled past its lease sends
            # nothing that another worker has taken over meanwhile.
            try:
                owned = handoff([sms.delivery_id])
            except ConnectorError as exc:  # the store is unreachable: nothing more may leave
                raise ConnectorFatal(str(exc), partial=results) from None
            if sms.delivery_id not in owned:
                results.append(SendResult(sms.delivery_id, SendStatus.NOT_OURS, "another worker owns this message"))
                continue
            try:
                result = self._create(sms)
            except _Fatal as exc:
                raise ConnectorFatal(str(exc), partial=results) from None
            results.append(result)
            if result.status in (SendStatus.RETRY, SendStatus.UNKNOWN):
                # Rate-limited, down or stalled: the next request would meet the same (and a stall
                # costs a whole timeout each). The rest did not leave and wait for a later run.
                why = f"not sent: Twilio did not take an earlier message of the batch ({result.reason})"
                results += [SendResult(m.delivery_id, SendStatus.RETRY, why) for m in batch[position + 1 :]]
                break
        return results

    def was_sent(self, delivery_id: int) -> bool | None:
        """Twilio cannot be asked by our delivery id: after a crash, a handed-over message is unknown."""
        return None

    def close(self) -> None:
        if self.transport.session is not None:
            self.transport.session.close()
