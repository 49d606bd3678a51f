"""SMTP: one connection reused across a batch, STARTTLS or implicit TLS, auth from the environment."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from pathlib import Path

from connectors.api import ConnectorFatal, OutgoingEmail, SendResult, SendStatus
from connectors.email.mime import mime_bytes

PASSWORD_VARIABLE = "NUDGE_SMTP_PASSWORD"


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
            try:
                self._client.noop()
                return self._client
            except smtplib.SMTPException:
                self._client = None
        try:
            if self.use_ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise ConnectorFatal(f"SMTP login refused by {self.host}:{self.port} ({exc.smtp_code})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectorFatal(f"SMTP server {self.host}:{self.port} unreachable: {exc}") from None
        self._client = client
        return client

    def send(self, batch: list[OutgoingEmail]) -> list[SendResult]:
        results: list[SendResult] = []
        for index, email in enumerate(batch):
            try:
                client = self._connect()
            except ConnectorFatal:
                if not results:
                    raise
                # The server went away mid-batch: what is left did not leave.
                results += [
                    SendResult(e.delivery_id, SendStatus.RETRY, "SMTP server unreachable") for e in batch[index:]
                ]
                return results
            results.append(self._send_one(client, email))
        return results

    def _send_one(self, client: smtplib.SMTP, email: OutgoingEmail) -> SendResult:
        try:
            refused = client.sendmail(email.sender_address, [email.to], mime_bytes(email))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            # 550/553 and friends: this mailbox will never take mail; 4xx may on a later try.
            return SendResult(
                email.delivery_id,
                SendStatus.FAILED if code >= 500 else SendStatus.RETRY,
                f"SMTP {code}: {text.decode(errors='replace')}",
                bad_address=500 <= code < 600,
            )
        except smtplib.SMTPSenderRefused as exc:
            status = SendStatus.FAILED if exc.smtp_code >= 500 else SendStatus.RETRY  # 421/451: throttled
            return SendResult(email.delivery_id, status, f"SMTP sender refused {exc.smtp_code}")
        except smtplib.SMTPDataError as exc:
            status = SendStatus.FAILED if 500 <= exc.smtp_code < 600 else SendStatus.UNKNOWN
            return SendResult(email.delivery_id, status, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}")
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            # The message may have left before the connection dropped: never resend blindly.
            self._client = None
            return SendResult(email.delivery_id, SendStatus.UNKNOWN, f"connection lost while sending: {exc}")
        if refused:
            return SendResult(email.delivery_id, SendStatus.FAILED, f"SMTP refused {', '.join(refused)}")
        return SendResult(email.delivery_id, SendStatus.SENT)

    def was_sent(self, delivery_id: int) -> bool | None:
        return None

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._client.quit()
            self._client = None
