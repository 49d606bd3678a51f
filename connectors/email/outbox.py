"""The embedded default: each message is a standard .eml file in an outbox folder, written whole
or not at all (connectors/outbox_files.py) — the one connector that knows, after a crash, exactly
what left."""

from __future__ import annotations

import re
from pathlib import Path

from connectors.api import OutgoingEmail
from connectors.email.mime import mime_bytes
from connectors.outbox_files import FileOutbox


class OutboxConnector(FileOutbox):
    suffix = ".eml"
    label = "outbox"

    @classmethod
    def from_config(cls, config, workspace: Path, environ) -> OutboxConnector:
        return cls((workspace / config.outbox.dir).resolve(), fsync=config.outbox.fsync)

    def content(self, message: OutgoingEmail) -> bytes:
        return mime_bytes(message)

    def test_name(self, message: OutgoingEmail) -> str:
        campaign = re.sub(r"[^A-Za-z0-9-]+", "-", message.headers.get("X-Nudge-Campaign", "")) or "campaign"
        return f"test-{campaign}"
