"""The embedded default for text messages: one JSON file per message in an outbox folder, for a
gateway's pickup process or a person to read.

    {"delivery_id": 42, "to": "+8613800138000", "from": "+8610000000", "text": "...",
     "encoding": "UCS-2", "segments": 1}

Written like the email outbox (connectors/outbox_files.py): whole or not at all, so after a crash
a file's presence proves the message was written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.api import OutgoingSms
from connectors.outbox_files import FileOutbox


class SmsOutboxConnector(FileOutbox):
    suffix = ".json"
    label = "SMS outbox"

    def __init__(self, directory: Path, *, sender: str | None = None, fsync: bool = True):
        super().__init__(directory, fsync=fsync)
        self.sender = sender

    @classmethod
    def from_config(cls, config: Any, workspace: Path, environ: Mapping[str, str]) -> SmsOutboxConnector:
        """Built from config.yaml's `sms` section; the folder is relative to the workspace."""
        return cls((workspace / config.outbox.dir).resolve(), sender=config.from_, fsync=config.outbox.fsync)

    def content(self, message: OutgoingSms) -> bytes:
        document = {
            "delivery_id": message.delivery_id,
            "to": message.to,
            "from": message.sender or self.sender,
            "text": message.text,
            "encoding": message.encoding,
            "segments": message.segments,
        }
        # Readable as written: a Chinese text stays Chinese in the file, not \\u escapes.
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
