"""Every contract between the engine and its edges, in one place.

The engine imports this module and `connectors.registry`, never an implementation; a connector
imports this module (and `engine.core`), never the engine's stages. A third-party package
implements one of these protocols and registers it under an entry point (see registry).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol

from engine.core.errors import ConnectorError, ConnectorFatal, SinkError, SourceError

__all__ = [
    "TEST_DELIVERY_ID",
    "ConnectorError",
    "ConnectorFatal",
    "EmailConnector",
    "HandOff",
    "OutgoingEmail",
    "OutgoingSms",
    "OutgoingWebhook",
    "SendResult",
    "SendStatus",
    "SinkError",
    "SmsConnector",
    "SourceError",
    "SourceReader",
    "SourceRow",
    "TaskSink",
    "WebhookConnector",
    "hand_all",
]


class SendStatus(StrEnum):
    """What a connector says of one message."""

    SENT = "sent"  # the provider accepted it
    FAILED = "failed"  # will not succeed on retry (bad address, refused content)
    UNKNOWN = "unknown"  # it left and no answer came back: never resent blindly
    RETRY = "retry"  # it did not leave (refused before accepting it): safe to send again later
    NOT_OURS = "not_ours"  # the hand-off refused it: another worker owns it now; not sent, not recorded


# A connector calls this right before messages leave (each SMTP DATA, each HTTP request), with
# their delivery ids, and sends only the ids it returns. The engine marks them handed over in the
# same statement that checks this worker still owns them (a fencing token), durably, and renews
# the worker's lease: a worker that stalled past its lease hands off nothing, and after a crash
# only a message that was handed over can be `unknown`. Idempotent: a retried request may ask again.
HandOff = Callable[[Sequence[int]], Collection[int]]


# The delivery id of a test send (`nudge send-test`): never a ledger id (they start at 1), so a
# connector that names what it writes by delivery id gives each test its own name instead.
TEST_DELIVERY_ID = 0


def hand_all(delivery_ids: Sequence[int]) -> Collection[int]:
    """The hand-off outside the ledger (a test send): every message may leave."""
    return set(delivery_ids)


@dataclass(frozen=True)
class OutgoingEmail:
    """One rendered message; header values are already free of CR/LF."""

    delivery_id: int
    sender: str
    to: str
    subject: str
    html: str
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    # The recipient's own links (name → URL, e.g. unsubscribe_url, preferences_url) as they appear
    # in `html` and `text`: a provider that substitutes per recipient (SendGrid) can send messages
    # that differ only in these as one request.
    links: dict[str, str] = field(default_factory=dict)

    @property
    def sender_address(self) -> str:
        """The bare address of the sender, for the SMTP envelope."""
        return parseaddr(self.sender)[1]


@dataclass(frozen=True)
class SendResult:
    delivery_id: int
    status: SendStatus
    reason: str | None = None
    provider_id: str | None = None
    # The provider says this address can never receive mail (invalid, no such mailbox): the
    # engine suppresses it, so it does not cost a failed request at every later occurrence.
    bad_address: bool = False


class EmailConnector(Protocol):
    """Built from config by ``from_config(email_config, workspace_dir, environ)``."""

    def send(self, batch: list[OutgoingEmail], handoff: HandOff = hand_all) -> list[SendResult]:
        """Send a batch; one result per message. Ask `handoff` right before anything leaves and send
        only what it returns (the rest: NOT_OURS). Raise ConnectorFatal only if none of them left."""
        ...

    def was_sent(self, delivery_id: int) -> bool | None:
        """After a crash: True if this message certainly left, False if it certainly did not, None if unknown."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True)
class OutgoingSms:
    """One rendered text message; `to` is an E.164 number, `text` already carries the opt-out hint."""

    delivery_id: int
    to: str
    text: str
    sender: str | None = None  # a number or alphanumeric sender; None: the connector's configured one
    encoding: str = "GSM-7"  # GSM-7 | UCS-2, as engine.messages.sms counted it
    segments: int = 1


class SmsConnector(Protocol):
    """Built from config by ``from_config(sms_config, workspace_dir, environ)``; same contract as email."""

    def send(self, batch: list[OutgoingSms], handoff: HandOff = hand_all) -> list[SendResult]:
        """Send a batch; one result per message. Ask `handoff` right before each message leaves and
        send only what it returns (the rest: NOT_OURS). Raise ConnectorFatal only if none left."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class OutgoingWebhook:
    """One rendered webhook call: `body` is JSON text, already checked to parse."""

    delivery_id: int
    url: str
    body: str
    headers: dict[str, str] = field(default_factory=dict)  # Idempotency-Key and the signature included


class WebhookConnector(Protocol):
    """Posts webhook calls. 2xx: SENT; 4xx (but 429): FAILED with the status and the first 200 bytes
    of the answer; 5xx, 429, timeouts and broken connections: RETRY, pending and never `failed`
    (the request may have been processed: the Idempotency-Key lets the receiver drop the repeat)."""

    def send(self, batch: list[OutgoingWebhook], handoff: HandOff = hand_all) -> list[SendResult]: ...

    def close(self) -> None: ...


class TaskSink(Protocol):
    """Built from config by ``from_config(tasks_config, workspace_dir)``; raises SinkError."""

    def handoff(self, task: dict[str, Any]) -> None:
        """Give one stored task (its columns) to the outside world."""
        ...


# (line number, row) or (line number, the reason that row cannot be read)
SourceRow = tuple[int, dict[str, Any] | ValueError]


class SourceReader(Protocol):
    """Reads one data file into rows, streamed; raises SourceError when the file as a whole is unreadable."""

    untyped: ClassVar[bool]  # values are text to be parsed (CSV), not JSON-typed

    def rows(self, path: Path, required: tuple[str, ...] = ()) -> Iterator[SourceRow]:
        """Rows with line numbers; a reader with a header checks it names the `required` columns."""
        ...
