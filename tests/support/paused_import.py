"""`nudge` in a real process whose event import stops inside its transaction after each batch
written, until told to go on: a slow import, paused at exactly the moments a test chooses.

    python -m tests.support.paused_import BATCH --workspace WS import events FILE

After each batch is written (not committed) it prints `written N` on stdout and waits for a
line on stdin; end of input lets it run to the end without stopping."""

from __future__ import annotations

import sys

from engine.cli.main import main
from engine.ingest import importer

_insert_events = importer.insert_events
_go_on = True


def _paused_insert(conn, records):
    global _go_on
    written = _insert_events(conn, records)
    if _go_on:
        print(f"written {written}", flush=True)
        _go_on = bool(sys.stdin.readline())
    return written


if __name__ == "__main__":
    importer.BATCH = int(sys.argv.pop(1))
    importer.insert_events = _paused_insert
    main()
