"""The embedded default for text messages: one JSON file per message in an outbox folder, for a
gateway's pickup process or a person to read.

    {"delivery_id": 42, "to": "+8613800138000", "from": "+8610000000", "text": "...",
     "encoding": "UCS-2", "segments": 1}

Written like the email outbox: under a temporary name, flushed, renamed into place, the folder
flushed once per batch, so after a crash a file's presence proves the message was written whole.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from connectors.api import TEST_DELIVERY_ID, ConnectorFatal, HandOff, OutgoingSms, SendResult, SendStatus, hand_all


class SmsOutboxConnector:
    def __init__(self, directory: Path, *, sender: str | None = None, fsync: bool = True):
        self.directory = directory
        self.sender = sender
        self.fsync = fsync
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectorFatal(f"cannot create SMS outbox folder {directory}: {exc.strerror}") from None

    @classmethod
    def from_config(cls, config: Any, workspace: Path, environ: Mapping[str, str]) -> SmsOutboxConnector:
        """Built from config.yaml's `sms` section; the folder is relative to the workspace."""
        return cls((workspace / config.outbox.dir).resolve(), sender=config.from_, fsync=config.outbox.fsync)

    def path_for(self, delivery_id: int) -> Path:
        return self.directory / f"{delivery_id:012d}.json"

    def _target(self, sms: OutgoingSms) -> Path:
        if sms.delivery_id != TEST_DELIVERY_ID:
            return self.path_for(sms.delivery_id)
        # A test send has no ledger id: a name of its own, so one test never overwrites another.
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return self.directory / f"test-{stamp}-{os.urandom(3).hex()}.json"

    def _content(self, sms: OutgoingSms) -> bytes:
        document = {
            "delivery_id": sms.delivery_id,
            "to": sms.to,
            "from": sms.sender or self.sender,
            "text": sms.text,
            "encoding": sms.encoding,
            "segments": sms.segments,
        }
        # Readable as written: a Chinese text stays Chinese in the file, not \\u escapes.
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    def _write(self, sms: OutgoingSms) -> SendResult:
        target = self._target(sms)
        temporary = target.with_suffix(".tmp")
        try:
            with open(temporary, "wb") as file:
                file.write(self._content(sms))
                if self.fsync:
                    # The bytes reach the disk before the name does: a power loss leaves either no
                    # file or a whole one, never a torn message for a pickup process to send.
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            # Disk full, quota, I/O error, permissions: the folder's trouble, not the message's.
            # Nothing half-written stays behind, and the message waits for the next run.
            temporary.unlink(missing_ok=True)
            return SendResult(sms.delivery_id, SendStatus.RETRY, f"SMS outbox {self.directory}: {exc.strerror or exc}")
        return SendResult(sms.delivery_id, SendStatus.SENT, provider_id=target.name)

    def _sync_folder(self) -> None:
        """The renames themselves survive a power loss only once the folder is flushed."""
        if not self.fsync:
            return
        descriptor = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def send(self, batch: list[OutgoingSms], handoff: HandOff = hand_all) -> list[SendResult]:
        # One hand-off for the whole batch: files are local and `was_sent` tells after a crash
        # what was written, so a finer hand-off would buy nothing but a commit per message.
        owned = handoff([m.delivery_id for m in batch])
        results = [
            self._write(sms)
            if sms.delivery_id in owned
            else SendResult(sms.delivery_id, SendStatus.NOT_OURS, "another worker owns this message")
            for sms in batch
        ]
        stuck = [r for r in results if r.status == SendStatus.RETRY]
        try:
            self._sync_folder()
        except OSError as exc:
            raise ConnectorFatal(f"SMS outbox {self.directory}: {exc.strerror or exc}", partial=[]) from None
        if stuck:
            # Stop the run: every later batch would meet the same full disk.
            raise ConnectorFatal(
                stuck[0].reason or "SMS outbox unwritable", partial=[r for r in results if r not in stuck]
            )
        return results

    def was_sent(self, delivery_id: int) -> bool | None:
        """After a crash: a file under its name proves the message was written whole."""
        return self.path_for(delivery_id).exists()

    def close(self) -> None:
        pass
