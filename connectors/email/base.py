"""What an email connector receives and returns. Engine code depends on this, never on a provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

SENT, FAILED, UNKNOWN = "sent", "failed", "unknown"
RETRY = "retry"   # did not leave (refused before accepting it): safe to send again later


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

    @property
    def sender_address(self) -> str:
        """The bare address of the sender, for the SMTP envelope."""
        from email.utils import parseaddr
        return parseaddr(self.sender)[1]


@dataclass(frozen=True)
class SendResult:
    delivery_id: int
    status: str                 # sent | failed | unknown
    reason: str | None = None
    provider_id: str | None = None


class ConnectorFatal(Exception):
    """Sending cannot go on at all (bad credentials, server unreachable).

    `partial` holds the results of messages that did reach an outcome before it happened;
    everything else in the batch did not leave."""

    def __init__(self, message: str, partial: list["SendResult"] | None = None):
        super().__init__(message)
        self.partial = partial or []


class EmailConnector(Protocol):
    def send(self, batch: list[OutgoingEmail]) -> list[SendResult]:
        """Send a batch; one result per message. Raise ConnectorFatal only if none of them left."""

    def was_sent(self, delivery_id: int) -> bool | None:
        """After a crash: True if this message certainly left, False if it certainly did not, None if unknown."""

    def close(self) -> None:
        """Release connections."""
