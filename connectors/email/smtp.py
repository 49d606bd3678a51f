"""SMTP: one connection reused across a batch, STARTTLS or implicit TLS, auth from the environment.

Each message is one SMTP transaction spoken step by step (MAIL, RCPT, DATA), because what a
dropped connection means depends on the step: before the message text was sent, nothing left and
the message is retried on a fresh connection; after it was sent and before the server's answer,
it may have arrived, so it is `unknown` and never resent blindly. The engine's hand-off is asked
once the server has said 354 (go ahead), right before the text, so only a message in its DATA
step can ever be `unknown`.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl
from pathlib import Path

from connectors.api import ConnectorFatal, HandOff, OutgoingEmail, SendResult, SendStatus, hand_all
from connectors.email.mime import mime_bytes

PASSWORD_VARIABLE = "NUDGE_SMTP_PASSWORD"
# A connection that drops before DATA is replaced this many times for one message; past that the
# server is treated as down and the rest of the batch waits for the next run.
RECONNECTS = 2

_LINE_ENDS = re.compile(rb"\r\n|\n|\r")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class _NotLeft(Exception):
    """The connection failed before the message text was sent: it certainly did not arrive."""


def _data_payload(message: bytes) -> bytes:
    """The DATA section: CRLF line ends, leading dots doubled, the terminating dot line (RFC 5321 4.5.2)."""
    body = _LEADING_DOT.sub(b"..", _LINE_ENDS.sub(b"\r\n", message))
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _outcome(email: OutgoingEmail, code: int, text: bytes, what: str, *, bad_address: bool = False) -> SendResult:
    """A refusal by the server: 5xx will not succeed on retry, 4xx (greylisting, throttling) may."""
    status = SendStatus.FAILED if code >= 500 else SendStatus.RETRY
    reason = f"SMTP {what} {code}: {text.decode(errors='replace')}"
    return SendResult(email.delivery_id, status, reason, bad_address=bad_address and code >= 500)


class SmtpConnector:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 30.0,
    ):
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout
        self._client: smtplib.SMTP | None = None

    @classmethod
    def from_config(cls, config, workspace: Path, environ) -> SmtpConnector:
        smtp = config.smtp
        password = environ.get(PASSWORD_VARIABLE)
        if smtp.username and not password:
            raise ConnectorFatal(f"smtp.username is set but {PASSWORD_VARIABLE} is not in the environment")
        return cls(
            smtp.host,
            smtp.port,
            username=smtp.username,
            password=password,
            starttls=smtp.starttls,
            use_ssl=smtp.ssl,
            timeout=smtp.timeout,
        )

    def _connect(self) -> smtplib.SMTP:
        if self._client is not None:
            return self._client
        try:
            if self.use_ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
            client.ehlo_or_helo_if_needed()
            if self.username:
                client.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise ConnectorFatal(f"SMTP login refused by {self.host}:{self.port} ({exc.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectorFatal(f"SMTP server {self.host}:{self.port} unreachable: {exc}") from None
        self._client = client
        return client

    def _drop(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._client.close()
            self._client = None

    def send(self, batch: list[OutgoingEmail], handoff: HandOff = hand_all) -> list[SendResult]:
        results: list[SendResult] = []
        for index, email in enumerate(batch):
            try:
                results.append(self._send_one(email, handoff))
            except ConnectorFatal as exc:
                if not results:
                    raise
                # The server went away mid-batch: what is left did not leave.
                return results + [SendResult(e.delivery_id, SendStatus.RETRY, str(exc)) for e in batch[index:]]
        return results

    def _send_one(self, email: OutgoingEmail, handoff: HandOff) -> SendResult:
        reason = ""
        for _ in range(RECONNECTS + 1):
            client = self._connect()
            try:
                return self._transaction(client, email, handoff)
            except _NotLeft as exc:
                self._drop()
                reason = str(exc)
        raise ConnectorFatal(f"SMTP server {self.host}:{self.port} keeps dropping the connection: {reason}")

    def _transaction(self, client: smtplib.SMTP, email: OutgoingEmail, handoff: HandOff) -> SendResult:
        message = mime_bytes(email)
        try:
            # SIZE lets a server refuse an oversized message before it is sent, as sendmail() did.
            sized = [f"size={len(message)}"] if client.does_esmtp and client.has_extn("size") else []
            code, text = client.mail(email.sender_address, sized)
            if code != 250:
                client.rset()
                return _outcome(email, code, text, "sender refused")
            code, text = client.rcpt(email.to)
            if code not in (250, 251):
                client.rset()
                # 550/553 and friends: this mailbox will never take mail; 4xx may on a later try.
                return _outcome(email, code, text, "recipient refused", bad_address=True)
            code, text = client.docmd("DATA")
            if code != 354:
                client.rset()
                return _outcome(email, code, text, "DATA refused")
        except (OSError, smtplib.SMTPException) as exc:
            raise _NotLeft(str(exc) or type(exc).__name__) from None
        if email.delivery_id not in handoff([email.delivery_id]):
            # Inside DATA there is no clean way back but to hang up: a server discards a message
            # whose text never ended.
            self._drop()
            return SendResult(email.delivery_id, SendStatus.NOT_OURS, "another worker owns this message")
        try:
            client.send(_data_payload(message))
            code, text = client.getreply()
        except (OSError, smtplib.SMTPException) as exc:
            # The text was sent (or partly sent) and no answer came: it may have been accepted.
            self._drop()
            return SendResult(email.delivery_id, SendStatus.UNKNOWN, f"connection lost while sending: {exc}")
        if code == 250:
            return SendResult(email.delivery_id, SendStatus.SENT)
        return _outcome(email, code, text, "message refused")

    def was_sent(self, delivery_id: int) -> bool | None:
        return None

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._client.quit()
            self._client = None
