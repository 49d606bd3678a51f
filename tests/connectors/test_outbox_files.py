"""connectors/outbox_files.py, the file writing the email and SMS outboxes share: watched on both,
since a subclass could override what makes its files survive a power loss."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.email.outbox import OutboxConnector
from connectors.sms.outbox import SmsOutboxConnector
from tests.connectors.test_connectors import message
from tests.connectors.test_sms import text


@pytest.mark.parametrize(
    ("outbox", "make", "suffix"), [(OutboxConnector, message, ".eml"), (SmsOutboxConnector, text, ".json")]
)
def test_an_outbox_flushes_each_file_before_its_name_and_the_folder_after(tmp_path, monkeypatch, outbox, make, suffix):
    # A power loss cannot be staged here; what makes the files survive one can be watched.
    import connectors.outbox_files as outbox_module

    synced: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    def replace(source, target) -> None:
        synced.append(f"rename {Path(source).name} → {Path(target).name}")
        real_replace(source, target)

    monkeypatch.setattr(outbox_module.os, "fsync", fsync)
    monkeypatch.setattr(outbox_module.os, "replace", replace)
    folder = tmp_path / "out"
    outbox(folder).send([make(1), make(2)])
    assert synced == [
        str(folder / "000000000001.tmp"),
        f"rename 000000000001.tmp → 000000000001{suffix}",
        str(folder / "000000000002.tmp"),
        f"rename 000000000002.tmp → 000000000002{suffix}",
        str(folder),
    ]
